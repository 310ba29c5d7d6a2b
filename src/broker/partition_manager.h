#pragma once
// The partitions one shard owns: their logs, opened, created and deleted as
// the metadata image says, and a wake-up for fetches waiting for new data.
// Used only from its own shard's thread.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "broker/config.h"
#include "metadata/image.h"
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
  void close_all();
  size_t size() const { return logs_.size(); }
  const std::map<topic_partition, std::unique_ptr<storage::log>>& logs() const { return logs_; }
  // The broker config with the image's dynamic broker configs applied.
  const broker_config& effective_config() const { return effective_; }

 private:
  std::string choose_log_dir() const;
  void scan_existing();

  const broker_config& config_;
  broker_config effective_;
  size_t shard_;
  size_t shards_;
  bool recover_;
  std::map<topic_partition, std::unique_ptr<storage::log>> logs_;
  std::map<topic_partition, int32_t> leader_epochs_;  // partitions led here, with their leader epoch
  std::map<topic_partition, std::string> dirs_on_disk_;  // partition dirs found at start, not yet opened
  std::map<std::string, metadata::uuid> topic_ids_;
};

}  // namespace gregor::broker
