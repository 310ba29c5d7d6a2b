// DescribeProducers (KIP-664): the producers each partition's leader keeps
// state for, read on the partition's shard.
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::describe_producers_response;

runtime::task<std::optional<response>> handle_describe_producers(request_context& ctx,
                                                                 protocol::describe_producers_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  response resp;
  using partition_response = response::partition_response;
  std::map<size_t, std::vector<std::pair<const std::string*, partition_response*>>> by_shard;
  for (auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    tr.partitions.reserve(t.partition_indexes.size());  // pointers into it are kept below
    auto* topic = img->topic(t.name);
    for (int32_t p : t.partition_indexes) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = p;
      if (!topic || p < 0 || static_cast<size_t>(p) >= topic->partitions.size())
        pr.error_code = static_cast<int16_t>(error_code::unknown_topic_or_partition);
      else
        by_shard[shard_of(t.name, p, b.shard_count())].emplace_back(&t.name, &pr);
    }
  }
  for (auto& [shard, items] : by_shard) {
    co_await runtime::submit_to_void(shard, [&b, &items = items]() -> runtime::task<void> {
      for (auto& [topic, pr] : items) {
        auto* log = b.partitions().find_leader(*topic, pr->partition_index);
        if (!log) {
          pr->error_code = static_cast<int16_t>(error_code::not_leader_or_follower);
          continue;
        }
        for (auto& [id, e] : log->producers().producers()) {
          auto& ps = pr->active_producers.emplace_back();
          ps.producer_id = id;
          ps.producer_epoch = e.epoch;
          ps.last_sequence = e.last_sequence();
          ps.last_timestamp = e.last_timestamp;
          ps.coordinator_epoch = e.coordinator_epoch;
          ps.current_txn_start_offset = e.current_txn_first_offset;
        }
      }
      co_return;
    });
  }
  co_return resp;
}

}  // namespace gregor::broker
