// Fetch: read from each partition's log (whole batches, zero copy) and, when
// less than min_bytes is there, wait for appends until max_wait_ms: the
// long poll every consumer relies on.
#include <algorithm>
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::fetch_response;

namespace {
// KIP-392's RackAwareReplicaSelector, on the leader: an in-sync replica in
// the consumer's rack when the leader is not in it (-1: read here).
int32_t preferred_read_replica(const metadata::image& img, const metadata::partition_state& p, int32_t self,
                               const std::string& client_rack) {
  if (p.leader != self) return -1;
  auto rack_of = [&](int32_t id) -> std::optional<std::string> {
    auto* reg = img.broker(id);
    return reg && !reg->fenced ? reg->rack : std::nullopt;
  };
  if (rack_of(self) == client_rack) return -1;
  for (int32_t r : p.isr)
    if (r != self && rack_of(r) == client_rack) return r;
  return -1;
}

// The one shard that owns every partition of the request, if there is one.
std::optional<size_t> only_shard(broker& b, const protocol::fetch_request& req) {
  std::optional<size_t> home;
  for (auto& t : req.topics)
    for (auto& p : t.partitions) {
      size_t s = shard_of(t.topic, p.partition, b.shard_count());
      if (home && *home != s) return std::nullopt;
      home = s;
    }
  return home;
}
}  // namespace

runtime::task<std::optional<response>> fetch_until_ready(request_context& ctx, protocol::fetch_request& req,
                                                        int64_t deadline);

runtime::task<std::optional<response>> handle_fetch(request_context& ctx, protocol::fetch_request& req) {
  auto& b = ctx.b;
  // On the controller listener: a quorum member fetching the metadata log.
  if (ctx.listener_kind_mask == on_controller) {
    int16_t v = ctx.version();
    co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<response>> {
      co_return co_await b.quorum().handle_fetch(req, v);
    });
  }
  const int64_t deadline = runtime::monotonic_ms() + std::max<int32_t>(req.max_wait_ms, 0);
  // Incremental fetch sessions are optional for clients; we answer every
  // fetch in full with session id 0, and refuse to continue a session.
  if (req.session_id != 0) {
    response resp;
    resp.error_code = static_cast<int16_t>(error_code::fetch_session_id_not_found);
    co_return resp;
  }
  // A fetch whose partitions all live on one other shard (a follower's
  // fetcher asks for one shard's partitions; many consumers read one
  // partition) reads and waits there: no hop per read or per wake-up.
  if (auto home = only_shard(b, req); home && *home != runtime::this_shard()) {
    co_return co_await runtime::submit_to(*home, [&]() -> runtime::task<std::optional<response>> {
      co_return co_await fetch_until_ready(ctx, req, deadline);
    });
  }
  co_return co_await fetch_until_ready(ctx, req, deadline);
}

runtime::task<std::optional<response>> fetch_until_ready(request_context& ctx, protocol::fetch_request& req,
                                                        int64_t deadline) {
  auto& b = ctx.b;
  // A follower waits for records to copy; a consumer for records it may see.
  const auto wake_on = req.replica_id >= 0 ? broker::event::appended : broker::event::high_watermark;
  for (;;) {
    auto img = b.image();
    uint64_t epoch = b.event_epoch(wake_on);
    response resp;
    std::vector<read_work> work;
    for (auto& t : req.topics)
      for (auto& p : t.partitions)
        work.push_back(read_work{&t.topic, p.partition, p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch,
                                 p.last_fetched_epoch, req.replica_id});

    std::map<size_t, std::vector<read_work*>> by_shard;
    const bool rack_aware = !b.partitions().effective_config().replica_selector_class.empty() && !req.rack_id.empty() &&
                            req.replica_id < 0 && ctx.version() >= 11;
    for (auto& w : work) {
      auto* t = img->topic(*w.topic);
      if (!t || w.partition < 0 || static_cast<size_t>(w.partition) >= t->partitions.size()) {
        w.error = error_code::unknown_topic_or_partition;
        continue;
      }
      w.follower_may_serve = req.replica_id < 0 && ctx.version() >= 11;
      w.read_committed = req.replica_id < 0 && req.isolation_level == 1;
      if (rack_aware)
        w.preferred_read_replica = preferred_read_replica(*img, t->partitions[static_cast<size_t>(w.partition)],
                                                          b.config().node_id, req.rack_id);
      by_shard[shard_of(*w.topic, w.partition, b.shard_count())].push_back(&w);
    }
    int64_t budget = req.max_bytes;
    bool first_batch_pending = true;
    for (auto& [shard, items] : by_shard) co_await read_on_shard(b, shard, items, budget, first_batch_pending);

    size_t total = 0;
    bool any_error = false;
    size_t wi = 0;
    for (auto& t : req.topics) {
      auto& tr = resp.responses.emplace_back();
      tr.topic = t.topic;
      for (size_t i = 0; i < t.partitions.size(); ++i) {
        auto& w = work[wi++];
        auto& pd = tr.partitions.emplace_back();
        pd.partition_index = w.partition;
        pd.error_code = static_cast<int16_t>(w.error);
        pd.high_watermark = w.high_watermark;
        pd.last_stable_offset = w.last_stable_offset >= 0 ? w.last_stable_offset : w.high_watermark;
        pd.log_start_offset = w.log_start_offset;
        if (ctx.version() >= 4) {
          auto& aborted = pd.aborted_transactions.emplace();  // empty, not null, when none
          for (auto& [pid, first] : w.aborted_transactions) aborted.push_back({pid, first, {}});
        }
        pd.preferred_read_replica = w.preferred_read_replica;
        if (w.diverging_epoch) pd.diverging_epoch = {w.diverging_epoch->epoch, w.diverging_epoch->end_offset, {}};
        total += w.records.size();
        // An error or a divergence is an answer now, as in Kafka.
        any_error |= w.error != error_code::none || w.diverging_epoch.has_value() || w.preferred_read_replica >= 0;
        pd.records.set(std::move(w.records));
      }
    }
    int64_t now = runtime::monotonic_ms();
    if (static_cast<int64_t>(total) >= req.min_bytes || any_error || now >= deadline || req.topics.empty())
      co_return resp;
    co_await b.wait_for(wake_on, epoch, deadline - now);
  }
}

}  // namespace gregor::broker
