#pragma once
// A partition's leader epoch cache (Kafka's LeaderEpochFileCache, KIP-101 and
// KIP-279): for each leader epoch that wrote to the log, the offset of its
// first record. It answers OffsetsForLeaderEpoch ("where does epoch E end in
// your log?"), which is how a follower finds the point where its log and the
// leader's diverge and truncates there instead of at its high watermark
// (the cause of KAFKA-1211's lost and diverged records).
//
// Pure: storage::log keeps one per partition and persists to_checkpoint() in
// the partition's leader-epoch-checkpoint file (Kafka's text format).
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace gregor::storage {

struct epoch_entry {
  int32_t epoch = 0;
  int64_t start_offset = 0;
  bool operator==(const epoch_entry&) const = default;
};

// Kafka's answer to OffsetsForLeaderEpoch: the largest epoch not above the
// one asked for, and the offset where it ends (the next epoch's start, or the
// log end offset for the latest epoch). An epoch older than every entry ends
// where the first one starts; -1/-1 for one newer than the latest.
struct epoch_end {
  int32_t epoch = -1;
  int64_t end_offset = -1;
  bool operator==(const epoch_end&) const = default;
};

class leader_epoch_cache {
 public:
  leader_epoch_cache() = default;
  explicit leader_epoch_cache(std::vector<epoch_entry> entries) : entries_(std::move(entries)) {}

  // A batch of `epoch` was appended at `start_offset`. Records the epoch if it
  // is new; an older epoch or an offset before the latest start is ignored
  // (it is already known), as Kafka does.
  void assign(int32_t epoch, int64_t start_offset);

  // The log was truncated to end_offset (records at and after it are gone):
  // epochs that started there or later are forgotten.
  void truncate_from_end(int64_t end_offset);
  // The log start moved to start_offset (retention, DeleteRecords): earlier
  // epochs are dropped, and the one in force there now starts there.
  void truncate_from_start(int64_t start_offset);

  epoch_end end_offset_for(int32_t requested_epoch, int64_t log_end_offset) const;

  int32_t latest_epoch() const { return entries_.empty() ? -1 : entries_.back().epoch; }
  // The epoch that wrote `offset` (the last one starting at or before it), -1 if none.
  int32_t epoch_for(int64_t offset) const;
  // The start offset of `epoch`, or -1 if it is not in the cache.
  int64_t start_offset_of(int32_t epoch) const;
  const std::vector<epoch_entry>& entries() const { return entries_; }

  // True after a change that the checkpoint file must be rewritten for;
  // cleared by to_checkpoint().
  bool changed() const { return changed_; }
  // The checkpoint write failed: it must be written again.
  void mark_changed() { changed_ = true; }
  std::string to_checkpoint();
  static result<leader_epoch_cache> from_checkpoint(const std::string& text);

 private:
  std::vector<epoch_entry> entries_;  // epochs and start offsets both strictly increasing
  bool changed_ = false;
};

}  // namespace gregor::storage
