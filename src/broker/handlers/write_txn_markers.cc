// WriteTxnMarkers: the transaction coordinator asks this broker, as leader of
// each named partition, to close a producer's transaction there with a
// COMMIT or ABORT control batch. Each marker is written as acks=all and
// answered once the ISR has it, as Kafka does (the coordinator writes its
// Complete* state only after every partition answered).
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"
#include "coordinator/group_coordinator.h"
#include "coordinator/group_service.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::write_txn_markers_response;

namespace {
// How long a marker may wait for its ISR before REQUEST_TIMED_OUT (the
// coordinator retries): Kafka uses request.timeout.ms's default.
constexpr int64_t kMarkerAckTimeoutMs = 30000;
}  // namespace

runtime::task<std::optional<response>> handle_write_txn_markers(request_context& ctx,
                                                                protocol::write_txn_markers_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  response resp;
  // One append per (marker, partition), grouped by owning shard; each item
  // knows its slot: resp.markers[i].topics[topic_slot].partitions[partition_slot].
  std::map<size_t, std::vector<append_work>> by_shard;
  std::map<size_t, std::vector<size_t>> marker_of;  // per shard, per item: its marker's index
  static const std::map<std::string, std::string> kNoConfigs;
  for (size_t mi = 0; mi < req.markers.size(); ++mi) {
    auto& m = req.markers[mi];
    auto& mr = resp.markers.emplace_back();
    mr.producer_id = m.producer_id;
    for (auto& t : m.topics) {
      auto& tr = mr.topics.emplace_back();
      tr.name = t.name;
      auto* topic = img->topic(t.name);
      for (int32_t p : t.partition_indexes) {
        auto& pr = tr.partitions.emplace_back();
        pr.partition_index = p;
        if (!topic || p < 0 || static_cast<size_t>(p) >= topic->partitions.size()) {
          pr.error_code = static_cast<int16_t>(error_code::unknown_topic_or_partition);
          continue;
        }
        size_t shard = shard_of(t.name, p, b.shard_count());
        by_shard[shard].push_back(append_work{&t.name, p, {}, &kNoConfigs, mr.topics.size() - 1,
                                              tr.partitions.size() - 1, {}});
        marker_of[shard].push_back(mi);
      }
    }
  }
  std::vector<runtime::shard_job> jobs;
  for (auto& [shard, work] : by_shard) {
    auto* items = &work;
    auto* marks = &marker_of[shard];
    jobs.push_back({shard, [&b, &req, items, marks] {
                      for (size_t i = 0; i < items->size(); ++i) {
                        auto& m = req.markers[(*marks)[i]];
                        append_marker_here(b, (*items)[i], m.producer_id, m.producer_epoch,
                                           storage::txn_marker{m.transaction_result, m.coordinator_epoch});
                      }
                      check_acks_here(b, *items);
                    }});
  }
  co_await runtime::run_on_shards(std::move(jobs));
  co_await await_acks(b, by_shard, runtime::monotonic_ms() + kMarkerAckTimeoutMs);

  for (auto& [shard, work] : by_shard) {
    auto& marks = marker_of[shard];
    for (size_t i = 0; i < work.size(); ++i) {
      auto& w = work[i];
      auto& pr = resp.markers[marks[i]].topics[w.topic_slot].partitions[w.partition_slot];
      pr.error_code = static_cast<int16_t>(w.result.error);
      // A marker in __consumer_offsets settles the producer's transactional
      // offset commits there, once the ISR has it.
      if (w.result.error == error_code::none && *w.topic == coordinator::offsets_topic_name) {
        auto& m = req.markers[marks[i]];
        co_await b.groups().on_txn_marker(w.partition, m.producer_id, m.transaction_result);
      }
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
