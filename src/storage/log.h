#pragma once
// The log of one partition, in Kafka's on-disk layout:
//
//   <log.dir>/<topic>-<partition>/
//     00000000000000000000.log        record batches v2 exactly as produced,
//     00000000000000000000.index      with offsets assigned
//     00000000000000000000.timeindex  (see index.h for the index formats)
//     00000000000000012345.log ...    a new segment per roll
//     gregor.checkpoint               log start offset and recovery point
//     leader-epoch-checkpoint         the leader epoch cache (Kafka's file)
//     00000000000000012345.snapshot   producer state as of that offset
//                                     (Kafka's file; see producer_state.h)
//     00000000000000012345.txnindex   the aborted transactions whose ABORT
//                                     marker is in that segment (Kafka's file)
//
// gregor.checkpoint is our per-partition stand-in for Kafka's per-dir
// log-start-offset-checkpoint and recovery-point-offset-checkpoint files
// (per partition so no shard has to gather other shards' state). Text:
//   0                        version
//   log_start_offset <n>
//   recovery_point <n>       every byte below this offset was fsynced
// It is written (atomically) at every roll, truncation, log start change and
// close. Unflushed data above the recovery point is what recovery scans.
//
// Producer state snapshots are taken at each roll (at the new segment's
// base offset) and at close (at the log end); a snapshot goes with the
// segment that starts at its offset. Opening loads the latest one at or below
// the log end and replays the batches after it; truncation does the same.
//
// Used only from the shard that owns the partition: no locks. Storage never
// reads a clock: times come in as now_ms arguments. Files are written
// through runtime::file; fsync happens at segment roll, at close, and when
// flush.messages / flush.ms ask for it.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/iobuf.h"
#include "base/result.h"
#include "storage/leader_epoch_cache.h"
#include "storage/log_config.h"
#include "storage/producer_state.h"

namespace gregor::storage {

class segment;

struct append_result {
  int64_t base_offset = -1;         // offset of the first record appended
  int64_t last_offset = -1;         // offset of the last record appended
  int64_t log_append_time_ms = -1;  // the time set under LogAppendTime, -1 under CreateTime
  int64_t log_start_offset = 0;
};

struct read_result {
  // The offset asked for is below the log start or above the log end.
  bool offset_out_of_range = false;
  // Whole batches, as one region of a segment file (zero copy). Empty at the
  // log end, or when the first batch is larger than max_bytes and
  // min_one_batch is false.
  iobuf records;
  int64_t log_start_offset = 0;
  int64_t log_end_offset = 0;
};

struct timestamp_offset {
  int64_t timestamp = -1;
  int64_t offset = -1;
  int32_t leader_epoch = -1;  // partitionLeaderEpoch of the batch holding the record
};

struct segment_info {
  int64_t base_offset = 0;
  uint64_t size_bytes = 0;
  int64_t max_timestamp = -1;
};

class log {
 public:
  // Opens (or creates) the log in `dir`. `recover` is false after a clean
  // shutdown; when true, segments from the recovery point on are validated
  // batch by batch, a corrupt or torn tail is truncated (and any later
  // segments deleted), and their indexes rebuilt. Missing or inconsistent
  // index files are rebuilt in either case.
  static result<std::unique_ptr<log>> open(std::string dir, log_config config, bool recover, int64_t now_ms);
  ~log();
  log(const log&) = delete;
  log& operator=(const log&) = delete;

  // Appends one or more validated v2 batches (see protocol::validate_batches),
  // assigning offsets from log_end_offset() in place: baseOffset of each
  // batch, the partition leader epoch when leader_epoch >= 0, and under
  // LogAppendTime the max timestamp = now_ms and the timestamp type bit (with
  // the CRC recomputed). Rolls the segment first when segment.bytes would be
  // exceeded, segment.ms has passed since the active segment's first append,
  // an index is full, or offsets would overflow the segment.
  result<append_result> append(std::span<uint8_t> batches, int64_t now_ms, int32_t leader_epoch = -1);
  // Appends batches whose offsets are already assigned (a follower copying
  // its leader): the first base offset must be >= log_end_offset() and
  // offsets must increase. Batches are stored unchanged.
  result<append_result> append_as_follower(bytes_view batches, int64_t now_ms);

