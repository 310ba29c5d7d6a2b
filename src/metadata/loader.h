#pragma once
// The metadata loader: turns the quorum's committed log into the metadata
// image. It starts from the latest snapshot, then applies committed record
// batches in order (control batches — LeaderChange — only move the offset);
// when the quorum installs a snapshot from the leader, it starts over from
// that snapshot. Every so often (metadata.log.max.record.bytes.between.snapshots
// or metadata.log.max.snapshot.interval.ms) it writes a snapshot of its
// image, after which the quorum drops the log below it.
//
// A snapshot file holds, as Kafka's do, a control batch with the
// SnapshotHeaderRecord, batches of the records that rebuild the image, and a
// control batch with the SnapshotFooterRecord.
//
// Runs on the quorum driver's shard.
#include <cstdint>
#include <memory>

#include "base/result.h"
#include "metadata/image.h"
#include "metadata/records.h"
#include "raft/driver.h"

namespace gregor::metadata {

struct snapshot_policy {
  int64_t max_record_bytes_between = 20971520;  // metadata.log.max.record.bytes.between.snapshots
  int64_t max_interval_ms = 3600000;            // metadata.log.max.snapshot.interval.ms
};

class loader {
 public:
  loader(raft::driver& quorum, image base, snapshot_policy policy);

  // Loads the latest snapshot on disk, if any.
  result<void> start();
  // Applies what was committed since; true if the image changed.
  result<bool> catch_up(int64_t now_ms);
  image_ptr current() const { return image_; }
  // Every offset below it is in the image.
  int64_t applied_offset() const { return applied_; }
  // Writes a snapshot if the policy says it is time.
  result<void> maybe_snapshot(int64_t now_ms);
  // Writes a snapshot of the image now (tests, tools).
  result<void> snapshot_now(int64_t now_ms);

  // A snapshot's content for an image (exposed for tests).
  static bytes encode_snapshot(const image& img, int64_t last_timestamp_ms);
  // The image a snapshot's content rebuilds on top of `base`.
  static result<image> decode_snapshot(const image& base, bytes_view content, int64_t end_offset);

 private:
  result<void> load_snapshot(const raft::snapshot_id& id);

  raft::driver& quorum_;
  image base_;
  snapshot_policy policy_;
  image_ptr image_;
  int64_t applied_ = 0;
  uint64_t snapshot_installs_seen_ = 0;
  int64_t bytes_since_snapshot_ = 0;
  int64_t last_snapshot_ms_ = -1;
  int64_t last_snapshot_offset_ = 0;
  int64_t last_batch_timestamp_ = 0;
};

}  // namespace gregor::metadata
