#pragma once
// Work on other shards of the same node: submit_to runs a coroutine on one
// shard and brings its result back; run_on_shards starts plain functions on
// several shards at once, in the caller's order.
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <vector>

#include "runtime/backend.h"
#include "runtime/task.h"

namespace gregor::runtime {

// Runs fn() (returning task<R>) on `shard` and returns its result to the
// caller, resumed on its own shard. An exception crosses back with it.
template <class F>
auto submit_to(size_t shard, F fn) -> decltype(fn()) {
  using T = typename decltype(fn())::value_type;
  if (shard == this_shard()) co_return co_await fn();
  const size_t origin = this_shard();
  co_await switch_to{shard};
  std::exception_ptr failure;
  std::optional<T> out;
  try {
    out.emplace(co_await fn());
  } catch (...) {
    failure = std::current_exception();
  }
  co_await switch_to{origin};
  if (failure) std::rethrow_exception(failure);
  co_return std::move(*out);
}

template <class F>
auto submit_to_void(size_t shard, F fn) -> task<void> {
  if (shard == this_shard()) {
    co_await fn();
    co_return;
  }
  const size_t origin = this_shard();
  co_await switch_to{shard};
  std::exception_ptr failure;
  try {
    co_await fn();
  } catch (...) {
    failure = std::current_exception();
  }
  co_await switch_to{origin};
  if (failure) std::rethrow_exception(failure);
}

struct shard_job {
  size_t shard;
  std::function<void()> run;  // runs synchronously on `shard`
};

// Starts every job at once: jobs for the calling shard run inline, now, and
// the others are posted to their shards. What one shard posts to another runs
// there in posting order, so the jobs of two calls made one after the other
// on a shard reach every shard in that order, whatever each call's shards.
// (Pipelined produce requests rely on this for per-partition order.)
// Returns once every job has run.
task<void> run_on_shards(std::vector<shard_job> jobs);

}  // namespace gregor::runtime
