#include "broker/isr_changes.h"

#include <fmt/ranges.h>

#include <vector>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/lifecycle.h"
#include "protocol/messages.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
constexpr int64_t kIsrCheckMs = 100;
constexpr int64_t kResendMs = 1000;  // after a lost answer
constexpr int64_t kRefusedBackoffMs = 1000;  // after a refusal (e.g. INELIGIBLE_REPLICA: a fenced follower)
constexpr int16_t kAlterPartitionVersion = 3;
auto lg() { return log::get("replication"); }

metadata::alter_partition_result from_wire(const metadata::alter_partition_request& req,
                                           const protocol::alter_partition_response& resp) {
  metadata::alter_partition_result out;
  out.error = static_cast<error_code>(resp.error_code);
  for (auto& item : req.partitions) {
    metadata::alter_partition_answer a;
    a.error = error_code::unknown_topic_or_partition;  // the controller did not mention it
    for (auto& t : resp.topics) {
      if (!(t.topic_id == item.topic_id)) continue;
      for (auto& p : t.partitions) {
        if (p.partition_index != item.partition) continue;
        a.error = static_cast<error_code>(p.error_code);
        a.partition.partition = p.partition_index;
        a.partition.leader = p.leader_id;
        a.partition.leader_epoch = p.leader_epoch;
        a.partition.isr = p.isr;
        a.partition.leader_recovery_state = p.leader_recovery_state;
        a.partition.partition_epoch = p.partition_epoch;
      }
    }
    out.partitions.push_back(std::move(a));
  }
  return out;
}

protocol::alter_partition_request to_wire(const metadata::alter_partition_request& req) {
  protocol::alter_partition_request w;
  w.broker_id = req.broker_id;
  w.broker_epoch = req.broker_epoch;
  for (auto& item : req.partitions) {
    if (w.topics.empty() || !(w.topics.back().topic_id == item.topic_id)) {
      auto& t = w.topics.emplace_back();
      t.topic_id = item.topic_id;
      t.topic_name = item.topic_name;
    }
    auto& p = w.topics.back().partitions.emplace_back();
    p.partition_index = item.partition;
    p.leader_epoch = item.leader_epoch;
    p.partition_epoch = item.partition_epoch;
    p.leader_recovery_state = item.leader_recovery_state;
    for (auto& m : item.new_isr) {
      p.new_isr.push_back(m.broker_id);
      p.new_isr_with_epochs.push_back({m.broker_id, m.broker_epoch, {}});
    }
  }
  return w;
}

// The changes this shard's leaders want now (and those whose answer was lost).
metadata::alter_partition_request collect(broker& b, const metadata::image& img, int64_t now,
                                          std::vector<topic_partition>& items) {
  metadata::alter_partition_request req;
  req.broker_id = b.config().node_id;
  req.version = kAlterPartitionVersion;
  for (auto& [tp, r] : b.partitions().replicas()) {
    if (!r.leader) continue;
    std::optional<replication::isr_proposal> p;
    if (r.leader->proposal_in_flight()) {
      if (r.proposal_resend_at_ms < 0 || now < r.proposal_resend_at_ms) continue;
      p = r.leader->in_flight();
    } else {
      if (now < r.proposals_paused_until_ms) continue;
      p = r.leader->isr_change_needed(now);
      if (!p) continue;
      r.leader->proposal_sent(*p);
      r.proposal_partition_epoch = r.partition_epoch;
      lg()->info("{}-{}: {} the ISR from {} to {} ({} {})", tp.topic, tp.partition,
                 p->reason == replication::isr_proposal::why::shrink ? "shrinking" : "expanding",
                 fmt::join(r.leader->isr(), ","), fmt::join(p->isr, ","),
                 p->reason == replication::isr_proposal::why::shrink ? "out of sync:" : "caught up:",
                 fmt::join(p->changed, ","));
    }
    r.proposal_resend_at_ms = -1;  // in flight now
    auto& item = req.partitions.emplace_back();
    item.topic_name = tp.topic;
    item.topic_id = r.topic_id;
    item.partition = tp.partition;
    item.leader_epoch = r.leader_epoch;
    item.partition_epoch = r.proposal_partition_epoch;
    item.leader_recovery_state = 0;  // nothing to recover: a leader's log is whole as soon as it leads
    for (int32_t id : p->isr) {
      auto* reg = img.broker(id);
      item.new_isr.push_back({id, reg ? reg->broker_epoch : -1});
    }
    items.push_back(tp);
  }
  return req;
}

