#pragma once
// Work on several shards at once, started in the caller's order.
#include <cstddef>
#include <functional>
#include <vector>

#include "runtime/task.h"

namespace gregor::runtime {

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
