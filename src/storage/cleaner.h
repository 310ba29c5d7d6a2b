#pragma once
// Log compaction (cleanup.policy=compact), Kafka's log cleaner for one
// partition log:
//
// - The log is split at the first dirty offset (persisted per partition in
//   <dir>/cleaner-offset-checkpoint): below it the log was cleaned already.
//   The dirty section ends before the active segment and before the first
//   segment younger than min.compaction.lag.ms (by its largest timestamp).
// - A clean runs when dirty bytes / (clean + dirty bytes) reaches
//   min.cleanable.dirty.ratio, or when the first dirty segment is older than
//   max.compaction.lag.ms.
// - It maps every key of the dirty section to its last offset, then rewrites
//   every closed segment from the log start to the end of the dirty section,
//   in groups of consecutive segments that fit in segment.bytes (small
//   segments are merged), keeping only the record with the mapped offset of
//   each key. Offsets never change: batches keep their base offset and last
//   offset delta, so gaps appear. Records without a key are dropped.
// - Tombstones (null values) are kept for delete.retention.ms after the first
//   clean that sees them (KIP-534: the batch's base timestamp becomes the
//   delete horizon and attribute bit 6 says so), then removed.
// - Transactions, as Kafka's cleaner: nothing at or past the last stable
//   offset is cleaned (the segment holding it and later ones stay dirty).
//   Records of aborted transactions (found through the aborted transaction
//   index) are removed and never count as a key's latest value. A COMMIT or
//   ABORT marker is removed only once no batch of its transaction is left
//   before it: the first clean that finds it so sets its delete horizon
//   (now + delete.retention.ms, as for tombstones), a later clean past the
//   horizon removes it; until then read_committed consumers and producer
//   state see the transaction end. An aborted transaction stays in the
//   .txnindex while a batch of it is left.
// - The batch holding a producer's last data offset (per the producer state)
//   stays, as an empty batch if all its records are removed, so producer
//   state rebuilt from the log keeps the epoch and sequence that duplicate
//   detection needs; a producer whose last entry is a marker keeps that
//   marker. Batches of producers the state has expired get no such care.
//
// Crash safety, Kafka's file discipline plus a commit record:
//   1. the group is written to <base>.log.cleaned / .index.cleaned /
//      .timeindex.cleaned and fsynced;
//   2. <dir>/cleaner-swap is written atomically naming the new segment and
//      the old ones it replaces: the commit point;
//   3. the .cleaned files are renamed to .swap, the old segments to
//      .deleted, the .swap files to their final names; the .deleted files
//      are removed; cleaner-swap is removed.
// A crash before 2 leaves .cleaned files that log::open deletes (the old
// segments are intact); a crash after 2 is completed by
// recover_interrupted_clean(), which log::open runs first.
//
// The work runs on the partition's shard in slices (clean_job::step), each
// reading about `budget` bytes, so a big clean never starves the event loop.
// Between slices the log may be appended to, truncated or have its start
// moved; a group whose old segments changed is abandoned.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "storage/log.h"

namespace gregor::storage {

// The first dirty offset from <dir>/cleaner-offset-checkpoint (0 if none).
int64_t read_cleaner_checkpoint(const std::string& dir);
result<void> write_cleaner_checkpoint(const std::string& dir, int64_t offset);

// Completes a clean that a crash interrupted after its commit point (see
// above). Called by log::open before it removes leftover files.
result<void> recover_interrupted_clean(const std::string& dir);

struct cleanable_section {
  int64_t first_dirty = 0;      // start of the dirty section
  int64_t end = 0;              // first uncleanable offset (exclusive)
  uint64_t clean_bytes = 0;
  uint64_t dirty_bytes = 0;
  double dirty_ratio = 0;
  bool max_lag_exceeded = false;
  bool due = false;  // ratio reached or max lag exceeded
};
// Where the log stands for compaction at now_ms, from the config's lag and
// ratio settings. nullopt when nothing is cleanable. The dirty section ends
// before the segment holding the last stable offset (the caller's, from the
// high watermark) or the log's first unstable offset, whichever is lower.
std::optional<cleanable_section> cleanable(const log& l, int64_t now_ms,
                                           int64_t last_stable_offset = std::numeric_limits<int64_t>::max());

struct clean_stats {
  int64_t batches_read = 0;
  int64_t records_read = 0;
  int64_t records_kept = 0;
  int64_t tombstones_removed = 0;
  int64_t aborted_records_removed = 0;
  int64_t markers_removed = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  int groups_swapped = 0;
  int groups_abandoned = 0;
};

// For tests: called before each file operation of a group's commit with a
// running count; returning true stops the clean right there, as a crash
// would (nothing after it happens, not even in memory).
using crash_hook = std::function<bool(int step)>;

class clean_job {
 public:
  // Starts a clean of `l` if cleanable(l, now_ms) says one is due (or
  // `force`). nullptr if there is nothing to do.
  static std::unique_ptr<clean_job> start(log& l, int64_t now_ms, bool force = false,
                                          size_t max_map_bytes = 128u << 20,
                                          int64_t last_stable_offset = std::numeric_limits<int64_t>::max());
  ~clean_job();

  // Does about `budget` bytes of work. Returns true when the job is over
  // (done, abandoned, or crashed by the hook). `l` must be the log given to
  // start() (the caller checks it is still open).
  result<bool> step(log& l, int64_t now_ms, size_t budget);
  // Runs to the end.
  result<void> run(log& l, int64_t now_ms);

  const clean_stats& stats() const { return stats_; }
  void set_crash_hook(crash_hook h) { crash_ = std::move(h); }
  bool crashed() const { return crashed_; }

  struct state;

 private:
  clean_job() = default;
  // Makes the current group durable and swaps it in; false if the log
  // changed so that the group no longer matches it (then nothing changes).
  result<bool> commit_group(log& l);
  std::unique_ptr<state> s_;
  clean_stats stats_;
  crash_hook crash_;
  bool crashed_ = false;
};

}  // namespace gregor::storage
