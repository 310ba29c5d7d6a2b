#pragma once
// __consumer_offsets for the group coordinator: the internal compacted topic,
// created on first use, whose partitions live on their owning shards like
// any other partition.
#include "coordinator/group_service.h"

namespace gregor::broker {

class broker;

class consumer_offsets_log final : public coordinator::offsets_log {
 public:
  explicit consumer_offsets_log(broker& b) : b_(b) {}
  int32_t partition_count() override;
  runtime::task<result<int32_t>> create_topic() override;
  runtime::task<append_result> append(int32_t partition, bytes batch) override;
  runtime::task<result<bytes>> read(int32_t partition, int64_t offset) override;

 private:
  broker& b_;
};

// The coordinator's settings from the broker's.
coordinator::group_config group_config_from(const struct broker_config& c);

}  // namespace gregor::broker
