#pragma once
// The partitions one shard owns: their logs, opened, created and deleted as
// the metadata image says, and each replica's role (Kafka's ReplicaManager
// for one shard): the leader's state (followers' progress, ISR, high
// watermark) or the follower's (what to fetch from whom). The I/O around it
// (follower fetchers, AlterPartition, checkpoints) lives beside it.
// Used only from its own shard's thread.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/config.h"
#include "metadata/image.h"
#include "replication/follower_state.h"
#include "replication/leader_state.h"
#include "storage/log.h"

namespace gregor::broker {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
};

// The shard that owns a partition: a stable hash, so a partition stays on
// one shard for the life of the process.
size_t shard_of(const std::string& topic, int32_t partition, size_t shards);

// The log config of a topic: broker defaults overlaid with topic overrides.
storage::log_config effective_log_config(const broker_config& broker, const std::map<std::string, std::string>& topic);

// A replica of a partition on this broker, as the latest image places it.
struct replica_state {
  metadata::uuid topic_id;
  int32_t leader_id = -1;
  int32_t leader_epoch = -1;
  int32_t partition_epoch = -1;
  int8_t leader_recovery_state = 0;
  std::optional<replication::leader_state> leader;      // this broker leads the partition
  std::optional<replication::follower_state> follower;  // it follows leader_id (none while there is no leader)
  int64_t high_watermark = 0;                           // while it neither leads nor follows
  // Leader: the partition epoch an AlterPartition in flight was based on;
  // its outcome is known once the image moves past it.
  int32_t proposal_partition_epoch = -1;
  int64_t proposal_resend_at_ms = -1;  // its answer was lost: send it again then
  int64_t proposals_paused_until_ms = 0;  // the controller refused the last one: not again before
  // Follower: no fetch before this time (after an error).
  int64_t fetch_paused_until_ms = 0;

  int64_t current_high_watermark() const {
    if (leader) return leader->high_watermark();
    if (follower) return follower->high_watermark();
    return high_watermark;
  }
};

class partition_manager {
 public:
  partition_manager(const broker_config& config, size_t shard, size_t shards, bool recover);

  // Opens the logs of the partitions this shard owns that the image places
  // on this broker (node_id is one of their replicas), and deletes the logs
  // of partitions it no longer has here (topic deleted, replica moved away).
  void apply_image(const metadata::image& img, int32_t node_id);
  // The log of a replica on this broker, or nullptr.
  storage::log* find(const std::string& topic, int32_t partition);
  // The log of a partition this broker leads, or nullptr (clients' reads and
  // writes go to the leader only: NOT_LEADER_OR_FOLLOWER otherwise).
  storage::log* find_leader(const std::string& topic, int32_t partition);
  // The leader epoch of a partition led here (-1 if it is not), written into
  // every batch this leader appends.
  int32_t leader_epoch(const std::string& topic, int32_t partition) const;
  // The role of a replica on this broker, or nullptr.
  replica_state* replica(const std::string& topic, int32_t partition);
  std::map<topic_partition, replica_state>& replicas() { return replicas_; }
  // The high watermark of a replica here: what consumers may read (-1: none).
  int64_t high_watermark(const std::string& topic, int32_t partition) const;
  // The leader's settings for a topic (min.insync.replicas may be a topic override).
  replication::leader_settings leader_settings_for(const std::map<std::string, std::string>& topic_configs) const;
  // Bumped whenever a replica starts or stops following a leader, so the
  // fetchers know to look again.
  uint64_t followers_changed() const { return followers_changed_; }
  void close_all();
  size_t size() const { return logs_.size(); }
  const std::map<topic_partition, std::unique_ptr<storage::log>>& logs() const { return logs_; }
  // The broker config with the image's dynamic broker configs applied.
  const broker_config& effective_config() const { return effective_; }

 private:
  std::string choose_log_dir() const;
  void scan_existing();
  void apply_role(const metadata::topic_state& topic, const metadata::partition_state& p, int32_t node_id,
                  storage::log& log);

  const broker_config& config_;
  broker_config effective_;
  size_t shard_;
  size_t shards_;
  bool recover_;
  std::map<topic_partition, std::unique_ptr<storage::log>> logs_;
  std::map<topic_partition, replica_state> replicas_;
  std::map<topic_partition, int64_t> checkpointed_hw_;  // replication-offset-checkpoint, read at start
  uint64_t followers_changed_ = 0;
  std::map<topic_partition, std::string> dirs_on_disk_;  // partition dirs found at start, not yet opened
  std::map<std::string, metadata::uuid> topic_ids_;
};

}  // namespace gregor::broker
