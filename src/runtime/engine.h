#pragma once
// The engine: one event loop (executor) per shard, one thread per shard, each
// shard owning its partitions. Code reaches another shard only through
// submit_to, which runs a coroutine there and resumes the caller on its own
// shard with the result.
#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>

#include "runtime/task.h"

namespace gregor::runtime {

class engine {
 public:
  explicit engine(size_t shards);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  size_t shard_count() const { return contexts_.size(); }
  asio::io_context& context(size_t shard) { return *contexts_.at(shard); }

  // Runs every shard until stop(); shard 0 runs on the calling thread.
  void run();
  void stop();

  // Starts a detached coroutine on a shard (exceptions are logged as bugs).
  void spawn(size_t shard, std::function<task<void>()> fn);

  static engine& current();

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards_;
  std::vector<std::thread> threads_;
};

// The shard the calling thread runs, or 0 outside the engine.
size_t this_shard();
size_t shard_count();

// Runs fn() (returning task<R>) on `shard` and returns its result to the caller.
template <class F>
auto submit_to(size_t shard, F fn) -> decltype(fn()) {
  if (shard == this_shard()) co_return co_await fn();
  co_return co_await asio::co_spawn(engine::current().context(shard), std::move(fn), asio::use_awaitable);
}

template <class F>
auto submit_to_void(size_t shard, F fn) -> task<void> {
  if (shard == this_shard()) {
    co_await fn();
    co_return;
  }
  co_await asio::co_spawn(engine::current().context(shard), std::move(fn), asio::use_awaitable);
}

}  // namespace gregor::runtime
