#include "replication/divergence.h"

#include <algorithm>

namespace gregor::replication {

std::optional<epoch_end> diverging_epoch(const leader_epoch_cache& cache, int64_t log_end_offset,
                                         int64_t fetch_offset, int32_t last_fetched_epoch) {
  if (last_fetched_epoch < 0) return std::nullopt;
  auto here = cache.end_offset_for(last_fetched_epoch, log_end_offset);
  if (here.epoch < last_fetched_epoch || here.end_offset < fetch_offset) return here;
  return std::nullopt;
}

error_code check_leader_epoch(int32_t requested_epoch, int32_t local_epoch) {
  if (requested_epoch < 0 || requested_epoch == local_epoch) return error_code::none;
  return requested_epoch < local_epoch ? error_code::fenced_leader_epoch : error_code::unknown_leader_epoch;
}

truncation truncation_for(const leader_epoch_cache& local, int64_t local_log_end_offset, epoch_end diverging,
                          int64_t high_watermark) {
  // The leader knows nothing of the epoch: fall back to what is committed
  // (the only case where Kafka still truncates to the high watermark).
  if (diverging.end_offset < 0) return {std::min(high_watermark, local_log_end_offset), true};
  if (diverging.epoch < 0) return {std::min(diverging.end_offset, local_log_end_offset), true};
  auto mine = local.end_offset_for(diverging.epoch, local_log_end_offset);
  if (mine.epoch == diverging.epoch)
    return {std::min({diverging.end_offset, mine.end_offset, local_log_end_offset}), true};
  // This log never had that epoch (or has no epochs at all): cut where its own
  // largest older epoch ends, then fetch again with that epoch for the leader
  // to check (Kafka's intermediate truncation).
  if (mine.end_offset < 0) return {std::min(high_watermark, local_log_end_offset), true};
  return {std::min(mine.end_offset, local_log_end_offset), false};
}

}  // namespace gregor::replication
