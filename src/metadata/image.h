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
  int32_t leader = -1;  // -1: no leader (offline)
  int32_t leader_epoch = 0;
  int32_t partition_epoch = 0;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
  // A reassignment in progress: replicas is target + current, in Kafka's order.
  std::vector<int32_t> adding_replicas;
  std::vector<int32_t> removing_replicas;
  int8_t leader_recovery_state = 0;  // 0 recovered, 1 recovering (after an unclean election)
  bool operator==(const partition_state&) const = default;
};

struct topic_state {
  std::string name;
  uuid topic_id;
  std::vector<partition_state> partitions;  // indexed by partition id
  std::map<std::string, std::string> configs;  // topic-level overrides only
  // Kafka marks only its own internal topics, not every "__" name.
  bool is_internal() const { return name == "__consumer_offsets" || name == "__transaction_state"; }
};

struct broker_endpoint {
  std::string name;  // the listener name
  std::string host;
  int32_t port = 0;
  int16_t security_protocol = 0;  // 0 = PLAINTEXT
  bool operator==(const broker_endpoint&) const = default;
};

// A broker as its RegisterBrokerRecord and later changes describe it.
struct broker_registration {
  int32_t node_id = 0;
  uuid incarnation_id;
  int64_t broker_epoch = -1;  // the offset of its RegisterBrokerRecord
  std::vector<broker_endpoint> endpoints;
  std::optional<std::string> rack;
  bool fenced = true;
  bool in_controlled_shutdown = false;
  bool operator==(const broker_registration&) const = default;

  // The endpoint of a listener, or the first one when it has none of that name.
  const broker_endpoint* endpoint(const std::string& listener) const {
    for (auto& e : endpoints)
      if (e.name == listener) return &e;
    return endpoints.empty() ? nullptr : &endpoints.front();
  }
  // May lead partitions and get new replicas.
  bool usable() const { return !fenced && !in_controlled_shutdown; }
};

struct image {
  std::string cluster_id;
  int32_t controller_id = -1;
  int64_t last_offset = -1;  // offset of the last metadata record applied
  std::map<int32_t, broker_registration> brokers;  // by node id
  std::map<std::string, std::shared_ptr<const topic_state>> topics;  // by name
  std::map<std::string, std::map<std::string, std::string>> broker_configs;  // by broker id ("" = cluster default)
  std::map<std::string, int16_t> features;  // finalized feature levels (metadata.version)
  // The first producer id of the next block the controller hands out
  // (AllocateProducerIds); every id below it belongs to a block already given.
  int64_t next_producer_id = 0;

  const topic_state* topic(const std::string& name) const {
    auto it = topics.find(name);
    return it == topics.end() ? nullptr : it->second.get();
  }
  const topic_state* topic_by_id(const uuid& id) const {
    for (auto& [_, t] : topics)
      if (t->topic_id == id) return t.get();
    return nullptr;
  }
  const broker_registration* broker(int32_t id) const {
    auto it = brokers.find(id);
    return it == brokers.end() ? nullptr : &it->second;
  }
  bool is_usable(int32_t id) const {
    auto* b = broker(id);
    return b && b->usable();
  }
  // Unfenced brokers, by id.
  std::vector<int32_t> unfenced_brokers() const {
    std::vector<int32_t> out;
    for (auto& [id, b] : brokers)
      if (!b.fenced) out.push_back(id);
    return out;
  }
};

using image_ptr = std::shared_ptr<const image>;

}  // namespace gregor::metadata
