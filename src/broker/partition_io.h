#pragma once
// Reads and writes of partition logs, run on the shard that owns each
// partition. Handlers group their partitions by shard and make one hop per
// shard; the per-partition results come back in the work items.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/iobuf.h"
#include "protocol/errors.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker;

struct append_work {
  const std::string* topic;
  int32_t partition;
  bytes_view records;  // points into the request frame, alive while we wait
  const std::map<std::string, std::string>* topic_configs;
  size_t topic_slot = 0;      // where the result goes in the response:
  size_t partition_slot = 0;  // responses[topic_slot].partition_responses[partition_slot]
  struct {
    protocol::error_code error = protocol::error_code::none;
    std::string message;
    int64_t base_offset = -1;
    int64_t log_append_time_ms = -1;
    int64_t log_start_offset = -1;
  } result;
};
// Appends each item to its log; runs on the shard owning the partitions.
void append_here(broker& b, std::vector<append_work>& work);

struct read_work {
  const std::string* topic;
  int32_t partition;
  int64_t fetch_offset;
  int32_t partition_max_bytes;
  int32_t current_leader_epoch = -1;  // Fetch v9+: the leader epoch the client believes in
  // results
  protocol::error_code error = protocol::error_code::none;
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  iobuf records;
};
// Reads each item in order while `budget` (the response's max_bytes) lasts;
// the first batch of the response is returned whole even past the budget
// (KIP-74), which `first_batch_pending` tracks across shards.
runtime::task<void> read_on_shard(broker& b, size_t shard, std::vector<read_work*>& work, int64_t& budget,
                                  bool& first_batch_pending);

struct offset_query {
  const std::string* topic;
  int32_t partition;
  int64_t timestamp;  // -1 latest, -2 earliest, -3 max timestamp, else first offset at or after it
  int32_t current_leader_epoch = -1;  // ListOffsets v4+
  // results
  protocol::error_code error = protocol::error_code::none;
  int64_t offset = -1;
  int64_t found_timestamp = -1;
  int32_t leader_epoch = -1;  // the epoch that wrote `offset` (ListOffsets v4+)
};
runtime::task<void> list_offsets_on_shard(broker& b, size_t shard, std::vector<offset_query*>& work);

struct delete_records_work {
  const std::string* topic;
  int32_t partition;
  int64_t offset;  // -1: the high watermark
  // results
  protocol::error_code error = protocol::error_code::none;
  int64_t low_watermark = -1;
};
// Moves each log start offset up to `offset` (DeleteRecords).
runtime::task<void> delete_records_on_shard(broker& b, size_t shard, std::vector<delete_records_work*>& work);

struct log_dir_partition {
  std::string log_dir;
  std::string topic;
  int32_t partition = 0;
  int64_t size_bytes = 0;
  int64_t log_end_offset = 0;
};
// Every partition log of a shard, with its size (DescribeLogDirs).
runtime::task<void> log_dirs_on_shard(broker& b, size_t shard, std::vector<log_dir_partition>& out);

}  // namespace gregor::broker