  // Reads whole batches from the batch containing `offset` (even if offset
  // is in its middle), up to max_bytes, from one segment. If the first batch
  // is larger than max_bytes it is returned whole when min_one_batch (KIP-74),
  // else nothing is. Batches whose last offset is >= max_offset (exclusive
  // bound: the high watermark or last stable offset) are not returned.
  result<read_result> read(int64_t offset, int32_t max_bytes, bool min_one_batch,
                           int64_t max_offset = std::numeric_limits<int64_t>::max());

  // The leader epoch of every run of batches and where it starts (KIP-101),
  // kept in step with appends, truncation and the log start, and persisted
  // (fsynced, before the first batch of a new epoch is written) in
  // leader-epoch-checkpoint.
  const leader_epoch_cache& leader_epochs() const { return epochs_; }
  // A new leader's epoch starts at the log end (Kafka's maybeAssignEpochStartOffset).
  result<void> begin_leader_epoch(int32_t epoch) { return assign_epoch(epoch, log_end_offset()); }

  // Idempotent producers' sequence state, kept in step with every append,
  // truncation and recovery. The leader checks client batches against it
  // before append().
  const producer_state& producers() const { return producers_; }
  // KIP-890: the leader takes a verification guard before asking the
  // transaction coordinator (see producer_state::begin_verification).
  uint64_t begin_txn_verification(int64_t producer_id, int64_t now_ms) {
    return producers_.begin_verification(producer_id, now_ms);
  }
  // producer.id.expiration.ms (see producer_state::remove_expired).
  size_t remove_expired_producers(int64_t now_ms, int64_t expiration_ms) {
    return producers_.remove_expired(now_ms, expiration_ms);
  }

  // Transactions. The last stable offset: read_committed consumers read up
  // to it (the first offset of the oldest transaction not yet closed by a
  // marker the high watermark has passed, or the high watermark itself).
  int64_t last_stable_offset(int64_t high_watermark);
  // The aborted transactions a read_committed fetch of [fetch_offset, upper)
  // must skip (Kafka's collectAbortedTransactions), oldest first.
  std::vector<aborted_txn> aborted_transactions(int64_t fetch_offset, int64_t upper) const;

  int64_t log_start_offset() const { return log_start_offset_; }
  // The next offset to assign.
  int64_t log_end_offset() const;
  int64_t recovery_point() const { return recovery_point_; }

  // ListOffsets by time: the first record (offset >= log start) whose
  // timestamp >= ts, found through the time index and then the batches.
  result<std::optional<timestamp_offset>> offset_for_timestamp(int64_t ts);
  // ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp
  // (the first one, if several share it). nullopt for an empty log.
  result<std::optional<timestamp_offset>> offset_for_max_timestamp();
  // Largest batch max timestamp in the log, -1 if none.
  int64_t max_timestamp() const;

  // fsyncs the active segment and its indexes; the recovery point becomes
  // the log end offset.
  result<void> flush();
  // flush() if flush.ms has passed since the last flush (for a timer).
  result<void> flush_if_due(int64_t now_ms);
  // Closes the segment as Kafka does (final time index entry), flushes and
  // writes the checkpoint. The log must not be used afterwards.
  result<void> close();

