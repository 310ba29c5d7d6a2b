#include "storage/segment.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "base/crc32c.h"
#include "base/log.h"

namespace gregor::storage {

using protocol::batch_header;
namespace bf = protocol::batch_field;

namespace {

constexpr std::string_view kLog = ".log";
constexpr std::string_view kIndex = ".index";
constexpr std::string_view kTimeIndex = ".timeindex";
constexpr size_t kRecoveryBuffer = 1 << 20;
constexpr size_t kHeaderBuffer = 8192;

size_t max_entries(int64_t max_bytes, size_t entry_size) {
  return static_cast<size_t>(std::max<int64_t>(max_bytes / static_cast<int64_t>(entry_size), 1));
}

// Checks the fixed fields of a batch header found in a segment at `pos`;
// returns why it is bad, or an empty string.
std::string header_problem(const uint8_t* p, uint64_t pos, uint64_t file_size) {
  int8_t magic = static_cast<int8_t>(p[bf::magic]);
  int32_t length = load_be<int32_t>(p + bf::batch_length);
  if (magic != protocol::current_magic) return fmt::format("magic {} at position {}", magic, pos);
  if (length < protocol::min_batch_length) return fmt::format("batch length {} at position {}", length, pos);
  if (static_cast<uint64_t>(length) > file_size - pos - protocol::log_overhead)
    return fmt::format("batch of {} bytes at position {} extends beyond the end of the file ({} bytes)",
                       protocol::log_overhead + static_cast<uint64_t>(length), pos, file_size);
  if (load_be<int32_t>(p + bf::last_offset_delta) < 0) return fmt::format("negative last offset delta at position {}", pos);
  return {};
}

}  // namespace

std::string segment_path(const std::string& dir, int64_t base_offset, std::string_view suffix) {
  return fmt::format("{}/{:020d}{}", dir, base_offset, suffix);
}

std::optional<int64_t> parse_segment_name(std::string_view name, std::string_view suffix) {
  if (name.size() <= suffix.size() || !name.ends_with(suffix)) return std::nullopt;
  std::string_view stem = name.substr(0, name.size() - suffix.size());
  if (stem.empty() || stem.size() > 19 + 1) return std::nullopt;
  int64_t v = 0;
  for (char c : stem) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// ---- file_reader ---------------------------------------------------------

result<const uint8_t*> file_reader::get(uint64_t pos, size_t n) {
  GREGOR_ASSERT(n <= cap_, "file_reader: {} bytes from a buffer of {}", n, cap_);
  if (pos >= start_ && pos + n <= start_ + len_) return buf_.data() + (pos - start_);
  if (pos + n > f_.size())
    return error{fmt::format("{}: {} bytes at position {} are beyond the end of the file ({} bytes)", f_.path(), n, pos,
                             f_.size())};
  size_t want = static_cast<size_t>(std::min<uint64_t>(cap_, f_.size() - pos));
  if (buf_.size() < want) buf_.resize(std::max(want, std::min(cap_, buf_.size() * 2)));
  auto got = f_.pread(pos, buf_.data(), want);
  if (!got) {
    len_ = 0;
    return got.err();
  }
  start_ = pos;
  len_ = got.value();
  if (len_ < n) return error{fmt::format("{}: short read at position {}", f_.path(), pos)};
  return buf_.data();
}

// ---- segment -------------------------------------------------------------

segment::segment(std::string dir, int64_t base, const log_config& config, std::shared_ptr<runtime::file> log)
    : dir_(std::move(dir)),
      base_(base),
      index_interval_bytes_(config.index_interval_bytes),
      log_(std::move(log)),
      index_max_entries_(max_entries(config.index_max_bytes, offset_index::entry_size)),
      time_index_max_entries_(max_entries(config.index_max_bytes, time_index::entry_size)),
      index_(base, index_max_entries_),
      time_index_(base, time_index_max_entries_),
      next_offset_(base) {}

void segment::set_config(const log_config& config) {
  index_interval_bytes_ = config.index_interval_bytes;
  index_max_entries_ = max_entries(config.index_max_bytes, offset_index::entry_size);
  time_index_max_entries_ = max_entries(config.index_max_bytes, time_index::entry_size);
  index_.set_max_entries(index_max_entries_);
  time_index_.set_max_entries(time_index_max_entries_);
}

result<std::unique_ptr<segment>> segment::create(const std::string& dir, int64_t base_offset, const log_config& config) {
  auto f = runtime::file::open(segment_path(dir, base_offset, kLog), runtime::file::mode::read_write_create);
  if (!f) return f.err();
  if (f.value()->size() > 0) {
    if (auto r = f.value()->truncate(0); !r) return r.err();
  }
  std::unique_ptr<segment> s(new segment(dir, base_offset, config, std::move(f.value())));
  s->indexes_loaded_ = true;
  if (auto r = s->rewrite_indexes(); !r) return r.err();
  return s;
}

result<std::unique_ptr<segment>> segment::open(const std::string& dir, int64_t base_offset, const log_config& config) {
  auto f = runtime::file::open(segment_path(dir, base_offset, kLog), runtime::file::mode::read_write_create);
  if (!f) return f.err();
  return std::unique_ptr<segment>(new segment(dir, base_offset, config, std::move(f.value())));
}

result<void> segment::open_index_files() {
  if (!index_file_) {
    auto f = runtime::file::open(segment_path(dir_, base_, kIndex), runtime::file::mode::read_write_create);
    if (!f) return f.err();
    index_file_ = std::move(f.value());
  }
  if (!time_index_file_) {
    auto f = runtime::file::open(segment_path(dir_, base_, kTimeIndex), runtime::file::mode::read_write_create);
    if (!f) return f.err();
    time_index_file_ = std::move(f.value());
  }
  return ok();
}

bool segment::check_indexes() {
  auto idx = runtime::file::open(segment_path(dir_, base_, kIndex), runtime::file::mode::read_only);
  auto tidx = runtime::file::open(segment_path(dir_, base_, kTimeIndex), runtime::file::mode::read_only);
  if (!idx || !tidx) return false;
  uint64_t isize = idx.value()->size(), tsize = tidx.value()->size();
  if (isize % offset_index::entry_size != 0 || tsize % time_index::entry_size != 0) return false;
  uint8_t buf[12];
  if (isize > 0) {
    auto n = idx.value()->pread(isize - offset_index::entry_size, buf, offset_index::entry_size);
    if (!n || n.value() != offset_index::entry_size) return false;
    int32_t rel = load_be<int32_t>(buf), pos = load_be<int32_t>(buf + 4);
    if (rel < 0 || pos < 0 || static_cast<uint64_t>(pos) >= size()) return false;
  }
  max_timestamp_ = -1;
  offset_of_max_timestamp_ = -1;
  if (tsize > 0) {
    auto n = tidx.value()->pread(tsize - time_index::entry_size, buf, time_index::entry_size);
    if (!n || n.value() != time_index::entry_size) return false;
    int64_t ts = load_be<int64_t>(buf);
    int32_t rel = load_be<int32_t>(buf + 8);
    if (ts < 0 || rel < 0) return false;
    max_timestamp_ = ts;
    offset_of_max_timestamp_ = base_ + rel;
  }
  return true;
}

result<void> segment::ensure_indexes() {
  if (indexes_loaded_) return ok();
  std::string problem;
  bytes idata, tdata;
  for (auto [suffix, out] : {std::pair{kIndex, &idata}, std::pair{kTimeIndex, &tdata}}) {
    std::string path = segment_path(dir_, base_, suffix);
    if (!runtime::fs::exists(path)) {
      problem = path + " is missing";
      break;
    }
    auto f = runtime::file::open(path, runtime::file::mode::read_only);
    if (!f) return f.err();
    auto data = f.value()->read_all();
    if (!data) return data.err();
    *out = std::move(data.value());
  }
  if (problem.empty()) {
    auto idx = offset_index::decode(idata, base_, index_max_entries_, size());
    auto tidx = time_index::decode(tdata, base_, time_index_max_entries_);
    if (!idx) {
      problem = idx.err().message;
    } else if (!tidx) {
      problem = tidx.err().message;
    } else {
      index_ = std::move(idx.value());
      time_index_ = std::move(tidx.value());
      indexes_loaded_ = true;
      if (auto last = time_index_.last()) {
        max_timestamp_ = last->timestamp;
        offset_of_max_timestamp_ = last->offset;
      }
      return ok();
    }
  }
  ::gregor::log::get("storage")->warn("{}: rebuilding the indexes of segment {}: {}", dir_, base_, problem);
  auto rec = recover(false);
  if (!rec) return rec.err();
  close_index_files();
  return ok();
}

void segment::close_index_files() {
  index_file_.reset();
  time_index_file_.reset();
  index_dirty_ = false;
  time_index_dirty_ = false;
}

result<bool> segment::load_next_offset(bytes& buffer) {
  if (auto r = ensure_indexes(); !r) return r.err();
  file_reader reader(*log_, buffer, kHeaderBuffer);
  uint64_t pos = 0;
  if (auto last = index_.last()) pos = last->position;
  uint64_t end = size();
  int64_t next = base_;
  bool any = false;
  while (pos < end) {
    if (end - pos < protocol::batch_header_size) return false;
    auto p = reader.get(pos, protocol::batch_header_size);
    if (!p) return p.err();
    if (!header_problem(p.value(), pos, end).empty()) return false;
    auto h = batch_header::parse(p.value());
    if (h.base_offset < next && any) return false;
    next = h.next_offset();
    any = true;
    pos += h.size_bytes();
  }
  next_offset_ = any ? next : base_;
  bytes_since_last_index_entry_ = 0;
  return true;
}

result<segment::recovery> segment::recover(bool truncate) {
  index_.clear();
  time_index_.clear();
  max_timestamp_ = -1;
  offset_of_max_timestamp_ = -1;
  bytes_since_last_index_entry_ = 0;
  next_offset_ = base_;
  bytes buf;
  file_reader reader(*log_, buf, kRecoveryBuffer);
  uint64_t pos = 0;
  uint64_t end = size();
  recovery rec;
  while (pos < end) {
    if (end - pos < protocol::batch_header_size) {
      rec.reason = fmt::format("incomplete batch header ({} bytes) at position {}", end - pos, pos);
      break;
    }
    auto p = reader.get(pos, protocol::batch_header_size);
    if (!p) return p.err();
    rec.reason = header_problem(p.value(), pos, end);
    if (!rec.reason.empty()) break;
    auto h = batch_header::parse(p.value());
    if (h.base_offset < next_offset_) {
      rec.reason = fmt::format("batch at position {} has base offset {}, below the expected {}", pos, h.base_offset,
                               next_offset_);
      break;
    }
    if (h.last_offset() - base_ > std::numeric_limits<int32_t>::max()) {
      rec.reason = fmt::format("batch at position {} has offset {}, out of range for segment {}", pos, h.last_offset(), base_);
      break;
    }
    uint32_t crc = 0;
    uint64_t q = pos + bf::attributes, stop = pos + h.size_bytes();
    while (q < stop) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kRecoveryBuffer, stop - q));
      auto chunk = reader.get(q, n);
      if (!chunk) return chunk.err();
      crc = crc32c(chunk.value(), n, crc);
      q += n;
    }
    if (crc != h.crc) {
      rec.reason = fmt::format("CRC mismatch in batch at position {} (stored {:#010x}, computed {:#010x})", pos, h.crc, crc);
      break;
    }
    index_batch(h, pos);
    pos += h.size_bytes();
  }
  rec.valid_bytes = pos;
  rec.corrupt = pos < end;
  auto lg = ::gregor::log::get("storage");
  if (rec.corrupt) {
    lg->warn("{} is corrupt from position {} of {}: {}; {}", segment_path(dir_, base_, kLog), pos, end,
             rec.reason, truncate ? "truncating it there" : "indexing only what precedes it");
    if (truncate) {
      if (auto r = log_->truncate(pos); !r) return r.err();
    }
  }
  time_index_.maybe_append(max_timestamp_, offset_of_max_timestamp_);
  indexes_loaded_ = true;
  if (auto r = rewrite_indexes(); !r) return r.err();
  return rec;
}

