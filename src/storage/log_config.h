#pragma once
// The per-partition log settings, named after Kafka's topic configs
// (segment.bytes, segment.ms, index.interval.bytes, segment.index.bytes,
// flush.messages, flush.ms, retention.ms, retention.bytes,
// message.timestamp.type).
#include <cstdint>
#include <limits>
#include <string>

namespace gregor::storage {

struct log_config {
  int64_t segment_bytes = 1073741824;
  int64_t segment_ms = 604800000;
  int32_t index_interval_bytes = 4096;
  int64_t index_max_bytes = 10485760;
  int64_t flush_interval_messages = std::numeric_limits<int64_t>::max();
  int64_t flush_interval_ms = std::numeric_limits<int64_t>::max();
  int64_t retention_ms = 604800000;  // -1: no time limit
  int64_t retention_bytes = -1;      // -1: no size limit
  std::string message_timestamp_type = "CreateTime";  // or "LogAppendTime"
  // Compaction (cleanup.policy=compact; see cleaner.h). With compact alone
  // the broker passes retention_ms = retention_bytes = -1.
  bool compact = false;
  int64_t delete_retention_ms = 86400000;
  int64_t min_compaction_lag_ms = 0;
  int64_t max_compaction_lag_ms = std::numeric_limits<int64_t>::max();
  double min_cleanable_dirty_ratio = 0.5;
  bool operator==(const log_config&) const = default;
};

}  // namespace gregor::storage