  // Removes everything from the batch containing `offset` on (truncation is
  // by whole batches: the log end becomes that batch's base offset).
  // Below the log start, it is truncate_fully_and_start_at(offset).
  result<void> truncate_to(int64_t offset);
  // Deletes all segments; the log restarts empty at `offset`.
  result<void> truncate_fully_and_start_at(int64_t offset);
  // Raises the log start offset (DeleteRecords, retention) and deletes the
  // segments that lie wholly below it. Fails if offset > log_end_offset().
  result<void> advance_log_start_offset(int64_t offset);
  // Deletes the segments whose every offset is below `offset` (never the
  // active one); the log start moves to the first remaining segment if that
  // is higher. Returns how many were deleted.
  result<int> delete_segments_below(int64_t offset);
  // Kafka's retention: deletes the oldest segments while they are wholly
  // below high_watermark and either older than retention.ms (by their max
  // timestamp), beyond retention.bytes, or below the log start. Rolls first
  // when every segment, the active one included, is to go. Segments without
  // timestamps are not deleted by time. Returns how many were deleted.
  result<int> apply_retention(int64_t now_ms, int64_t high_watermark);
  // Rolls to a new segment at log_end_offset() (no-op if the active one is empty).
  result<void> roll(int64_t now_ms);

  std::vector<segment_info> segments() const;
  size_t segment_count() const { return segments_.size(); }
  uint64_t size_bytes() const;
  const std::string& dir() const { return dir_; }
  const log_config& config() const { return config_; }
  // Topic config change: applies to later appends, rolls and retention.
  void set_config(const log_config& config);

 private:
  friend struct log_cleaner_access;  // cleaner.cc swaps cleaned segments in
  log(std::string dir, log_config config);
  result<append_result> append_assigned(bytes_view data, int64_t now_ms, int64_t first_offset, int64_t last_offset,
                                        int64_t records);
  result<void> maybe_roll(uint64_t incoming_bytes, int64_t first_offset, int64_t last_offset, int64_t now_ms);
  result<void> roll_at(int64_t base_offset, int64_t now_ms);
  result<void> write_checkpoint();
  // Records the epochs of batches about to be written (before writing them).
  result<void> assign_epoch(int32_t epoch, int64_t start_offset);
  // After truncation or a log start change: drops epochs outside the log.
  result<void> sync_epochs();
  result<void> write_epochs();
  result<void> load_epochs();
  result<void> flush_at(int64_t now_ms);
  // Producer state: applies the batches of an append; writes a snapshot at
  // `offset`; rebuilds from the latest snapshot at or below the log end
  // (deleting the ones above it and those of deleted segments).
  result<void> update_producers(bytes_view batches);
  // Applies one batch (`batch` is the whole batch when it is a control
  // batch) to the producer state and, for an ABORT marker, the aborted
  // transaction index of segment `segment_index`.
  result<void> apply_to_producers(const protocol::batch_header& h, bytes_view batch, size_t segment_index);
  // .txnindex: rewrites segment i's file from aborted_; loads every file at
  // open; after truncation or segment deletion drops what is gone.
  result<void> write_txn_index(size_t i);
  result<void> load_txn_indexes(const std::vector<int64_t>& bases_with_file);
  result<void> sync_txn_indexes();
  result<void> write_producer_snapshot(int64_t offset);
  result<void> rebuild_producer_state(bool have_state_at_log_end);
  result<void> delete_snapshots_if(const std::function<bool(int64_t)>& doomed);
  segment& active() { return *segments_.back(); }
  const segment& active() const { return *segments_.back(); }
  // Index of the segment that would hold `offset` (the last with base <= offset).
  size_t segment_for(int64_t offset) const;
  result<void> remove_front_segments(size_t n);

  std::string dir_;
  log_config config_;
  bool log_append_time_ = false;
  std::vector<std::unique_ptr<segment>> segments_;
  int64_t log_start_offset_ = 0;
  int64_t recovery_point_ = 0;
  int64_t unflushed_messages_ = 0;
  int64_t last_flush_ms_ = 0;
  bool closed_ = false;
  leader_epoch_cache epochs_;
  producer_state producers_;
  std::vector<int64_t> snapshots_;  // offsets of the .snapshot files, ascending
  std::vector<aborted_txn> aborted_;  // by marker offset (last_offset)
  std::vector<int64_t> txn_index_files_;  // segment bases with a .txnindex file, ascending
  bytes scratch_;  // header reads
};

}  // namespace gregor::storage
