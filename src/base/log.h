#pragma once
// Logging through spdlog. One logger per module name, so operators can tell
// where a line came from: log::get("storage")->info(...).
#include <functional>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace gregor::log {
std::shared_ptr<spdlog::logger> get(const std::string& module);
void set_level(const std::string& level);  // trace, debug, info, warn, error, off
// Replaces the time stamp of every line with what `prefix` returns (a
// simulation prints its virtual time and the node). Empty: the wall clock.
void set_prefix(std::function<std::string()> prefix);
}  // namespace gregor::log
