#include "storage/index.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "base/assert.h"

namespace gregor::storage {

// ---- offset_index --------------------------------------------------------

result<offset_index> offset_index::decode(bytes_view data, int64_t base_offset, size_t max_entries, uint64_t log_size) {
  if (data.size() % entry_size != 0)
    return error{fmt::format("index size {} is not a multiple of {}", data.size(), entry_size)};
  offset_index idx(base_offset, max_entries);
  size_t n = data.size() / entry_size;
  idx.entries_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = data.data() + i * entry_size;
    int32_t rel = load_be<int32_t>(p);
    int32_t pos = load_be<int32_t>(p + 4);
    if (rel < 0 || pos < 0) return error{fmt::format("index entry {} is negative ({}, {})", i, rel, pos)};
    if (static_cast<uint64_t>(pos) >= log_size)
      return error{fmt::format("index entry {} points at position {} beyond the log size {}", i, pos, log_size)};
    if (!idx.entries_.empty()) {
      auto& prev = idx.entries_.back();
      // Kafka writes relative offsets and positions strictly increasing; a
      // zero-filled tail (preallocated, not trimmed) shows up as a repeat.
      if (static_cast<uint32_t>(rel) <= prev.relative_offset || static_cast<uint32_t>(pos) <= prev.position)
        return error{fmt::format("index entry {} ({}, {}) does not increase", i, rel, pos)};
    }
    idx.entries_.push_back({static_cast<uint32_t>(rel), static_cast<uint32_t>(pos)});
  }
  idx.persisted_ = n;
  return idx;
}

void offset_index::append(int64_t offset, uint64_t position) {
  int64_t rel = offset - base_;
  GREGOR_ASSERT(rel >= 0 && rel <= std::numeric_limits<int32_t>::max(), "index offset {} for base {}", offset, base_);
  GREGOR_ASSERT(position <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()), "index position {}", position);
  if (!entries_.empty()) {
    GREGOR_ASSERT(static_cast<uint32_t>(rel) > entries_.back().relative_offset &&
                      static_cast<uint32_t>(position) > entries_.back().position,
                  "index entry ({}, {}) after ({}, {})", offset, position, base_ + entries_.back().relative_offset,
                  entries_.back().position);
  }
  entries_.push_back({static_cast<uint32_t>(rel), static_cast<uint32_t>(position)});
}

offset_index::entry offset_index::lookup(int64_t target) const {
  if (target < base_) return {base_, 0};
  int64_t rel = target - base_;
  auto it = std::upper_bound(entries_.begin(), entries_.end(), rel,
                             [](int64_t r, const packed& e) { return r < static_cast<int64_t>(e.relative_offset); });
  if (it == entries_.begin()) return {base_, 0};
  --it;
  return {base_ + it->relative_offset, it->position};
}

std::optional<offset_index::entry> offset_index::floor_position(uint64_t position) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), position,
                             [](uint64_t p, const packed& e) { return p < e.position; });
  if (it == entries_.begin()) return std::nullopt;
  --it;
  return entry{base_ + it->relative_offset, it->position};
}

std::optional<offset_index::entry> offset_index::last() const {
  if (entries_.empty()) return std::nullopt;
  return entry{base_ + entries_.back().relative_offset, entries_.back().position};
}

void offset_index::truncate_from_position(uint64_t position) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), position,
                             [](const packed& e, uint64_t p) { return e.position < p; });
  entries_.erase(it, entries_.end());
  persisted_ = std::min(persisted_, entries_.size());
}

void offset_index::clear() {
  entries_.clear();
  persisted_ = 0;
}

void offset_index::encode(size_t from, bytes& out) const {
  size_t at = out.size();
  out.resize(at + (entries_.size() - from) * entry_size);
  for (size_t i = from; i < entries_.size(); ++i, at += entry_size) {
    store_be<int32_t>(out.data() + at, static_cast<int32_t>(entries_[i].relative_offset));
    store_be<int32_t>(out.data() + at + 4, static_cast<int32_t>(entries_[i].position));
  }
}

// ---- time_index ----------------------------------------------------------

result<time_index> time_index::decode(bytes_view data, int64_t base_offset, size_t max_entries) {
  if (data.size() % entry_size != 0)
    return error{fmt::format("time index size {} is not a multiple of {}", data.size(), entry_size)};
  time_index idx(base_offset, max_entries);
  size_t n = data.size() / entry_size;
  idx.entries_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = data.data() + i * entry_size;
    int64_t ts = load_be<int64_t>(p);
    int32_t rel = load_be<int32_t>(p + 8);
    if (rel < 0) return error{fmt::format("time index entry {} has a negative offset {}", i, rel)};
    if (!idx.entries_.empty()) {
      auto& prev = idx.entries_.back();
      if (ts <= prev.timestamp || static_cast<uint32_t>(rel) < prev.relative_offset)
        return error{fmt::format("time index entry {} ({}, {}) does not increase", i, ts, rel)};
    } else if (ts < 0) {
      return error{fmt::format("time index entry {} has timestamp {}", i, ts)};
    }
    idx.entries_.push_back({ts, static_cast<uint32_t>(rel)});
  }
  idx.persisted_ = n;
  return idx;
}

void time_index::maybe_append(int64_t timestamp, int64_t offset) {
  int64_t last_ts = entries_.empty() ? -1 : entries_.back().timestamp;
  if (timestamp <= last_ts) return;
  int64_t rel = offset - base_;
  GREGOR_ASSERT(rel >= 0 && rel <= std::numeric_limits<int32_t>::max(), "time index offset {} for base {}", offset, base_);
  if (!entries_.empty())
    GREGOR_ASSERT(static_cast<uint32_t>(rel) >= entries_.back().relative_offset, "time index offset {} goes back", offset);
  entries_.push_back({timestamp, static_cast<uint32_t>(rel)});
}

time_index::entry time_index::lookup(int64_t target) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), target,
                             [](int64_t t, const packed& e) { return t < e.timestamp; });
  if (it == entries_.begin()) return {-1, base_};
  --it;
  return {it->timestamp, base_ + it->relative_offset};
}

std::optional<time_index::entry> time_index::last() const {
  if (entries_.empty()) return std::nullopt;
  return entry{entries_.back().timestamp, base_ + entries_.back().relative_offset};
}

void time_index::truncate_from_offset(int64_t offset) {
  int64_t rel = offset - base_;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), rel,
                             [](const packed& e, int64_t r) { return static_cast<int64_t>(e.relative_offset) < r; });
  entries_.erase(it, entries_.end());
  persisted_ = std::min(persisted_, entries_.size());
}

void time_index::clear() {
  entries_.clear();
  persisted_ = 0;
}

void time_index::encode(size_t from, bytes& out) const {
  size_t at = out.size();
  out.resize(at + (entries_.size() - from) * entry_size);
  for (size_t i = from; i < entries_.size(); ++i, at += entry_size) {
    store_be<int64_t>(out.data() + at, entries_[i].timestamp);
    store_be<int32_t>(out.data() + at + 8, static_cast<int32_t>(entries_[i].relative_offset));
  }
}

}  // namespace gregor::storage
