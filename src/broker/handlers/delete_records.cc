// DeleteRecords: moves log start offsets forward (offset -1 = the high
// watermark); whole segments below the new start are deleted, and the answer
// carries each partition's new low watermark.
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::delete_records_response;

runtime::task<std::optional<response>> handle_delete_records(request_context& ctx,
                                                             protocol::delete_records_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  const broker_config& eff = b.partitions().effective_config();
  std::vector<delete_records_work> work;
  for (auto& t : req.topics)
    for (auto& p : t.partitions) work.push_back(delete_records_work{&t.name, p.partition_index, p.offset});
  std::map<size_t, std::vector<delete_records_work*>> by_shard;
  for (auto& w : work) {
    auto* t = img->topic(*w.topic);
    if (!t || w.partition < 0 || static_cast<size_t>(w.partition) >= t->partitions.size()) {
      w.error = error_code::unknown_topic_or_partition;
      continue;
    }
    auto policy = t->configs.find("cleanup.policy");
    if ((policy == t->configs.end() ? eff.log_cleanup_policy : policy->second).find("delete") == std::string::npos) {
      // Kafka: records of compacted-only topics cannot be deleted.
      w.error = error_code::policy_violation;
      continue;
    }
    by_shard[shard_of(*w.topic, w.partition, b.shard_count())].push_back(&w);
  }
  for (auto& [shard, items] : by_shard) co_await delete_records_on_shard(b, shard, items);

  response resp;
  size_t wi = 0;
  for (auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    for (size_t i = 0; i < t.partitions.size(); ++i) {
      auto& w = work[wi++];
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = w.partition;
      pr.error_code = static_cast<int16_t>(w.error);
      pr.low_watermark = w.error == error_code::none ? w.low_watermark : -1;
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
