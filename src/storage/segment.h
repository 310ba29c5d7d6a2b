#pragma once
// One segment of a partition log: <base>.log holding record batches exactly
// as received (offsets assigned), and its .index / .timeindex (see index.h).
// Internal to storage: only log.cc uses it.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "protocol/record_batch.h"
#include "runtime/file.h"
#include "storage/index.h"
#include "storage/log_config.h"

namespace gregor::storage {

// "<dir>/<20-digit base offset><suffix>", Kafka's segment file names.
std::string segment_path(const std::string& dir, int64_t base_offset, std::string_view suffix);
// The base offset encoded in a segment file name ("00000000000000000042.log"), if it is one.
std::optional<int64_t> parse_segment_name(std::string_view name, std::string_view suffix);

// Reads byte ranges of a file through a buffer, so walking consecutive batch
// headers costs one pread per buffer rather than one per header.
class file_reader {
 public:
  file_reader(const runtime::file& f, bytes& buffer, size_t capacity) : f_(f), buf_(buffer), cap_(capacity) {}
  // Bytes [pos, pos + n) of the file, n <= capacity. Valid until the next call.
  result<const uint8_t*> get(uint64_t pos, size_t n);

 private:
  const runtime::file& f_;
  bytes& buf_;
  size_t cap_;
  uint64_t start_ = 0;
  size_t len_ = 0;
};

struct batch_location {
  uint64_t position = 0;
  protocol::batch_header header;
};

class segment {
 public:
  // A new empty segment (files created, or emptied if they exist).
  static result<std::unique_ptr<segment>> create(const std::string& dir, int64_t base_offset, const log_config& config);
  // An existing segment; its indexes are not loaded yet.
  static result<std::unique_ptr<segment>> open(const std::string& dir, int64_t base_offset, const log_config& config);

  int64_t base_offset() const { return base_; }
  uint64_t size() const { return log_->size(); }
  bool empty() const { return log_->size() == 0; }
  const std::shared_ptr<runtime::file>& log_file() const { return log_; }
  const std::string& dir() const { return dir_; }
  void set_config(const log_config& config);

  // The offset after the last batch (the segment's base when empty). Known for
  // the active segment and for segments that were recovered.
  int64_t next_offset() const { return next_offset_; }
  // Largest batch max timestamp in the segment (-1 if none) and the last
  // offset of the first batch that reached it.
  int64_t max_timestamp() const { return max_timestamp_; }
  int64_t offset_of_max_timestamp() const { return offset_of_max_timestamp_; }
  // When the first batch was appended (now_ms of that append), for segment.ms.
  int64_t roll_base_ms = -1;

  // ---- opening
  // Cheap checks of the index files of a segment from a clean shutdown: both
  // exist, sizes are whole entries and the last entries fit the segment. Reads
  // the max timestamp from the last time index entry. False if they must be rebuilt.
  bool check_indexes();
  // Loads both index files in full, rebuilding them from the .log if they are
  // inconsistent. Done lazily for old segments, always for the active one.
  result<void> ensure_indexes();
  // Finds next_offset by walking the batch headers after the last index entry.
  // False if a header there is malformed (the segment then needs recovery).
  result<bool> load_next_offset(bytes& buffer);

  struct recovery {
    bool corrupt = false;
    uint64_t valid_bytes = 0;
    std::string reason;  // why the scan stopped early
  };
  // Validates every batch (sizes, magic, CRC, increasing offsets) and
  // rebuilds both indexes. With `truncate`, cuts the .log at the first bad
  // batch; otherwise only indexes what precedes it.
  result<recovery> recover(bool truncate);

  // ---- appending (active segment)
  // Writes batches whose offsets are assigned, at the end of the .log.
  result<uint64_t> write(bytes_view batches);
  // Index maintenance for a batch written at `position`.
  void index_batch(const protocol::batch_header& h, uint64_t position);
  bool indexes_full() const { return index_.full() || time_index_.full(); }

  // ---- reading
  // The first batch whose last offset >= offset, or nullopt past the end.
  result<std::optional<batch_location>> find_batch(int64_t offset, file_reader& reader);
  // The last batch boundary at or below `target`, walking from `from` (a boundary).
  result<uint64_t> boundary_at_or_below(uint64_t from, uint64_t target, file_reader& reader);
  const offset_index& index() const { return index_; }
  const time_index& timestamps() const { return time_index_; }
  bool indexes_loaded() const { return indexes_loaded_; }

  // ---- lifecycle
  // Writes index entries not on disk yet.
  result<void> write_indexes();
  // write_indexes + fsync of the three files.
  result<void> flush();
  // The segment stops being active: final time index entry, flush, and the
  // index files are closed (the entries stay in memory).
  result<void> seal();
  // Removes the batches from the one containing `offset` on.
  result<void> truncate_to(int64_t offset, bytes& buffer);
  // Calls fn with the header of every batch, in order (headers only are read).
  result<void> for_each_batch(bytes& buffer, const std::function<void(const protocol::batch_header&)>& fn);
  // The same with each batch's position in the .log file.
  result<void> for_each_batch(bytes& buffer, const std::function<void(const protocol::batch_header&, uint64_t)>& fn);
  // Closes the index files (reopened when entries are next written); the
  // entries stay in memory. Keeps file descriptors to one per old segment.
  void close_index_files();
  // Deletes the files (open handles keep pending reads working).
  result<void> remove_files();

 private:
  segment(std::string dir, int64_t base, const log_config& config, std::shared_ptr<runtime::file> log);
  result<void> open_index_files();
  result<void> rewrite_indexes();
  result<void> recompute_max_timestamp(bytes& buffer);

  std::string dir_;
  int64_t base_;
  int32_t index_interval_bytes_;
  std::shared_ptr<runtime::file> log_;
  uint64_t written_back_ = 0;  // .log bytes below this have had writeback started
  std::shared_ptr<runtime::file> index_file_;
  std::shared_ptr<runtime::file> time_index_file_;
  size_t index_max_entries_;
  size_t time_index_max_entries_;
  offset_index index_;
  time_index time_index_;
  bool indexes_loaded_ = false;
  bool index_dirty_ = false;  // written since the last fsync
  bool time_index_dirty_ = false;
  int64_t next_offset_;
  int64_t max_timestamp_ = -1;
  int64_t offset_of_max_timestamp_ = -1;
  int64_t bytes_since_last_index_entry_ = 0;
};

}  // namespace gregor::storage
