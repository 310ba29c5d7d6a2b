#include "replication/leader_state.h"

#include <algorithm>

namespace gregor::replication {

leader_state::leader_state(int32_t local_id, int32_t leader_epoch, std::vector<int32_t> replicas,
                           std::vector<int32_t> isr, int64_t log_end_offset, int64_t high_watermark,
                           int64_t leader_epoch_start_offset, int64_t now_ms, leader_settings settings)
    : local_id_(local_id), leader_epoch_(leader_epoch), replicas_(std::move(replicas)), isr_(std::move(isr)),
      log_end_offset_(log_end_offset), high_watermark_(std::min(high_watermark, log_end_offset)),
      leader_epoch_start_offset_(leader_epoch_start_offset), settings_(settings) {
  for (int32_t r : replicas_) {
    if (r == local_id_) continue;
    follower_progress p;
    // Followers in the ISR get a full lag window to show up under this
    // leader (Kafka resets lastCaughtUpTimeMs the same way on election).
    if (in_isr(r)) p.last_caught_up_ms = now_ms;
    followers_[r] = p;
  }
  maybe_advance_high_watermark();
}

bool leader_state::in_isr(int32_t id) const { return std::find(isr_.begin(), isr_.end(), id) != isr_.end(); }

std::vector<int32_t> leader_state::maximal_isr() const {
  auto out = isr_;
  if (in_flight_ && in_flight_->reason == isr_proposal::why::expand)
    for (int32_t r : in_flight_->changed)
      if (!in_isr(r)) out.push_back(r);
  return out;
}

bool leader_state::maybe_advance_high_watermark() {
  auto isr = maximal_isr();
  // KIP-966: nothing is committed on fewer copies than min.insync.replicas.
  if (static_cast<int32_t>(isr_.size()) < settings_.min_insync_replicas) return false;
  int64_t smallest = log_end_offset_;
  for (int32_t r : isr) {
    if (r == local_id_) continue;
    auto it = followers_.find(r);
    int64_t leo = it == followers_.end() ? -1 : it->second.log_end_offset;
    smallest = std::min(smallest, leo);
  }
  if (smallest <= high_watermark_) return false;
  high_watermark_ = smallest;
  return true;
}

error_code leader_state::check_append(int16_t acks) const {
  if (acks == -1 && static_cast<int32_t>(isr_.size()) < settings_.min_insync_replicas)
    return error_code::not_enough_replicas;
  return error_code::none;
}

bool leader_state::on_append(int64_t log_end_offset) {
  log_end_offset_ = std::max(log_end_offset_, log_end_offset);
  return maybe_advance_high_watermark();
}

ack_status leader_state::ack_status_for(int64_t required_offset) const {
  if (static_cast<int32_t>(isr_.size()) < settings_.min_insync_replicas)
    return ack_status::not_enough_replicas_after_append;
  return high_watermark_ >= required_offset ? ack_status::done : ack_status::wait;
}

bool leader_state::on_follower_fetch(int32_t replica_id, int64_t fetch_offset, int64_t now_ms) {
  auto it = followers_.find(replica_id);
  if (it == followers_.end()) return false;  // not a replica (the caller answers NOT_LEADER_OR_FOLLOWER)
  auto& p = it->second;
  // Kafka's rule: caught up now if it has everything; or, if it has what the
  // leader had at its previous fetch, it was caught up then.
  if (fetch_offset >= log_end_offset_) p.last_caught_up_ms = now_ms;
  else if (p.leader_leo_at_last_fetch >= 0 && fetch_offset >= p.leader_leo_at_last_fetch)
    p.last_caught_up_ms = std::max(p.last_caught_up_ms, p.last_fetch_ms);
  p.log_end_offset = std::min(fetch_offset, log_end_offset_);
  p.last_fetch_ms = now_ms;
  p.leader_leo_at_last_fetch = log_end_offset_;
  return maybe_advance_high_watermark();
}

std::optional<isr_proposal> leader_state::isr_change_needed(int64_t now_ms) const {
  if (in_flight_) return std::nullopt;
  isr_proposal shrink{isr_, isr_proposal::why::shrink, {}};
  for (int32_t r : isr_) {
    if (r == local_id_) continue;
    auto it = followers_.find(r);
    bool lagging = it == followers_.end() ||
                   now_ms - it->second.last_caught_up_ms > settings_.replica_lag_time_max_ms;
    if (lagging) shrink.changed.push_back(r);
  }
  if (!shrink.changed.empty()) {
    std::erase_if(shrink.isr, [&](int32_t r) {
      return std::find(shrink.changed.begin(), shrink.changed.end(), r) != shrink.changed.end();
    });
    return shrink;
  }
  isr_proposal expand{isr_, isr_proposal::why::expand, {}};
  for (auto& [r, p] : followers_) {
    if (in_isr(r)) continue;
    // Caught up to what is committed, and to this leader's own records; and
    // recently enough that it would not be shrunk out again at once (Kafka
    // expands only on a fetch; progress seen long ago would make a dead
    // follower flap in and out of the ISR).
    if (p.log_end_offset >= high_watermark_ && p.log_end_offset >= leader_epoch_start_offset_ &&
        p.last_caught_up_ms >= 0 && now_ms - p.last_caught_up_ms <= settings_.replica_lag_time_max_ms) {
      expand.changed.push_back(r);
      expand.isr.push_back(r);
    }
  }
  if (!expand.changed.empty()) return expand;
  return std::nullopt;
}

void leader_state::proposal_sent(const isr_proposal& p) { in_flight_ = p; }

bool leader_state::on_isr_committed(std::vector<int32_t> isr) {
  isr_ = std::move(isr);
  in_flight_.reset();
  return maybe_advance_high_watermark();
}

bool leader_state::set_settings(leader_settings settings) {
  settings_ = settings;
  return maybe_advance_high_watermark();
}

void leader_state::on_replicas_changed(std::vector<int32_t> replicas) {
  replicas_ = std::move(replicas);
  std::erase_if(followers_, [&](const auto& kv) {
    return std::find(replicas_.begin(), replicas_.end(), kv.first) == replicas_.end();
  });
  for (int32_t r : replicas_)
    if (r != local_id_) followers_.try_emplace(r);
}

}  // namespace gregor::replication
