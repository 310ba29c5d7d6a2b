#include "base/log.h"

#include <mutex>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace gregor::log {
namespace {
std::mutex mu;
spdlog::level::level_enum level = spdlog::level::info;
std::function<std::string()> prefix_fn;
constexpr const char* kWallPattern = "[%Y-%m-%d %H:%M:%S.%e] %^%l%$ %n: %v";
constexpr const char* kPrefixPattern = "[%*] %^%l%$ %n: %v";

// %* in a pattern: the prefix function's text.
class prefix_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string text = prefix_fn ? prefix_fn() : std::string();
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<prefix_flag>(); }
};

void apply_pattern(spdlog::logger& l) {
  if (!prefix_fn) {
    l.set_pattern(kWallPattern);
    return;
  }
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<prefix_flag>('*').set_pattern(kPrefixPattern);
  l.set_formatter(std::move(f));
}
}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  std::lock_guard lock(mu);
  if (auto l = spdlog::get(module)) return l;
  auto l = spdlog::stderr_color_mt(module);
  l->set_level(level);
  apply_pattern(*l);
  return l;
}

void set_level(const std::string& name) {
  std::lock_guard lock(mu);
  level = spdlog::level::from_str(name);
  spdlog::set_level(level);
}

void set_prefix(std::function<std::string()> prefix) {
  std::lock_guard lock(mu);
  prefix_fn = std::move(prefix);
  spdlog::apply_all([](std::shared_ptr<spdlog::logger> l) { apply_pattern(*l); });
}
}  // namespace gregor::log
