#pragma once
// How a follower and its leader find where their logs part (KIP-101, KIP-279,
// and the Fetch-based check of KIP-320/KIP-595): the follower fetches with
// the epoch of its last record; the leader answers DivergingEpoch when its
// own log ends that epoch earlier (or never had it); the follower truncates
// to the point both agree on, and fetches again. No two replicas then
// disagree below the high watermark, whatever order leaders died in.
#include <cstdint>
#include <optional>

#include "protocol/errors.h"
#include "storage/leader_epoch_cache.h"

namespace gregor::replication {

using protocol::error_code;
using storage::epoch_end;
using storage::leader_epoch_cache;

// Leader side, for a Fetch at fetch_offset whose previous record has
// last_fetched_epoch (-1: the fetcher does not say; nothing to check).
std::optional<epoch_end> diverging_epoch(const leader_epoch_cache& cache, int64_t log_end_offset,
                                         int64_t fetch_offset, int32_t last_fetched_epoch);

// A request's current_leader_epoch against this replica's leader epoch, as
// Kafka answers it: older is FENCED_LEADER_EPOCH (the sender is behind),
// newer UNKNOWN_LEADER_EPOCH (this replica is behind); -1 means unchecked.
error_code check_leader_epoch(int32_t requested_epoch, int32_t local_epoch);

struct truncation {
  int64_t offset = 0;     // truncate the log to this end offset
  bool complete = true;   // false: fetch again, the leader will check the new end
};

// Follower side, after the leader answered `diverging` for the follower's
// last fetched epoch. local is the follower's own epoch cache.
truncation truncation_for(const leader_epoch_cache& local, int64_t local_log_end_offset, epoch_end diverging,
                          int64_t high_watermark);

}  // namespace gregor::replication
