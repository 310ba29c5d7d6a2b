#pragma once
// Helpers for a whole log directory (log.dirs entry), Kafka style:
//   <log.dir>/<topic>-<partition>/          a partition's log (see log.h)
//   <log.dir>/.kafka_cleanshutdown          present after a clean shutdown
//   <log.dir>/<topic>-<partition>.<uuid>-delete   a log being deleted
//
// Start-up: had_clean = consume_clean_shutdown_marker(dir) (removes the
// marker before any append, so a crash later is never taken for a clean
// stop), open every log with recover = !had_clean, and at shutdown, after
// every log is closed, write_clean_shutdown_marker(dir).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace gregor::storage {

struct partition_dir_entry {
  std::string topic;
  int32_t partition = 0;
  std::string path;
};

// "<log_dir>/<topic>-<partition>".
std::string partition_dir(const std::string& log_dir, std::string_view topic, int32_t partition);
// Splits "<topic>-<partition>" at the last '-' (topic names may contain
// '-'). nullopt for names that are not partition dirs (checkpoint files,
// "...-delete", "...-future", "...-stray").
std::optional<std::pair<std::string, int32_t>> parse_partition_dir_name(std::string_view name);
// The partition dirs in a log dir (empty if the dir does not exist).
std::vector<partition_dir_entry> list_partition_dirs(const std::string& log_dir);

inline constexpr const char* clean_shutdown_file = ".kafka_cleanshutdown";
bool has_clean_shutdown_marker(const std::string& log_dir);
// Whether the marker was there; removes it (durably) if it was.
result<bool> consume_clean_shutdown_marker(const std::string& log_dir);
result<void> write_clean_shutdown_marker(const std::string& log_dir);

// Deletes a partition dir: renamed to "<dir>.<32 hex>-delete" first (so a
// crash midway never leaves a half-deleted log under its real name), then
// removed. Logs must be closed first.
result<void> delete_log_dir(const std::string& partition_dir);
// Removes "*-delete" dirs left by a crash during delete_log_dir. Returns how many.
result<int> remove_deleted_log_dirs(const std::string& log_dir);

}  // namespace gregor::storage