result<uint64_t> segment::write(bytes_view batches) {
  uint64_t before = log_->size();
  auto at = log_->append(batches);
  if (!at) {
    (void)log_->truncate(before);  // best effort: no partial batch stays behind
    return at.err();
  }
  // Writeback starts every few MB instead of when the kernel's dirty limits
  // are reached: a broker's page cache is mostly log data, and reclaiming it
  // (under a memory limit, or with memory full) stalls on dirty pages.
  constexpr uint64_t kWritebackBytes = 4 << 20;
  uint64_t end = log_->size();
  written_back_ = std::min(written_back_, end);
  if (end - written_back_ >= kWritebackBytes) {
    log_->start_writeback(written_back_, end - written_back_);
    written_back_ = end;
  }
  return at.value();
}

void segment::index_batch(const batch_header& h, uint64_t position) {
  if (h.max_timestamp > max_timestamp_) {
    max_timestamp_ = h.max_timestamp;
    offset_of_max_timestamp_ = h.last_offset();
  }
  if (bytes_since_last_index_entry_ > index_interval_bytes_) {
    index_.append(h.last_offset(), position);
    time_index_.maybe_append(max_timestamp_, offset_of_max_timestamp_);
    bytes_since_last_index_entry_ = 0;
  }
  bytes_since_last_index_entry_ += static_cast<int64_t>(h.size_bytes());
  next_offset_ = h.next_offset();
}

