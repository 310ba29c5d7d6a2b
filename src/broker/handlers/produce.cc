// Produce: validate each partition's record batches, append them on the
// shard that owns the partition, and answer with the offsets assigned.
// acks=0 gets no response at all, as in Kafka.
#include <map>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::produce_response;

runtime::task<std::optional<response>> handle_produce(request_context& ctx, protocol::produce_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  const bool legacy = ctx.version() < 3;  // magic 0/1 message sets: not yet up-converted
  const bool bad_acks = req.acks != -1 && req.acks != 0 && req.acks != 1;

  response resp;
  // Work per owning shard; each item knows its slot in `resp`.
  std::map<size_t, std::vector<append_work>> by_shard;
  for (auto& topic : req.topic_data) {
    auto& tr = resp.responses.emplace_back();
    tr.name = topic.name;
    auto* t = img->topic(topic.name);
    for (auto& part : topic.partition_data) {
      auto& pr = tr.partition_responses.emplace_back();
      pr.index = part.index;
      pr.base_offset = -1;
      if (legacy) pr.error_code = static_cast<int16_t>(error_code::unsupported_version);
      else if (bad_acks) pr.error_code = static_cast<int16_t>(error_code::invalid_required_acks);
      else if (!t || part.index < 0 || static_cast<size_t>(part.index) >= t->partitions.size())
        pr.error_code = static_cast<int16_t>(error_code::unknown_topic_or_partition);
      else if (part.records.is_null() || part.records.size() == 0)
        pr.error_code = static_cast<int16_t>(error_code::corrupt_message);
      else {
        auto& w = by_shard[shard_of(topic.name, part.index, b.shard_count())].emplace_back(
            append_work{&topic.name, part.index, part.records.view(), &t->configs, resp.responses.size() - 1,
                        tr.partition_responses.size() - 1, {}});
        w.transactional_request = req.transactional_id.has_value() && !req.transactional_id->empty();
      }
    }
  }
  // All shards' appends start now, in this request's turn: a pipelined request
  // after this one cannot overtake it on any partition.
  std::vector<runtime::shard_job> jobs;
  for (auto& entry : by_shard) {
    auto* work = &entry.second;
    jobs.push_back({entry.first, [&b, work, acks = req.acks] { append_here(b, *work, acks); }});
  }
  co_await runtime::run_on_shards(std::move(jobs));

  // acks=all: a delayed produce, answered once the ISR has every record.
  if (req.acks == -1) co_await await_acks(b, by_shard, runtime::monotonic_ms() + std::max<int32_t>(req.timeout_ms, 0));

  for (auto& [shard, work] : by_shard) {
    for (auto& w : work) {
      auto& pr = resp.responses[w.topic_slot].partition_responses[w.partition_slot];
      pr.error_code = static_cast<int16_t>(w.result.error);
      pr.base_offset = w.result.error == error_code::none ? w.result.base_offset : -1;
      pr.log_append_time_ms = w.result.log_append_time_ms;
      pr.log_start_offset = w.result.log_start_offset;
      if (!w.result.message.empty()) pr.error_message = w.result.message;
    }
  }
  if (req.acks == 0) co_return std::nullopt;
  co_return resp;
}

}  // namespace gregor::broker
