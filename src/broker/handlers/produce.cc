// Produce: validate each partition's record batches, append them on the
// shard that owns the partition, and answer with the offsets assigned.
// acks=0 gets no response at all, as in Kafka.
#include <algorithm>
#include <map>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"
#include "broker/transactions.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::produce_response;

namespace {
// KIP-890 part 1: the batches that would open their producer's transaction
// on a partition are verified with the transaction coordinator first (one
// question per request); those it does not confirm get its answer instead of
// being written. append_here checks the guard again, since a marker may come
// between the answer and the append.
runtime::task<void> verify_transactional_batches(broker& b, const std::string& transactional_id,
                                                 std::map<size_t, std::vector<append_work>>& by_shard,
                                                 int32_t timeout_ms) {
  std::vector<runtime::shard_job> jobs;
  for (auto& entry : by_shard) {
    auto* work = &entry.second;
    jobs.push_back({entry.first, [&b, work] { begin_verification_here(b, *work); }});
  }
  co_await runtime::run_on_shards(std::move(jobs));

  std::vector<append_work*> pending;
  std::vector<coordinator::topic_partition> tps;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  for (auto& [shard, work] : by_shard)
    for (auto& w : work) {
      if (!w.needs_verification) continue;
      auto h = protocol::batch_header::parse(w.records.data());
      if (producer_id < 0) producer_id = h.producer_id, producer_epoch = h.producer_epoch;
      if (h.producer_id != producer_id || h.producer_epoch != producer_epoch) {
        // One transactional id is one producer: anything else is malformed.
        w.result.error = error_code::invalid_record;
        w.result.message = "Transactional batches of more than one producer in one Produce request";
        continue;
      }
      pending.push_back(&w);
      tps.emplace_back(*w.topic, w.partition);
    }
  if (pending.empty()) co_return;
  int64_t timeout = std::clamp<int64_t>(timeout_ms, 1000, 30000);
  auto errors = co_await runtime::submit_to(
      b.transactions().home_shard(),
      [&b, &transactional_id, producer_id, producer_epoch, &tps, timeout]()
          -> runtime::task<std::vector<error_code>> {
        co_return co_await b.txn_verifier().verify(transactional_id, producer_id, producer_epoch, tps, timeout);
      });
  for (size_t i = 0; i < pending.size(); ++i) {
    if (errors[i] == error_code::none) continue;
    pending[i]->result.error = errors[i];
    pending[i]->result.message = "The transaction coordinator of " + transactional_id + " did not verify " +
                                 tps[i].first + "-" + std::to_string(tps[i].second) + ": " +
                                 std::string(protocol::error_name(errors[i]));
  }
}
}  // namespace

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
  if (req.transactional_id && !req.transactional_id->empty() && !by_shard.empty())
    co_await verify_transactional_batches(b, *req.transactional_id, by_shard, req.timeout_ms);

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
