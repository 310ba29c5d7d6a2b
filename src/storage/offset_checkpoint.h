#pragma once
// Kafka's per-log-dir offset checkpoint files: replication-offset-checkpoint
// (each partition's high watermark, so a restarted replica does not expose
// more than was committed, nor less) and the like. Text, Kafka's format:
//   0                       version
//   <n>                     number of entries
//   <topic> <partition> <offset>   one line each
// Written whole, atomically (temporary file, fsync, rename).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"

namespace gregor::storage {

// The high watermarks' file in each log dir.
inline constexpr std::string_view high_watermark_checkpoint_file = "replication-offset-checkpoint";

using partition_offsets = std::map<std::pair<std::string, int32_t>, int64_t>;

result<void> write_offset_checkpoint(const std::string& path, const partition_offsets& offsets);
// A missing file is an empty checkpoint; a malformed one is an error naming the line.
result<partition_offsets> read_offset_checkpoint(const std::string& path);

}  // namespace gregor::storage
