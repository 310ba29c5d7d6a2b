#pragma once
// Logging through spdlog. One logger per module name, so operators can tell
// where a line came from: log::get("storage")->info(...).
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace gregor::log {
std::shared_ptr<spdlog::logger> get(const std::string& module);
void set_level(const std::string& level);  // trace, debug, info, warn, error
}  // namespace gregor::log
