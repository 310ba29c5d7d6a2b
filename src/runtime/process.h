#pragma once
// Process-level facilities: shutdown signals and the machine's core count.
#include <cstddef>
#include <cstdint>
#include <functional>

namespace gregor::runtime {

// Calls `fn` on shard 0 at the first SIGINT or SIGTERM; a second one exits at once.
void on_shutdown_signal(std::function<void()> fn);

// Raises the soft open-files limit (RLIMIT_NOFILE) to the hard limit, as
// Kafka's scripts advise doing with ulimit, and returns the soft limit now in
// force.
uint64_t raise_open_files_limit();

// One shard per core the process may run on.
size_t default_shard_count();

}  // namespace gregor::runtime
