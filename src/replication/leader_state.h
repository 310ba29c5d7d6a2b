#pragma once
// What the leader of a partition knows of its followers, and what follows
// from it (Kafka's Partition on the leader, as a pure state machine):
//
// - each follower's log end offset, from the offsets of its fetches, and the
//   last time it had everything the leader had (lastCaughtUpTimeMs);
// - the high watermark: the smallest log end offset in the ISR. It never
//   moves back, and it does not move while the ISR is smaller than
//   min.insync.replicas (KIP-966's rule: no record is committed on fewer
//   copies than the topic asks for);
// - when the ISR should change: a follower that has not caught up for
//   replica.lag.time.max.ms leaves it, one that reached the high watermark
//   (and this leader epoch's start) joins it. Each change is proposed to the
//   controller (AlterPartition); until it commits, the high watermark counts
//   the larger of the two sets, so it is safe whichever way the answer goes;
// - whether a produce with acks=all may append, and when it is done.
//
// Time comes in as arguments; nothing here reads a clock or does I/O.
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "protocol/errors.h"

namespace gregor::replication {

using protocol::error_code;

struct leader_settings {
  int32_t min_insync_replicas = 1;
  int64_t replica_lag_time_max_ms = 30000;
};

struct follower_progress {
  int64_t log_end_offset = -1;      // -1 until it fetched under this leader
  int64_t last_fetch_ms = -1;
  int64_t last_caught_up_ms = -1;
  int64_t leader_leo_at_last_fetch = -1;
};

// An ISR change to send to the controller.
struct isr_proposal {
  std::vector<int32_t> isr;
  enum class why { expand, shrink } reason = why::expand;
  std::vector<int32_t> changed;  // the replicas added or removed
};

// What a produce with acks=all waiting for `required_offset` should do now.
enum class ack_status { done, wait, not_enough_replicas_after_append };

class leader_state {
 public:
  // Becoming leader at `leader_epoch`: the replicas and ISR from the metadata
  // image; `log_end_offset` and `high_watermark` from the local log, and
  // `leader_epoch_start_offset` is where this epoch's records begin.
  leader_state(int32_t local_id, int32_t leader_epoch, std::vector<int32_t> replicas, std::vector<int32_t> isr,
               int64_t log_end_offset, int64_t high_watermark, int64_t leader_epoch_start_offset, int64_t now_ms,
               leader_settings settings);

  // ---- produce
  // Before appending: NOT_ENOUGH_REPLICAS when acks=all finds the ISR below
  // min.insync.replicas.
  error_code check_append(int16_t acks) const;
  // The leader appended; the ISR may be just itself. True if the high
  // watermark moved.
  bool on_append(int64_t log_end_offset);
  ack_status ack_status_for(int64_t required_offset) const;

  // ---- follower fetches (Fetch with a replica id): the offset it asks for
  // is its log end offset. True if the high watermark moved.
  bool on_follower_fetch(int32_t replica_id, int64_t fetch_offset, int64_t now_ms);

  // ---- ISR changes
  // A change to propose now, if any and none is in flight.
  std::optional<isr_proposal> isr_change_needed(int64_t now_ms) const;
  // The proposal went out: counted by the high watermark until resolved.
  void proposal_sent(const isr_proposal& p);
  // The controller committed this ISR (or refused the proposal: then the
  // ISR in the image is passed). True if the high watermark moved.
  bool on_isr_committed(std::vector<int32_t> isr);

  // min.insync.replicas or replica.lag.time.max.ms changed (topic or broker
  // config). True if the high watermark moved.
  bool set_settings(leader_settings settings);

  // The replica set changed (a reassignment) without a new leader epoch.
  void on_replicas_changed(std::vector<int32_t> replicas);

  int32_t leader_epoch() const { return leader_epoch_; }
  int64_t high_watermark() const { return high_watermark_; }
  int64_t log_end_offset() const { return log_end_offset_; }
  const std::vector<int32_t>& isr() const { return isr_; }
  const std::vector<int32_t>& replicas() const { return replicas_; }
  const std::map<int32_t, follower_progress>& followers() const { return followers_; }
  bool proposal_in_flight() const { return in_flight_.has_value(); }
  const std::optional<isr_proposal>& in_flight() const { return in_flight_; }

 private:
  bool in_isr(int32_t id) const;
  // The ISR the high watermark must wait for: the committed one plus any
  // replica a proposal in flight would add.
  std::vector<int32_t> maximal_isr() const;
  bool maybe_advance_high_watermark();

  int32_t local_id_;
  int32_t leader_epoch_;
  std::vector<int32_t> replicas_;
  std::vector<int32_t> isr_;
  int64_t log_end_offset_;
  int64_t high_watermark_;
  int64_t leader_epoch_start_offset_;
  leader_settings settings_;
  std::map<int32_t, follower_progress> followers_;
  std::optional<isr_proposal> in_flight_;
};

}  // namespace gregor::replication