result<std::optional<batch_location>> segment::find_batch(int64_t offset, file_reader& reader) {
  GREGOR_ASSERT(indexes_loaded_, "find_batch before the indexes of segment {} are loaded", base_);
  uint64_t pos = index_.lookup(offset).position;
  uint64_t end = size();
  while (pos < end) {
    if (end - pos < protocol::batch_header_size)
      return error{fmt::format("{}: incomplete batch header at position {}", log_->path(), pos)};
    auto p = reader.get(pos, protocol::batch_header_size);
    if (!p) return p.err();
    if (auto why = header_problem(p.value(), pos, end); !why.empty()) return error{log_->path() + ": " + why};
    auto h = batch_header::parse(p.value());
    if (h.last_offset() >= offset) return std::optional<batch_location>(batch_location{pos, h});
    pos += h.size_bytes();
  }
  return std::optional<batch_location>();
}

result<uint64_t> segment::boundary_at_or_below(uint64_t from, uint64_t target, file_reader& reader) {
  uint64_t b = from;
  if (auto e = index_.floor_position(target); e && e->position > from) b = e->position;
  uint64_t end = size();
  while (b < end) {
    if (end - b < protocol::batch_header_size)
      return error{fmt::format("{}: incomplete batch header at position {}", log_->path(), b)};
    auto p = reader.get(b, protocol::batch_header_size);
    if (!p) return p.err();
    if (auto why = header_problem(p.value(), b, end); !why.empty()) return error{log_->path() + ": " + why};
    uint64_t next = b + protocol::log_overhead + static_cast<uint64_t>(load_be<int32_t>(p.value() + bf::batch_length));
    if (next > target) break;
    b = next;
  }
  return b;
}

