#pragma once
// The sparse indexes of a log segment, in memory, in Kafka's on-disk formats:
//
//   .index      8-byte entries: int32 offset - base_offset, int32 position of
//               a batch in the .log; the offset is that batch's LAST offset
//               (as Kafka writes it). One entry every index.interval.bytes.
//   .timeindex  12-byte entries: int64 timestamp, int32 offset - base_offset;
//               the largest timestamp so far and the last offset of the batch
//               that first reached it. Appended with offset index entries
//               when the largest timestamp grew, and once more when the
//               segment stops being active.
//
// All big-endian. Entries live in memory; the segment writes the new ones to
// the files with pwrite (at flush, roll and close) and files hold exactly the
// entries (no preallocation), which Kafka reads as valid indexes.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace gregor::storage {

class offset_index {
 public:
  struct entry {
    int64_t offset;
    uint64_t position;
  };
  static constexpr size_t entry_size = 8;

  offset_index(int64_t base_offset, size_t max_entries) : base_(base_offset), max_entries_(max_entries) {}

  // Decodes a whole .index file; fails if it is not a consistent index for a
  // segment at base_offset whose .log has log_size bytes.
  static result<offset_index> decode(bytes_view data, int64_t base_offset, size_t max_entries, uint64_t log_size);

  int64_t base_offset() const { return base_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  bool full() const { return entries_.size() >= max_entries_; }
  void set_max_entries(size_t n) { max_entries_ = n; }

  // Appends an entry; offsets and positions strictly increase.
  void append(int64_t offset, uint64_t position);
  // The entry with the largest offset <= target, or {base_offset, 0}.
  entry lookup(int64_t target) const;
  // The entry with the largest position <= position, if any.
  std::optional<entry> floor_position(uint64_t position) const;
  std::optional<entry> last() const;
  // Drops the entries at or after `position` (truncation of the .log).
  void truncate_from_position(uint64_t position);
  void clear();

  // Entries [persisted(), size()) are not on disk yet.
  size_t persisted() const { return persisted_; }
  void set_persisted(size_t n) { persisted_ = n; }
  // Appends the encoding of entries [from, size()) to out.
  void encode(size_t from, bytes& out) const;

 private:
  struct packed {
    uint32_t relative_offset;
    uint32_t position;
  };
  int64_t base_;
  size_t max_entries_;
  std::vector<packed> entries_;
  size_t persisted_ = 0;
};

class time_index {
 public:
  struct entry {
    int64_t timestamp;
    int64_t offset;
  };
  static constexpr size_t entry_size = 12;

  time_index(int64_t base_offset, size_t max_entries) : base_(base_offset), max_entries_(max_entries) {}

  static result<time_index> decode(bytes_view data, int64_t base_offset, size_t max_entries);

  int64_t base_offset() const { return base_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  bool full() const { return entries_.size() >= max_entries_; }
  void set_max_entries(size_t n) { max_entries_ = n; }

  // Appends (timestamp, offset) if timestamp is larger than the last entry's
  // (than -1 when empty), as Kafka's TimeIndex.maybeAppend.
  void maybe_append(int64_t timestamp, int64_t offset);
  // The entry with the largest timestamp <= target, or {-1, base_offset}.
  entry lookup(int64_t target) const;
  std::optional<entry> last() const;
  // Drops the entries whose offset >= offset.
  void truncate_from_offset(int64_t offset);
  void clear();

  size_t persisted() const { return persisted_; }
  void set_persisted(size_t n) { persisted_ = n; }
  void encode(size_t from, bytes& out) const;

 private:
  struct packed {
    int64_t timestamp;
    uint32_t relative_offset;
  };
  int64_t base_;
  size_t max_entries_;
  std::vector<packed> entries_;
  size_t persisted_ = 0;
};

}  // namespace gregor::storage
