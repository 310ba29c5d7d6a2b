#include "storage/log_manager.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "base/log.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::storage {

std::string partition_dir(const std::string& log_dir, std::string_view topic, int32_t partition) {
  return fmt::format("{}/{}-{}", log_dir, topic, partition);
}

std::optional<std::pair<std::string, int32_t>> parse_partition_dir_name(std::string_view name) {
  size_t dash = name.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == name.size()) return std::nullopt;
  std::string_view topic = name.substr(0, dash), digits = name.substr(dash + 1);
  if (topic.starts_with('.')) return std::nullopt;
  for (char c : digits)
    if (c < '0' || c > '9') return std::nullopt;
  int32_t partition = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), partition);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  return std::make_pair(std::string(topic), partition);
}

std::vector<partition_dir_entry> list_partition_dirs(const std::string& log_dir) {
  std::vector<partition_dir_entry> out;
  if (!runtime::fs::exists(log_dir)) return out;
  auto names = runtime::fs::list_dir(log_dir);
  if (!names) {
    ::gregor::log::get("storage")->error("cannot list {}: {}", log_dir, names.err().message);
    return out;
  }
  for (auto& name : names.value()) {
    auto tp = parse_partition_dir_name(name);
    if (!tp) continue;
    out.push_back({std::move(tp->first), tp->second, log_dir + "/" + name});
  }
  return out;
}

bool has_clean_shutdown_marker(const std::string& log_dir) {
  return runtime::fs::exists(log_dir + "/" + clean_shutdown_file);
}

result<bool> consume_clean_shutdown_marker(const std::string& log_dir) {
  if (!has_clean_shutdown_marker(log_dir)) return false;
  if (auto r = runtime::fs::remove(log_dir + "/" + clean_shutdown_file); !r) return r.err();
  if (auto r = runtime::fs::sync_dir(log_dir); !r) return r.err();
  return true;
}

result<void> write_clean_shutdown_marker(const std::string& log_dir) {
  return runtime::fs::write_file_atomic(log_dir + "/" + clean_shutdown_file, "{\"version\":0}\n");
}

result<void> delete_log_dir(const std::string& dir) {
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string doomed = fmt::format("{}.{:016x}{:016x}-delete", path, runtime::random_u64(), runtime::random_u64());
  if (runtime::fs::exists(path)) {
    if (auto r = runtime::fs::rename(path, doomed); !r) return r;
    size_t slash = path.rfind('/');
    if (auto r = runtime::fs::sync_dir(slash == std::string::npos ? "." : path.substr(0, slash)); !r) return r;
  } else {
    return ok();
  }
  ::gregor::log::get("storage")->info("deleting log dir {}", path);
  return runtime::fs::remove_all(doomed);
}

result<int> remove_deleted_log_dirs(const std::string& log_dir) {
  if (!runtime::fs::exists(log_dir)) return 0;
  auto names = runtime::fs::list_dir(log_dir);
  if (!names) return names.err();
  int n = 0;
  for (auto& name : names.value()) {
    if (!name.ends_with("-delete") || name.find('.') == std::string::npos) continue;
    ::gregor::log::get("storage")->info("removing {} left by an interrupted topic deletion", name);
    if (auto r = runtime::fs::remove_all(log_dir + "/" + name); !r) return r.err();
    ++n;
  }
  return n;
}

}  // namespace gregor::storage
