#pragma once
// The metadata quorum of a single node: the metadata log (__cluster_metadata-0,
// record batches of KRaft records, like Kafka's) replayed into the image at
// start, and commits that append, fsync, then apply. The Raft quorum will
// take this place; everything above it already sees a log of records.
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "metadata/image.h"
#include "metadata/records.h"
#include "storage/log.h"

namespace gregor::metadata {

class quorum {
 public:
  // Opens the metadata log in `log_dir` and replays it on top of `base`.
  static result<std::unique_ptr<quorum>> open(const std::string& log_dir, image base, bool recover);

  image_ptr current() const { return image_; }
  // Appends the records as one batch, fsyncs, and applies them to the image.
  result<void> commit(const std::vector<record>& records);
  void close();

 private:
  result<void> replay();
  std::unique_ptr<storage::log> log_;
  image_ptr image_;
};

}  // namespace gregor::metadata
