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
#include "storage/leader_epoch_cache.h"
#include "storage/producer_state.h"

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
    // acks=all: the high watermark this append waits for, at this leader epoch.
    bool waiting = false;
    int64_t required_offset = -1;
    int32_t leader_epoch = -1;
  } result;
  // Written by a coordinator of this broker, not a client (Kafka's
  // AppendOrigin.COORDINATOR): a transactional batch (TxnOffsetCommit into
  // __consumer_offsets) is accepted with only its producer epoch checked,
  // not its sequence nor as a duplicate.
  bool from_coordinator = false;
  // The Produce request named a transactional id (a transactional
  // producer's request): transactional batches are allowed, once verified.
  bool transactional_request = false;
  // KIP-890: the batch would open the producer's transaction on this
  // partition, so the coordinator must confirm the partition is in it; the
  // guard (storage/producer_state.h) taken before asking.
  bool needs_verification = false;
  uint64_t verification_guard = 0;
};
// Stops the broker after a log write that failed half way (see the .cc); the
// caller goes on as for any failed write until the stop takes effect.
void halt_on_log_failure(const std::string& dir, const std::string& why);

// KIP-890, before append_here on the same shard: marks the transactional
// batches that would open their producer's transaction here
// (needs_verification) and takes their guards. Returns how many.
size_t begin_verification_here(broker& b, std::vector<append_work>& work);

// Appends each item to its log; runs on the shard owning the partitions.
// Items that already carry an error are skipped.
// With acks=-1 an item the ISR does not have yet is left `waiting` (see
// await_acks).
void append_here(broker& b, std::vector<append_work>& work, int16_t acks);

// WriteTxnMarkers: appends a COMMIT or ABORT marker for the producer to the
// partition `w` names, on its shard, as acks=all (left `waiting`, see
// await_acks). The marker is refused from an older producer epoch
// (INVALID_PRODUCER_EPOCH) or coordinator epoch (TRANSACTION_COORDINATOR_FENCED).
void append_marker_here(broker& b, append_work& w, int64_t producer_id, int16_t producer_epoch,
                        const storage::txn_marker& marker);

// acks=all: what is still to wait for on one shard, checked there. Items
// whose ISR now has their records (the high watermark passed them) are done;
// those whose ISR fell below min.insync.replicas get
// NOT_ENOUGH_REPLICAS_AFTER_APPEND; a leadership lost meanwhile is
// NOT_LEADER_OR_FOLLOWER. Returns how many still wait.
size_t check_acks_here(broker& b, std::vector<append_work>& work);
// acks=all: waits until every waiting item's records are on the ISR (the
// high watermark passed them), or until deadline_ms (monotonic), after which
// the rest get REQUEST_TIMED_OUT. Kafka's delayed produce.
runtime::task<void> await_acks(broker& b, std::map<size_t, std::vector<append_work>>& by_shard, int64_t deadline_ms);

struct read_work {
  const std::string* topic;
  int32_t partition;
  int64_t fetch_offset;
  int32_t partition_max_bytes;
  int32_t current_leader_epoch = -1;  // Fetch v9+: the leader epoch the client believes in
  int32_t last_fetched_epoch = -1;    // Fetch v12+: the epoch of the fetcher's record before fetch_offset
  int32_t replica_id = -1;            // a follower's broker id; -1 for a consumer
  bool follower_may_serve = false;    // a consumer of Fetch v11+ (KIP-392) may read from a follower
  int32_t preferred_read_replica = -1;  // KIP-392: read from this replica instead (nothing is read here)
  bool read_committed = false;          // isolation_level 1: read up to the last stable offset
  // results
  protocol::error_code error = protocol::error_code::none;
  int64_t high_watermark = -1;
  int64_t last_stable_offset = -1;
  int64_t log_start_offset = -1;
  // read_committed: the aborted transactions among what is read (producer id, first offset).
  std::vector<std::pair<int64_t, int64_t>> aborted_transactions;
  std::optional<storage::epoch_end> diverging_epoch;  // a follower's log parts from the leader's here
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
  bool read_committed = false;        // ListOffsets v2+ isolation_level 1: latest is the last stable offset
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
