#include "replication/follower_state.h"

#include <algorithm>

namespace gregor::replication {

follower_state::follower_state(int32_t leader_id, int32_t leader_epoch, int64_t log_end_offset,
                               int64_t high_watermark)
    : leader_id_(leader_id), leader_epoch_(leader_epoch),
      high_watermark_(std::min(high_watermark, log_end_offset)) {}

fetch_position follower_state::next_fetch(int64_t log_end_offset, int32_t latest_epoch) const {
  return {log_end_offset, latest_epoch, leader_epoch_};
}

follower_action follower_state::on_fetch(const fetched_partition& answer, const leader_epoch_cache& local,
                                         int64_t log_end_offset) {
  using kind = follower_action::kind;
  switch (answer.error) {
    case error_code::none: break;
    case error_code::offset_out_of_range:
      // Kafka's handleOutOfRangeError: behind the leader's log start (its
      // retention moved past us), start over there; ahead of its log end (an
      // unclean election made it shorter), fall back to what is committed.
      if (answer.log_start_offset >= 0 && log_end_offset < answer.log_start_offset)
        return {kind::restart_at, answer.log_start_offset};
      return {kind::truncate, std::min(high_watermark_, log_end_offset)};
    case error_code::not_leader_or_follower:
    case error_code::fenced_leader_epoch:
    case error_code::unknown_leader_epoch:
    case error_code::unknown_topic_or_partition:
    case error_code::unknown_topic_id:
      return {kind::await_metadata, -1};
    default: return {kind::retry, -1};
  }
  if (answer.high_watermark >= 0) leader_high_watermark_ = answer.high_watermark;
  if (answer.diverging_epoch) {
    auto t = truncation_for(local, log_end_offset, *answer.diverging_epoch, high_watermark_);
    return {kind::truncate, t.offset};
  }
  if (answer.has_records) return {kind::append, -1};
  after_append(log_end_offset);
  return {kind::nothing, -1};
}

void follower_state::after_append(int64_t log_end_offset) {
  if (leader_high_watermark_ < 0) return;
  // Never back (a leader's high watermark never moves back, and neither does ours).
  high_watermark_ = std::max(high_watermark_, std::min(leader_high_watermark_, log_end_offset));
}

void follower_state::after_truncate(int64_t log_end_offset) {
  high_watermark_ = std::min(high_watermark_, log_end_offset);
  // A restart above the old high watermark (the leader's log start moved past it).
  if (leader_high_watermark_ >= 0 && log_end_offset <= leader_high_watermark_)
    high_watermark_ = std::max(high_watermark_, std::min(log_end_offset, leader_high_watermark_));
}

}  // namespace gregor::replication
