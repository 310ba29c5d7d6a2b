#pragma once
// The metadata image: an immutable snapshot of the cluster's metadata (topics,
// partitions, leaders, configs) built by replaying the metadata log. Every
// shard holds a shared_ptr to the latest one; a change makes a new image.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace gregor::metadata {

using protocol::uuid;

struct partition_state {
  int32_t partition = 0;
  int32_t leader = -1;
  int32_t leader_epoch = 0;
  int32_t partition_epoch = 0;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
};

struct topic_state {
  std::string name;
  uuid topic_id;
  std::vector<partition_state> partitions;  // indexed by partition id
  std::map<std::string, std::string> configs;  // topic-level overrides only
  // Kafka marks only its own internal topics, not every "__" name.
  bool is_internal() const { return name == "__consumer_offsets" || name == "__transaction_state"; }
};

struct broker_registration {
  int32_t node_id = 0;
  std::string host;
  int32_t port = 0;
  std::optional<std::string> rack;
};

struct image {
  std::string cluster_id;
  int32_t controller_id = -1;
  int64_t last_offset = -1;  // offset of the last metadata record applied
  std::vector<broker_registration> brokers;
  std::map<std::string, std::shared_ptr<const topic_state>> topics;  // by name
  std::map<std::string, std::map<std::string, std::string>> broker_configs;  // by broker id ("" = cluster default)

  const topic_state* topic(const std::string& name) const {
    auto it = topics.find(name);
    return it == topics.end() ? nullptr : it->second.get();
  }
  const topic_state* topic_by_id(const uuid& id) const {
    for (auto& [_, t] : topics)
      if (t->topic_id == id) return t.get();
    return nullptr;
  }
};

using image_ptr = std::shared_ptr<const image>;

}  // namespace gregor::metadata
