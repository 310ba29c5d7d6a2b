// OffsetForLeaderEpoch: the end offset of a leader epoch in this leader's log,
// from the partition's leader epoch cache. A consumer that saw a leader
// change asks it to learn whether the log it read was truncated (KIP-320);
// a follower to find where its log diverged from the leader's (KIP-101).
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "replication/divergence.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::offset_for_leader_epoch_response;

namespace {

struct epoch_query {
  const std::string* topic;
  int32_t partition;
  int32_t current_leader_epoch;
  int32_t leader_epoch;
  error_code error = error_code::none;
  storage::epoch_end end;
};

}  // namespace

runtime::task<std::optional<response>> handle_offset_for_leader_epoch(request_context& ctx,
                                                                      protocol::offset_for_leader_epoch_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  std::vector<epoch_query> work;
  for (auto& t : req.topics)
    for (auto& p : t.partitions) work.push_back({&t.topic, p.partition, p.current_leader_epoch, p.leader_epoch});
  std::map<size_t, std::vector<epoch_query*>> by_shard;
  for (auto& q : work) {
    auto* t = img->topic(*q.topic);
    if (!t || q.partition < 0 || static_cast<size_t>(q.partition) >= t->partitions.size()) {
      q.error = error_code::unknown_topic_or_partition;
      continue;
    }
    by_shard[shard_of(*q.topic, q.partition, b.shard_count())].push_back(&q);
  }
  for (auto& entry : by_shard) {
    auto* items = &entry.second;
    co_await runtime::submit_to_void(entry.first, [&b, items]() -> runtime::task<void> {
      for (auto* q : *items) {
        auto* log = b.partitions().find_leader(*q->topic, q->partition);
        if (!log) {
          q->error = error_code::not_leader_or_follower;
          continue;
        }
        q->error = replication::check_leader_epoch(q->current_leader_epoch,
                                                   b.partitions().leader_epoch(*q->topic, q->partition));
        if (q->error == error_code::none) q->end = log->leader_epochs().end_offset_for(q->leader_epoch, log->log_end_offset());
      }
      co_return;
    });
  }

  response resp;
  size_t wi = 0;
  for (auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.topic = t.topic;
    for (size_t i = 0; i < t.partitions.size(); ++i) {
      auto& q = work[wi++];
      auto& pr = tr.partitions.emplace_back();
      pr.partition = q.partition;
      pr.error_code = static_cast<int16_t>(q.error);
      pr.leader_epoch = q.error == error_code::none ? q.end.epoch : -1;
      pr.end_offset = q.error == error_code::none ? q.end.end_offset : -1;
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
