#include "base/log.h"

#include <mutex>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace gregor::log {
namespace {
std::mutex mu;
spdlog::level::level_enum level = spdlog::level::info;
}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  std::lock_guard lock(mu);
  if (auto l = spdlog::get(module)) return l;
  auto l = spdlog::stderr_color_mt(module);
  l->set_level(level);
  l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %^%l%$ %n: %v");
  return l;
}

void set_level(const std::string& name) {
  std::lock_guard lock(mu);
  level = spdlog::level::from_str(name);
  spdlog::set_level(level);
}
}  // namespace gregor::log
