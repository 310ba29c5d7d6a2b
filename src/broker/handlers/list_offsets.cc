// ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+) or the
// first offset whose timestamp is at or after the one asked for.
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::list_offsets_response;

runtime::task<std::optional<response>> handle_list_offsets(request_context& ctx, protocol::list_offsets_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  std::vector<offset_query> queries;
  for (auto& t : req.topics)
    for (auto& p : t.partitions)
      queries.push_back(offset_query{&t.name, p.partition_index, p.timestamp, p.current_leader_epoch,
                                     ctx.version() >= 2 && req.isolation_level == 1});

  std::map<size_t, std::vector<offset_query*>> by_shard;
  for (auto& q : queries) {
    auto* t = img->topic(*q.topic);
    if (!t || q.partition < 0 || static_cast<size_t>(q.partition) >= t->partitions.size()) {
      q.error = error_code::unknown_topic_or_partition;
      continue;
    }
    if (q.timestamp == -3 && ctx.version() < 7) {
      q.error = error_code::unsupported_version;
      continue;
    }
    by_shard[shard_of(*q.topic, q.partition, b.shard_count())].push_back(&q);
  }
  for (auto& [shard, items] : by_shard) co_await list_offsets_on_shard(b, shard, items);

  response resp;
  size_t qi = 0;
  for (auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    for (size_t i = 0; i < t.partitions.size(); ++i) {
      auto& q = queries[qi++];
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = q.partition;
      pr.error_code = static_cast<int16_t>(q.error);
      if (ctx.version() == 0) {
        if (q.error == error_code::none && q.offset >= 0 && t.partitions[i].max_num_offsets > 0)
          pr.old_style_offsets.push_back(q.offset);
      } else {
        pr.offset = q.error == error_code::none ? q.offset : -1;
        pr.timestamp = q.error == error_code::none ? q.found_timestamp : -1;
        pr.leader_epoch = q.error == error_code::none && q.offset >= 0 ? q.leader_epoch : -1;
      }
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
