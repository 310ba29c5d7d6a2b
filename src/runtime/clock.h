#pragma once
// Time, as the rest of the code may see it: wall-clock milliseconds (record
// timestamps, file times) and monotonic milliseconds (timeouts), plus timers.
#include <chrono>
#include <cstdint>
#include <memory>

#include <asio/steady_timer.hpp>

#include "runtime/task.h"

namespace gregor::runtime {

int64_t wall_clock_ms();
int64_t monotonic_ms();

// Suspends the calling coroutine for `ms` milliseconds.
task<void> sleep_for(int64_t ms);

// A one-shot wake-up for coroutines on one shard: waiters sleep until notify()
// or until their timeout. Used by long-polling fetches waiting for new data.
class notifier {
 public:
  notifier();
  // Returns true if woken by notify(), false on timeout.
  task<bool> wait_for(int64_t timeout_ms);
  void notify_all();

 private:
  struct waiter;
  std::shared_ptr<std::vector<std::shared_ptr<waiter>>> waiters_;
};

// A level-triggered signal between coroutines of one shard: wait() returns
// once set() has been called since the last reset().
class event {
 public:
  event();
  task<void> wait();
  void set();
  void reset() { set_ = false; }
  bool is_set() const { return set_; }

 private:
  std::shared_ptr<asio::steady_timer> timer_;
  bool set_ = false;
};

}  // namespace gregor::runtime
