#pragma once
// The metadata partition on disk, as the quorum uses it: the log
// (__cluster_metadata-0, record batches v2 whose partition leader epoch is
// the Raft epoch that wrote them, in storage's segmented format) and the
// snapshots beside it, in Kafka's layout:
//
//   <metadata.log.dir>/__cluster_metadata-0/
//     00000000000000000000.log ...                 the log
//     quorum-state                                 see quorum_state.h
//     00000000000000001234-0000000007.checkpoint   a snapshot of everything
//                                                  below offset 1234, whose
//                                                  last record has epoch 7
//
// A snapshot file holds record batches: a control batch with the snapshot
// header, batches of metadata records, and a control batch with the footer.
// The log keeps its shape in memory (the epoch of every range of offsets:
// Kafka's leader epoch cache, from storage's leader-epoch-checkpoint at open,
// plus the latest snapshot's epoch) so the Raft
// core can answer divergence questions without reading the disk.
//
// Used from one shard only.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "storage/log.h"

namespace gregor::raft {

struct epoch_start {
  int32_t epoch = 0;
  int64_t start_offset = 0;
  bool operator==(const epoch_start&) const = default;
};

// A snapshot: everything below end_offset; `epoch` is that of the record at end_offset - 1.
struct snapshot_id {
  int64_t end_offset = 0;
  int32_t epoch = 0;
  bool operator==(const snapshot_id&) const = default;
  auto operator<=>(const snapshot_id&) const = default;
};

// KRaft's control record types (the key of a record in a control batch).
enum class control_type : int16_t {
  leader_change = 2,
  snapshot_header = 3,
  snapshot_footer = 4,
  kraft_version = 5,
  voters = 6,
};

class raft_log {
 public:
  static std::string partition_dir(const std::string& metadata_log_dir);
  // Opens (or creates) the metadata partition under metadata_log_dir.
  static result<std::unique_ptr<raft_log>> open(const std::string& metadata_log_dir, bool recover, int64_t now_ms);
  ~raft_log();

  const std::string& dir() const { return dir_; }
  int64_t log_start_offset() const { return log_->log_start_offset(); }
  int64_t log_end_offset() const { return log_->log_end_offset(); }
  // The epoch cache: each epoch that wrote to the log and its first offset,
  // oldest first (entries below the log start may remain: a snapshot covers them).
  const std::vector<epoch_start>& epochs() const { return epochs_; }
  // The epoch of the last batch in the log (or of the latest snapshot), 0 if none.
  int32_t last_epoch() const;
  std::optional<snapshot_id> latest_snapshot() const;

  // The leader appends records as one batch in `epoch`; returns its last offset.
  result<int64_t> append_records(int32_t epoch, const std::vector<bytes>& values, int64_t now_ms);
  // The leader appends a control record (the LeaderChangeMessage of a new epoch).
  result<int64_t> append_control(int32_t epoch, control_type type, bytes value, int64_t now_ms);
  // A follower appends batches copied from the leader (offsets already set).
  result<void> append_as_follower(bytes_view batches, int64_t now_ms);
  // Removes everything from `offset` on.
  result<void> truncate_to(int64_t offset);
  // fsyncs what was appended.
  result<void> flush();
  // Whole batches from the one holding `offset`, at most max_bytes (but at
  // least one batch), below max_offset. Empty at the end.
  result<bytes> read(int64_t offset, int32_t max_bytes, int64_t max_offset) const;

  // ---- snapshots
  static std::string snapshot_file_name(snapshot_id id);
  // Writes a snapshot whose content is `batches` (already framed, see
  // metadata's snapshot writer) atomically, and fsyncs it.
  result<void> write_snapshot(snapshot_id id, bytes_view batches);
  result<int64_t> snapshot_size(snapshot_id id) const;
  // Up to max_bytes of a snapshot file from position.
  result<bytes> read_snapshot(snapshot_id id, int64_t position, int32_t max_bytes) const;
  // A follower downloading a snapshot: chunks go to a partial file, which
  // install_snapshot() renames and makes the log's new start (the log is
  // emptied and restarts at id.end_offset).
  result<void> write_snapshot_chunk(snapshot_id id, int64_t position, bytes_view data);
  result<void> install_snapshot(snapshot_id id, int64_t now_ms);
  // After a snapshot at id: segments wholly below id.end_offset go, and the
  // log start moves up to id.end_offset (not past the log end). Older
  // snapshot files are deleted.
  result<void> delete_before(snapshot_id id);

  result<void> close();

 private:
  raft_log(std::string dir, std::unique_ptr<storage::log> l) : dir_(std::move(dir)), log_(std::move(l)) {}
  result<void> truncate_to_latest_snapshot();
  result<void> rebuild_epochs();
  void note_epoch(int32_t epoch, int64_t offset);
  void forget_epochs_from(int64_t offset);
  result<void> scan_snapshots();
  std::string snapshot_path(snapshot_id id) const;

  std::string dir_;
  std::unique_ptr<storage::log> log_;
  std::vector<epoch_start> epochs_;
  std::vector<snapshot_id> snapshots_;  // on disk, oldest first
};

}  // namespace gregor::raft
