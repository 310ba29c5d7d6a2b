#pragma once
// Time, as the rest of the code may see it: wall-clock milliseconds (record
// timestamps, file times) and monotonic milliseconds (timeouts), plus timers
// and the wake-ups coroutines of one shard give each other. All of it comes
// from the calling thread's backend, so in a simulation it is virtual time.
#include <coroutine>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/backend.h"
#include "runtime/task.h"

namespace gregor::runtime {

int64_t wall_clock_ms();
int64_t monotonic_ms();

// Suspends the calling coroutine for `ms` milliseconds.
task<void> sleep_for(int64_t ms);

// A one-shot timer on the calling shard: wait_for() returns true when the
// time has passed, false if cancel() came first. One wait at a time.
class timer {
 public:
  timer();
  ~timer();
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  task<bool> wait_for(int64_t ms);
  void cancel();

 private:
  std::unique_ptr<timer_impl> impl_;
};

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
  event() = default;
  ~event();
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  task<void> wait();
  void set();
  void reset() { set_ = false; }
  bool is_set() const { return set_; }

 private:
  struct parked {
    event* e;
    bool await_ready() const noexcept { return e->set_; }
    void await_suspend(std::coroutine_handle<> h) { e->waiters_.push_back({h, this_shard()}); }
    void await_resume() const noexcept {}
  };
  struct waiting {
    std::coroutine_handle<> h;
    size_t shard;
  };
  std::vector<waiting> waiters_;
  bool set_ = false;
};

}  // namespace gregor::runtime