result<void> segment::write_indexes() {
  if (auto r = open_index_files(); !r) return r;
  bytes buf;
  {
    uint64_t want = index_.persisted() * offset_index::entry_size;
    if (index_file_->size() != want) {
      if (auto r = index_file_->truncate(want); !r) return r;
      index_dirty_ = true;
    }
    if (index_.persisted() < index_.size()) {
      index_.encode(index_.persisted(), buf);
      if (auto r = index_file_->pwrite(want, buf); !r) return r;
      index_.set_persisted(index_.size());
      index_dirty_ = true;
    }
  }
  {
    buf.clear();
    uint64_t want = time_index_.persisted() * time_index::entry_size;
    if (time_index_file_->size() != want) {
      if (auto r = time_index_file_->truncate(want); !r) return r;
      time_index_dirty_ = true;
    }
    if (time_index_.persisted() < time_index_.size()) {
      time_index_.encode(time_index_.persisted(), buf);
      if (auto r = time_index_file_->pwrite(want, buf); !r) return r;
      time_index_.set_persisted(time_index_.size());
      time_index_dirty_ = true;
    }
  }
  return ok();
}

result<void> segment::rewrite_indexes() {
  index_.set_persisted(0);
  time_index_.set_persisted(0);
  return write_indexes();
}