// Settles each proposal with the controller's answer.
void settle(broker& b, const metadata::alter_partition_request& req, const std::vector<topic_partition>& items,
            const metadata::alter_partition_result& result, int64_t now) {
  bool hw_moved = false;
  auto& pm = b.partitions();
  for (size_t i = 0; i < items.size(); ++i) {
    auto& tp = items[i];
    auto* r = pm.replica(tp.topic, tp.partition);
    // A new leadership since: its own state starts afresh.
    if (!r || !r->leader || r->leader_epoch != req.partitions[i].leader_epoch || !r->leader->proposal_in_flight() ||
        r->proposal_partition_epoch != req.partitions[i].partition_epoch)
      continue;
    if (result.error == error_code::request_timed_out && result.partitions.empty()) {
      // No answer: the change may or may not have been made. Keep counting
      // the larger ISR and ask again.
      r->proposal_resend_at_ms = now + kResendMs;
      continue;
    }
    const auto* a = i < result.partitions.size() ? &result.partitions[i] : nullptr;
    if (result.error == error_code::none && a && a->error == error_code::none) {
      hw_moved |= r->leader->on_isr_committed(a->partition.isr);
      r->partition_epoch = a->partition.partition_epoch;
      continue;
    }
    error_code e = result.error != error_code::none ? result.error : a ? a->error : error_code::unknown_server_error;
    lg()->info("{}-{}: the controller refused the ISR change: {}", tp.topic, tp.partition, protocol::error_name(e));
    // Not made: the ISR stays as committed (the next image says if anything
    // else changed), and the same proposal is not sent again at once.
    hw_moved |= r->leader->on_isr_committed(r->leader->isr());
    r->proposals_paused_until_ms = now + kRefusedBackoffMs;
  }
  if (hw_moved) b.notify(broker::event::high_watermark);
}
}  // namespace

runtime::task<metadata::alter_partition_result> send_alter_partition(broker& b,
                                                                     const metadata::alter_partition_request& req) {
  metadata::alter_partition_result result;
  if (b.quorum().leader_id() == b.config().node_id && b.controller()) {
    auto d = co_await b.controller_write(
        [&](const metadata::image& img, std::vector<metadata::record>& out) {
          result = metadata::plan_alter_partition(img, req, out);
          return metadata::decision{};
        },
        false);
    if (!d.ok()) {
      result = {};
      result.error = d.error == error_code::not_controller ? error_code::request_timed_out : d.error;
    }
    co_return result;
  }
  auto r = co_await b.call_controller<protocol::alter_partition_response>(to_wire(req), kAlterPartitionVersion,
                                                                         b.config().quorum_request_timeout_ms);
  if (!r) {
    result.error = error_code::request_timed_out;
    co_return result;
  }
  co_return from_wire(req, r.value());
}

runtime::task<void> run_isr_changes(broker& b) {
  while (!b.stopping()) {
    co_await runtime::sleep_for(kIsrCheckMs);
    if (b.stopping()) break;
    auto img = b.image();
    int64_t now = runtime::wall_clock_ms();
    std::vector<topic_partition> items;
    auto req = collect(b, *img, now, items);
    if (items.empty()) continue;
    req.broker_epoch = co_await runtime::submit_to(0, [&b]() -> runtime::task<int64_t> {
      co_return b.lifecycle() ? b.lifecycle()->broker_epoch() : -1;
    });
    auto result = co_await runtime::submit_to(0, [&b, &req]() -> runtime::task<metadata::alter_partition_result> {
      co_return co_await send_alter_partition(b, req);
    });
    settle(b, req, items, result, runtime::wall_clock_ms());
  }
}

}  // namespace gregor::broker
