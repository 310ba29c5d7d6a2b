#pragma once
// The production backend: one event loop (an Asio io_context) and one thread
// per shard, each shard owning its partitions; the real clocks; POSIX files;
// TCP. Code reaches another shard only through submit_to, which runs a
// coroutine there and resumes the caller on its own shard with the result.
#include <cstddef>
#include <memory>

#include "runtime/backend.h"
#include "runtime/task.h"

namespace gregor::runtime {

class engine final : public backend {
 public:
  explicit engine(size_t shards);
  ~engine() override;
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Runs every shard until stop(); shard 0 runs on the calling thread. On
  // return every shard thread has stopped and every coroutine still
  // suspended has been destroyed.
  void run();
  // Stops every shard (from any thread).
  void stop();

  // Starts a detached coroutine on a shard (exceptions are logged as bugs).
  template <class F>
  void spawn(size_t shard, F fn) {
    scoped_current here(this, shard);
    runtime::spawn(shard, std::move(fn));
  }

  size_t shard_count() const override;
  void post(size_t shard, std::coroutine_handle<> h) override;
  void post(size_t shard, std::function<void()> fn) override;
  std::unique_ptr<timer_impl> make_timer() override;
  int64_t wall_clock_ms() override;
  int64_t monotonic_ms() override;
  uint64_t random_u64() override;
  filesystem& files() override;
  result<std::unique_ptr<listener>> listen(const std::string& host, uint16_t port) override;
  task<result<std::shared_ptr<connection>>> connect(const std::string& host, uint16_t port,
                                                    int64_t timeout_ms) override;
  void halt(const std::string& why) override;

  // The engine of the calling thread (asserts there is one).
  static engine& current();

  struct impl;  // Asio state, for runtime's own production code (net, process)
  impl& internals() { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace gregor::runtime
