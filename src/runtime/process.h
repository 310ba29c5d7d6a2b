#pragma once
// Process-level facilities: shutdown signals and the machine's core count.
#include <cstddef>
#include <functional>

namespace gregor::runtime {

// Calls `fn` on shard 0 at the first SIGINT or SIGTERM; a second one exits at once.
void on_shutdown_signal(std::function<void()> fn);

// One shard per core the process may run on.
size_t default_shard_count();

}  // namespace gregor::runtime
