#pragma once
// A follower replica of one partition, as a pure state machine (Kafka's
// ReplicaFetcherThread for one partition, without the I/O): where to fetch
// from next, and what to do with the leader's answer: append, truncate to a
// diverging point (KIP-101/279, Fetch's DivergingEpoch), restart from the
// leader's log start, or wait for newer metadata. The broker's fetcher does
// the fetching, the log writes and the waiting.
#include <cstdint>
#include <optional>

#include "protocol/errors.h"
#include "replication/divergence.h"

namespace gregor::replication {

// What a follower puts in its Fetch for this partition.
struct fetch_position {
  int64_t fetch_offset = 0;
  int32_t last_fetched_epoch = -1;  // Fetch v12+: the epoch of the record before fetch_offset
  int32_t current_leader_epoch = -1;
};

// The parts of a partition's Fetch answer the follower acts on.
struct fetched_partition {
  error_code error = error_code::none;
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  std::optional<epoch_end> diverging_epoch;
  bool has_records = false;
};

// What to do with an answer, in this order.
struct follower_action {
  enum class kind {
    append,           // append the records (offsets as the leader gave them)
    truncate,         // truncate the log to `offset`, then fetch again
    restart_at,       // delete the log and start it empty at `offset` (below the leader's log start)
    await_metadata,   // the leader changed or the epoch is wrong: wait for the next image
    retry,            // a transient error: fetch again after a back-off
    nothing,          // no records yet
  } what = kind::nothing;
  int64_t offset = -1;
};

class follower_state {
 public:
  // Following `leader_id` at `leader_epoch` (from the metadata image), with
  // the local log as it is.
  follower_state(int32_t leader_id, int32_t leader_epoch, int64_t log_end_offset, int64_t high_watermark);

  int32_t leader_id() const { return leader_id_; }
  int32_t leader_epoch() const { return leader_epoch_; }
  int64_t high_watermark() const { return high_watermark_; }

  // The next Fetch, given the log's end and its latest epoch.
  fetch_position next_fetch(int64_t log_end_offset, int32_t latest_epoch) const;

  // Decides what to do with the leader's answer. `local` and
  // `log_end_offset` describe the log when the fetch was sent.
  follower_action on_fetch(const fetched_partition& answer, const leader_epoch_cache& local, int64_t log_end_offset);

  // After an append: the follower's high watermark is the leader's, capped by
  // what it has (it never exposes records it does not have).
  void after_append(int64_t log_end_offset);
  // After a truncation or a restart: nothing above the log end is exposed.
  void after_truncate(int64_t log_end_offset);

 private:
  int32_t leader_id_;
  int32_t leader_epoch_;
  int64_t high_watermark_;
  int64_t leader_high_watermark_ = -1;
};

}  // namespace gregor::replication