result<void> segment::flush() {
  if (auto r = write_indexes(); !r) return r;
  if (auto r = log_->sync(); !r) return r;
  if (index_dirty_) {
    if (auto r = index_file_->sync(); !r) return r;
    index_dirty_ = false;
  }
  if (time_index_dirty_) {
    if (auto r = time_index_file_->sync(); !r) return r;
    time_index_dirty_ = false;
  }
  return ok();
}

result<void> segment::seal() {
  time_index_.maybe_append(max_timestamp_, offset_of_max_timestamp_);
  if (auto r = flush(); !r) return r;
  close_index_files();
  return ok();
}

result<void> segment::recompute_max_timestamp(bytes& buffer) {
  max_timestamp_ = -1;
  offset_of_max_timestamp_ = -1;
  uint64_t pos = 0;
  if (auto last = time_index_.last()) {
    max_timestamp_ = last->timestamp;
    offset_of_max_timestamp_ = last->offset;
    pos = index_.lookup(last->offset).position;
  }
  file_reader reader(*log_, buffer, kHeaderBuffer);
  uint64_t end = size();
  while (pos < end) {
    auto p = reader.get(pos, protocol::batch_header_size);
    if (!p) return p.err();
    if (auto why = header_problem(p.value(), pos, end); !why.empty()) return error{log_->path() + ": " + why};
    auto h = batch_header::parse(p.value());
    if (h.max_timestamp > max_timestamp_) {
      max_timestamp_ = h.max_timestamp;
      offset_of_max_timestamp_ = h.last_offset();
    }
    pos += h.size_bytes();
  }
  return ok();
}

result<void> segment::for_each_batch(bytes& buffer, const std::function<void(const batch_header&)>& fn) {
  return for_each_batch(buffer, [&fn](const batch_header& h, uint64_t) { fn(h); });
}

result<void> segment::for_each_batch(bytes& buffer, const std::function<void(const batch_header&, uint64_t)>& fn) {
  file_reader reader(*log_, buffer, kHeaderBuffer);
  const uint64_t end = size();
  for (uint64_t pos = 0; pos < end;) {
    auto p = reader.get(pos, protocol::batch_header_size);
    if (!p) return p.err();
    if (auto why = header_problem(p.value(), pos, end); !why.empty()) return error{log_->path() + ": " + why};
    auto h = batch_header::parse(p.value());
    fn(h, pos);
    pos += h.size_bytes();
  }
  return ok();
}

result<void> segment::truncate_to(int64_t offset, bytes& buffer) {
  if (auto r = ensure_indexes(); !r) return r;
  file_reader reader(*log_, buffer, kHeaderBuffer);
  auto found = find_batch(offset, reader);
  if (!found) return found.err();
  if (!found.value()) return ok();
  const batch_location& at = *found.value();
  index_.truncate_from_position(at.position);
  time_index_.truncate_from_offset(at.header.base_offset);
  if (auto r = log_->truncate(at.position); !r) return r;
  next_offset_ = at.position == 0 ? base_ : at.header.base_offset;
  bytes_since_last_index_entry_ = 0;
  if (at.position == 0) roll_base_ms = -1;
  if (auto r = recompute_max_timestamp(buffer); !r) return r;
  return write_indexes();
}

result<void> segment::remove_files() {
  close_index_files();
  for (auto suffix : {kLog, kIndex, kTimeIndex}) {
    if (auto r = runtime::fs::remove(segment_path(dir_, base_, suffix)); !r) return r;
  }
  return ok();
}

}  // namespace gregor::storage
