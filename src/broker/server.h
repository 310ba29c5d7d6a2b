#pragma once
// `gregor server`: checks and formats the data directories, starts the
// shards and the broker, and shuts down cleanly on SIGTERM/SIGINT.
#include "broker/config.h"

namespace gregor::broker {
// Runs until a shutdown signal; returns the process exit code.
int run_server(const broker_config& config);
}  // namespace gregor::broker
