#pragma once
// __consumer_offsets for the group coordinator and __transaction_state for
// the transaction coordinator: internal compacted topics, created on first
// use, whose partitions live on their owning shards like any other
// partition, written acks=all.
#include <map>
#include <string>

#include "coordinator/group_service.h"

namespace gregor::broker {

class broker;

// How an internal topic is created.
struct internal_topic_spec {
  std::string name;
  int32_t num_partitions = 50;
  int16_t replication_factor = 3;  // capped at the live brokers
  int32_t min_insync_replicas = 0;  // capped at the replication factor; 0: the broker's default
  std::map<std::string, std::string> configs;
};
internal_topic_spec consumer_offsets_spec(const struct broker_config& c);
internal_topic_spec transaction_state_spec(const struct broker_config& c);

class consumer_offsets_log final : public coordinator::offsets_log {
 public:
  // __consumer_offsets.
  explicit consumer_offsets_log(broker& b);
  consumer_offsets_log(broker& b, internal_topic_spec spec) : b_(b), spec_(std::move(spec)) {}
  int32_t partition_count() override;
  runtime::task<result<int32_t>> create_topic() override;
  runtime::task<append_result> append(int32_t partition, bytes batch) override;
  runtime::task<result<bytes>> read(int32_t partition, int64_t offset) override;
  runtime::task<bool> committed_up_to(int32_t partition, int64_t offset) override;

 private:
  broker& b_;
  internal_topic_spec spec_;
};

// The coordinator's settings from the broker's.
coordinator::group_config group_config_from(const struct broker_config& c);

}  // namespace gregor::broker
