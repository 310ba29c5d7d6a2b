#include "storage/cleaner.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "base/crc32c.h"
#include "base/log.h"
#include "base/varint.h"
#include "protocol/compression.h"
#include "protocol/record_batch.h"
#include "runtime/file.h"
#include "storage/index.h"
#include "storage/segment.h"

namespace gregor::storage {

using protocol::batch_header;
namespace bf = protocol::batch_field;

// The parts of a log the cleaner reads and swaps.
struct log_cleaner_access {
  static std::vector<std::unique_ptr<segment>>& segments(log& l) { return l.segments_; }
  static const std::vector<std::unique_ptr<segment>>& segments(const log& l) { return l.segments_; }
  // After a group [base, upper) is swapped in: its aborted transactions
  // become `kept` (those whose data is all gone are dropped), and the
  // .txnindex files of the old segments are gone (commit_group renamed and
  // deleted them). The new segment's file is rewritten, or removed if empty.
  static result<void> replace_aborted(log& l, int64_t base, int64_t upper, const std::vector<aborted_txn>& kept) {
    std::erase_if(l.aborted_, [&](const aborted_txn& a) { return a.last_offset >= base && a.last_offset < upper; });
    l.aborted_.insert(l.aborted_.end(), kept.begin(), kept.end());
    std::sort(l.aborted_.begin(), l.aborted_.end(),
              [](const aborted_txn& a, const aborted_txn& b) { return a.last_offset < b.last_offset; });
    std::erase_if(l.txn_index_files_, [&](int64_t b) { return b >= base && b < upper; });
    l.txn_index_files_.insert(std::lower_bound(l.txn_index_files_.begin(), l.txn_index_files_.end(), base), base);
    return l.write_txn_index(l.segment_for(base));
  }
};

namespace {

using access = log_cleaner_access;

constexpr const char* kCheckpointFile = "cleaner-offset-checkpoint";
constexpr const char* kSwapFile = "cleaner-swap";
// KIP-534: attribute bit 6 says the base timestamp is the delete horizon.
constexpr int16_t kDeleteHorizonFlag = 0x40;
constexpr size_t kReadBuffer = 1 << 20;
constexpr size_t kWriteBuffer = 1 << 20;
// .txnindex goes with its segment through the same commit: a cleaned
// segment's aborted transactions are swapped in with its data.
constexpr std::string_view kSuffixes[] = {".log", ".index", ".timeindex", ".txnindex"};

std::shared_ptr<spdlog::logger> logger() { return ::gregor::log::get("cleaner"); }

std::optional<int64_t> parse_i64(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

size_t index_of(const std::vector<std::unique_ptr<segment>>& segs, int64_t offset) {
  auto it = std::upper_bound(segs.begin(), segs.end(), offset,
                             [](int64_t o, const std::unique_ptr<segment>& s) { return o < s->base_offset(); });
  return it == segs.begin() ? 0 : static_cast<size_t>(it - segs.begin()) - 1;
}

result<void> remove_if_exists(const std::string& path) {
  if (!runtime::fs::exists(path)) return ok();
  return runtime::fs::remove(path);
}

struct swap_record {
  int64_t new_base = 0;
  std::vector<int64_t> old_bases;
};

std::string encode_swap(const swap_record& r) {
  std::string s = fmt::format("0\nnew {}\nold", r.new_base);
  for (auto b : r.old_bases) s += fmt::format(" {}", b);
  return s + "\n";
}

std::optional<swap_record> decode_swap(const std::string& text) {
  std::istringstream in(text);
  std::string version, word;
  swap_record r;
  if (!(in >> version) || version != "0") return std::nullopt;
  if (!(in >> word) || word != "new") return std::nullopt;
  if (!(in >> word)) return std::nullopt;
  auto nb = parse_i64(word);
  if (!nb) return std::nullopt;
  r.new_base = *nb;
  if (!(in >> word) || word != "old") return std::nullopt;
  while (in >> word) {
    auto b = parse_i64(word);
    if (!b) return std::nullopt;
    r.old_bases.push_back(*b);
  }
  return r;
}

}  // namespace

// ---- checkpoints and recovery ---------------------------------------------

int64_t read_cleaner_checkpoint(const std::string& dir) {
  std::string path = dir + "/" + kCheckpointFile;
  if (!runtime::fs::exists(path)) return 0;
  auto text = runtime::fs::read_file(path);
  if (!text) return 0;
  std::istringstream in(text.value());
  std::string version, offset;
  if (!(in >> version >> offset) || version != "0") return 0;
  return parse_i64(offset).value_or(0);
}

result<void> write_cleaner_checkpoint(const std::string& dir, int64_t offset) {
  return runtime::fs::write_file_atomic(dir + "/" + kCheckpointFile, fmt::format("0\n{}\n", offset));
}

result<void> recover_interrupted_clean(const std::string& dir) {
  std::string path = dir + "/" + kSwapFile;
  if (!runtime::fs::exists(path)) return ok();
  auto text = runtime::fs::read_file(path);
  if (!text) return text.err();
  auto rec = decode_swap(text.value());
  if (!rec) return error{fmt::format("{}: malformed {}; not starting the log rather than guessing", dir, kSwapFile)};
  logger()->warn("{}: completing a compaction interrupted after its commit (segment {} replacing {} segments)", dir,
                 rec->new_base, rec->old_bases.size());
  for (auto suffix : kSuffixes) {
    std::string final_path = segment_path(dir, rec->new_base, suffix);
    for (const char* pending : {".swap", ".cleaned"}) {
      if (runtime::fs::exists(final_path + pending)) {
        if (auto r = runtime::fs::rename(final_path + pending, final_path); !r) return r;
        break;
      }
    }
  }
  for (auto base : rec->old_bases) {
    if (base == rec->new_base) continue;
    for (auto suffix : kSuffixes) {
      std::string p = segment_path(dir, base, suffix);
      if (auto r = remove_if_exists(p); !r) return r;
      if (auto r = remove_if_exists(p + ".deleted"); !r) return r;
    }
  }
  if (auto r = runtime::fs::sync_dir(dir); !r) return r;
  if (auto r = runtime::fs::remove(path); !r) return r;
  return runtime::fs::sync_dir(dir);
}

// ---- what is cleanable ----------------------------------------------------

std::optional<cleanable_section> cleanable(const log& l, int64_t now_ms, int64_t last_stable_offset) {
  auto& segs = access::segments(l);
  const log_config& cfg = l.config();
  if (segs.size() < 2) return std::nullopt;
  cleanable_section s;
  s.first_dirty = std::max({read_cleaner_checkpoint(l.dir()), l.log_start_offset(), segs.front()->base_offset()});
  size_t d = index_of(segs, s.first_dirty);
  size_t u = segs.size() - 1;  // never the active segment
  // Kafka never cleans at or past the last stable offset: an open
  // transaction may still abort (its data must not count as a key's latest
  // value), and a closed one's fate is known only once its marker is
  // replicated. The segment holding that offset is not cleaned.
  int64_t stable = last_stable_offset;
  if (auto fuo = l.producers().first_unstable_offset()) stable = std::min(stable, *fuo);
  u = std::min(u, index_of(segs, stable));
  if (cfg.min_compaction_lag_ms > 0) {
    for (size_t i = d; i < u; ++i) {
      if (segs[i]->max_timestamp() > now_ms - cfg.min_compaction_lag_ms) {
        u = i;
        break;
      }
    }
  }
  if (d >= u) return std::nullopt;
  s.end = segs[u]->base_offset();
  if (s.first_dirty >= s.end) return std::nullopt;
  for (size_t i = 0; i < d; ++i) s.clean_bytes += segs[i]->size();
  for (size_t i = d; i < u; ++i) s.dirty_bytes += segs[i]->size();
  uint64_t total = s.clean_bytes + s.dirty_bytes;
  s.dirty_ratio = total == 0 ? 0.0 : static_cast<double>(s.dirty_bytes) / static_cast<double>(total);
  int64_t first_ts = segs[d]->max_timestamp();
  s.max_lag_exceeded = cfg.max_compaction_lag_ms < std::numeric_limits<int64_t>::max() && first_ts >= 0 &&
                       now_ms - first_ts > cfg.max_compaction_lag_ms;
  s.due = s.dirty_bytes > 0 && (s.dirty_ratio >= cfg.min_cleanable_dirty_ratio || s.max_lag_exceeded);
  return s;
}

// ---- the job --------------------------------------------------------------

struct clean_job::state {
  struct seg_ref {
    int64_t base = 0;
    std::shared_ptr<runtime::file> file;  // keeps the old data readable whatever happens to the log
    uint64_t size = 0;
    int64_t upper = 0;  // the next segment's base
  };
  enum class phase { map, clean, done };

  std::string dir;
  log_config cfg;
  int64_t now_ms = 0;
  int64_t first_dirty = 0;
  int64_t end = 0;
  std::vector<seg_ref> segs;  // every closed segment from the log start to `end`
  size_t dirty_from = 0;

  std::unordered_map<std::string, int64_t> offset_map;  // key -> last offset in the dirty section
  size_t map_bytes = 0;
  size_t max_map_bytes = 0;
  // Transactions (Kafka's CleanedTransactionMetadata). The aborted
  // transactions of the log's index with data below `end`, and whether this
  // pass has read a batch of each (then its marker and index entry stay).
  std::vector<aborted_txn> aborted;
  std::vector<bool> aborted_observed;
  std::unordered_map<int64_t, std::vector<size_t>> aborted_by_producer;  // producer id -> indexes into aborted
  // Producers with transactional data read since their last marker: their
  // COMMIT marker has data of its transaction before it.
  std::unordered_set<int64_t> ongoing_committed;
  std::vector<aborted_txn> group_aborted;  // index entries of the group being written

  phase ph = phase::map;
  size_t seg_i = 0;
  uint64_t pos = 0;
  bytes read_buf;
  bytes big_buf;

  std::vector<std::pair<size_t, size_t>> groups;  // [first, last) indexes into segs
  size_t group_i = 0;
  bool group_open = false;
  std::shared_ptr<runtime::file> out;
  bytes out_buf;
  uint64_t out_pos = 0;  // bytes written so far, buffered ones included
  std::optional<offset_index> index;
  std::optional<time_index> tindex;
  int64_t bytes_since_index = 0;
  int64_t max_ts = -1;
  int64_t offset_of_max_ts = -1;
  int crash_step = 0;

  // Record encoding scratch.
  bytes records;
  bytes compressed;
};

clean_job::~clean_job() = default;

namespace {

// Reads the batch at `pos` of a segment; the view is valid until the next call.
result<bytes_view> read_batch(clean_job::state& s, const clean_job::state::seg_ref& seg, uint64_t pos,
                              file_reader& reader, batch_header& h) {
  if (seg.size - pos < protocol::batch_header_size)
    return error{fmt::format("{}: incomplete batch header at position {}", seg.file->path(), pos)};
  auto p = reader.get(pos, protocol::batch_header_size);
  if (!p) return p.err();
  h = batch_header::parse(p.value());
  if (h.magic != protocol::current_magic || h.batch_length < protocol::min_batch_length ||
      static_cast<uint64_t>(h.batch_length) > seg.size - pos - protocol::log_overhead)
    return error{fmt::format("{}: malformed batch at position {}", seg.file->path(), pos)};
  size_t n = h.size_bytes();
  if (n <= kReadBuffer) {
    auto all = reader.get(pos, n);
    if (!all) return all.err();
    return bytes_view(all.value(), n);
  }
  s.big_buf.resize(n);
  auto got = seg.file->pread(pos, s.big_buf.data(), n);
  if (!got) return got.err();
  if (got.value() != n) return error{fmt::format("{}: short read at position {}", seg.file->path(), pos)};
  return bytes_view(s.big_buf.data(), n);
}

void put_bytes(bytes& out, std::optional<bytes_view> b) {
  if (!b) {
    put_varint(out, -1);
    return;
  }
  put_varint(out, static_cast<int64_t>(b->size()));
  out.insert(out.end(), b->begin(), b->end());
}

struct kept_record {
  int64_t offset;
  int64_t timestamp;  // create time: base timestamp + delta
  std::optional<bytes_view> key;
  std::optional<bytes_view> value;
  std::vector<protocol::record_header_view> headers;
};

void encode_record(bytes& out, const kept_record& r, int64_t base_offset, int64_t base_ts) {
  bytes body;
  body.push_back(0);
  put_varint(body, r.timestamp - base_ts);
  put_varint(body, r.offset - base_offset);
  put_bytes(body, r.key);
  put_bytes(body, r.value);
  put_varint(body, static_cast<int64_t>(r.headers.size()));
  for (auto& h : r.headers) {
    put_bytes(body, as_bytes(h.key));
    put_bytes(body, h.value);
  }
  put_varint(out, static_cast<int64_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
}

// Appends to `out` a copy of `batch` (its header) with new records.
void write_batch(bytes& out, bytes_view original, const batch_header& h, bytes_view payload, int16_t attributes,
                 int64_t base_ts, int64_t max_ts, int32_t count) {
  size_t start = out.size();
  out.insert(out.end(), original.begin(), original.begin() + protocol::batch_header_size);
  out.insert(out.end(), payload.begin(), payload.end());
  uint8_t* p = out.data() + start;
  size_t size = out.size() - start;
  store_be<int32_t>(p + bf::batch_length, static_cast<int32_t>(size - protocol::log_overhead));
  store_be<int16_t>(p + bf::attributes, attributes);
  store_be<int64_t>(p + bf::base_timestamp, base_ts);
  store_be<int64_t>(p + bf::max_timestamp, max_ts);
  store_be<int32_t>(p + bf::records_count, count);
  (void)h;
  store_be<uint32_t>(p + bf::crc, crc32c(p + bf::attributes, size - bf::attributes));
}

int64_t saturating_add(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b) return std::numeric_limits<int64_t>::max();
  return a + b;
}

// The aborted transaction (index into s.aborted) a transactional data batch
// belongs to, if any.
std::optional<size_t> aborted_txn_of(const clean_job::state& s, const batch_header& h) {
  if (h.is_control() || !h.is_transactional()) return std::nullopt;
  auto it = s.aborted_by_producer.find(h.producer_id);
  if (it == s.aborted_by_producer.end()) return std::nullopt;
  for (size_t i : it->second)
    if (s.aborted[i].first_offset <= h.base_offset && h.base_offset <= s.aborted[i].last_offset) return i;
  return std::nullopt;
}

// Kafka's isBatchLastRecordOfProducer: the batch holding the last data
// offset of a producer the state still has, or its marker when its last
// entry is a marker of its current epoch (that epoch is what fences).
bool is_last_of_producer(const producer_state& producers, const batch_header& h) {
  if (!h.has_producer_id()) return false;
  const producer_entry* e = producers.find(h.producer_id);
  if (!e) return false;
  if (!e->batches.empty()) return !h.is_control() && h.last_offset() == e->batches.back().last_offset;
  return h.is_control() && h.producer_epoch == e->epoch;
}

// Kafka's onControlBatchRead: whether a marker may go (once its delete
// horizon has passed) because no batch of its transaction is left before it.
// An ABORT marker that must stay keeps its transaction in the .txnindex.
bool marker_discardable(clean_job::state& s, const batch_header& h, bytes_view batch) {
  auto m = parse_txn_marker(batch);
  if (!m) return false;  // other control records are kept
  if (m->commit) return s.ongoing_committed.erase(h.producer_id) == 0;
  s.ongoing_committed.erase(h.producer_id);
  auto it = s.aborted_by_producer.find(h.producer_id);
  if (it == s.aborted_by_producer.end()) return true;
  for (size_t i : it->second) {
    if (s.aborted[i].last_offset != h.base_offset) continue;
    if (!s.aborted_observed[i]) return true;
    s.group_aborted.push_back(s.aborted[i]);
    return false;
  }
  return true;  // its index entry went with its data in an earlier clean
}

}  // namespace

std::unique_ptr<clean_job> clean_job::start(log& l, int64_t now_ms, bool force, size_t max_map_bytes,
                                            int64_t last_stable_offset) {
  auto sec = cleanable(l, now_ms, last_stable_offset);
  if (!sec || (!sec->due && !force) || sec->dirty_bytes == 0) return nullptr;
  auto& segs = access::segments(l);
  std::unique_ptr<clean_job> job(new clean_job());
  job->s_ = std::make_unique<state>();
  state& s = *job->s_;
  s.dir = l.dir();
  s.cfg = l.config();
  s.now_ms = now_ms;
  s.first_dirty = sec->first_dirty;
  s.end = sec->end;
  s.max_map_bytes = max_map_bytes;
  for (size_t i = 0; i + 1 < segs.size() && segs[i]->base_offset() < s.end; ++i) {
    state::seg_ref r;
    r.base = segs[i]->base_offset();
    r.file = segs[i]->log_file();
    r.size = segs[i]->size();
    r.upper = segs[i + 1]->base_offset();
    if (r.base <= s.first_dirty) s.dirty_from = s.segs.size();
    s.segs.push_back(std::move(r));
  }
  s.seg_i = s.dirty_from;
  s.read_buf.resize(kReadBuffer);
  // Every aborted transaction with data in the range, its marker above it or
  // not (Kafka's collectAbortedTransactions): data below the last stable
  // offset whose transaction is not among them is committed.
  s.aborted = l.aborted_transactions(l.log_start_offset(), s.end);
  s.aborted_observed.assign(s.aborted.size(), false);
  for (size_t i = 0; i < s.aborted.size(); ++i) s.aborted_by_producer[s.aborted[i].producer_id].push_back(i);
  logger()->debug("{}: cleaning: first dirty offset {}, end {}, dirty ratio {:.2f}{}", s.dir, s.first_dirty, s.end,
                  sec->dirty_ratio, sec->max_lag_exceeded ? " (max.compaction.lag.ms exceeded)" : "");
  return job;
}

result<void> clean_job::run(log& l, int64_t now_ms) {
  for (;;) {
    auto done = step(l, now_ms, std::numeric_limits<size_t>::max());
    if (!done) return done.err();
    if (done.value()) return ok();
  }
}

result<bool> clean_job::step(log& l, int64_t now_ms, size_t budget) {
  state& s = *s_;
  if (s.ph == state::phase::done || crashed_) return true;
  s.now_ms = now_ms;

  // ---- phase 1: the offset map of the dirty section
  if (s.ph == state::phase::map) {
    while (s.seg_i < s.segs.size()) {
      auto& seg = s.segs[s.seg_i];
      if (s.pos >= seg.size) {
        ++s.seg_i;
        s.pos = 0;
        if (s.map_bytes >= s.max_map_bytes && s.seg_i < s.segs.size()) {
          // The map is full: clean up to here and leave the rest dirty.
          s.end = s.segs[s.seg_i].base;
          s.segs.resize(s.seg_i);
          break;
        }
        continue;
      }
      if (budget == 0) return false;
      file_reader reader(*seg.file, s.read_buf, kReadBuffer);
      while (s.pos < seg.size && budget > 0) {
        batch_header h;
        auto b = read_batch(s, seg, s.pos, reader, h);
        if (!b) return b.err();
        ++stats_.batches_read;
        stats_.bytes_read += h.size_bytes();
        // Aborted records never become a key's latest value.
        if (!h.is_control() && !aborted_txn_of(s, h)) {
          auto rr = protocol::record_reader::open(b.value());
          if (!rr) return error{fmt::format("{}: batch at offset {}: {}", s.dir, h.base_offset, rr.err().message)};
          protocol::record_view rv;
          for (;;) {
            auto more = rr->next(rv);
            if (!more) return error{fmt::format("{}: batch at offset {}: {}", s.dir, h.base_offset, more.err().message)};
            if (!more.value()) break;
            if (!rv.key) continue;
            auto [it, inserted] = s.offset_map.try_emplace(std::string(as_string(*rv.key)), rv.offset);
            if (inserted) s.map_bytes += it->first.size() + 64;
            else it->second = std::max(it->second, rv.offset);
          }
        }
        s.pos += h.size_bytes();
        budget -= std::min<size_t>(budget, h.size_bytes());
      }
    }
    // Groups of consecutive segments that fit one segment (and one index's offset range).
    uint64_t max_bytes = static_cast<uint64_t>(std::clamp<int64_t>(s.cfg.segment_bytes, 1, std::numeric_limits<int32_t>::max()));
    for (size_t i = 0; i < s.segs.size();) {
      size_t j = i + 1;
      uint64_t size = s.segs[i].size;
      while (j < s.segs.size() && size + s.segs[j].size <= max_bytes &&
             s.segs[j].upper - 1 - s.segs[i].base <= std::numeric_limits<int32_t>::max()) {
        size += s.segs[j].size;
        ++j;
      }
      s.groups.emplace_back(i, j);
      i = j;
    }
    s.ph = state::phase::clean;
    s.group_i = 0;
    s.seg_i = s.groups.empty() ? 0 : s.groups[0].first;
    s.pos = 0;
    if (budget == 0) return false;
  }

  // ---- phase 2: rewrite each group, then swap it in
  while (s.group_i < s.groups.size()) {
    auto [first, last] = s.groups[s.group_i];
    int64_t base = s.segs[first].base;
    if (!s.group_open) {
      auto f = runtime::file::open(segment_path(s.dir, base, ".log.cleaned"), runtime::file::mode::read_write_create);
      if (!f) return f.err();
      s.out = std::move(f.value());
      if (s.out->size() > 0) {
        if (auto r = s.out->truncate(0); !r) return r.err();
      }
      s.out_buf.clear();
      s.out_pos = 0;
      auto entries = [&](size_t entry_size) {
        return static_cast<size_t>(std::max<int64_t>(s.cfg.index_max_bytes / static_cast<int64_t>(entry_size), 1));
      };
      s.index.emplace(base, entries(offset_index::entry_size));
      s.tindex.emplace(base, entries(time_index::entry_size));
      s.bytes_since_index = 0;
      s.group_aborted.clear();
      s.max_ts = -1;
      s.offset_of_max_ts = -1;
      s.seg_i = first;
      s.pos = 0;
      s.group_open = true;
    }
    while (s.seg_i < last) {
      if (budget == 0) return false;
      auto& seg = s.segs[s.seg_i];
      file_reader reader(*seg.file, s.read_buf, kReadBuffer);
      while (s.pos < seg.size && budget > 0) {
        batch_header h;
        auto b = read_batch(s, seg, s.pos, reader, h);
        if (!b) return b.err();
        budget -= std::min<size_t>(budget, h.size_bytes());
        s.pos += h.size_bytes();
        size_t before = s.out_buf.size();
        bool has_horizon = h.attributes & kDeleteHorizonFlag;
        // Writes the batch with only `kept` records.
        auto rewrite = [&](const std::vector<kept_record>& kept, int16_t attrs, int64_t base_ts,
                           int64_t max_ts) -> result<void> {
          s.records.clear();
          for (auto& k : kept) encode_record(s.records, k, h.base_offset, base_ts);
          bytes_view payload = s.records;
          if (h.compression() != protocol::compression_type::none) {
            s.compressed.clear();
            auto c = protocol::compress(h.compression(), s.records, s.compressed);
            if (!c.ok()) return error{fmt::format("{}: recompressing the batch at {}: {}", s.dir, h.base_offset, c.message)};
            payload = s.compressed;
          }
          write_batch(s.out_buf, b.value(), h, payload, attrs, base_ts, max_ts, static_cast<int32_t>(kept.size()));
          return ok();
        };
        if (h.is_control()) {
          bool discardable = marker_discardable(s, h, b.value());
          if (!discardable || is_last_of_producer(l.producers(), h)) {
            s.out_buf.insert(s.out_buf.end(), b.value().begin(), b.value().end());
          } else if (has_horizon) {
            if (s.now_ms > h.base_timestamp) ++stats_.markers_removed;
            else s.out_buf.insert(s.out_buf.end(), b.value().begin(), b.value().end());
          } else {
            // The first clean that finds the marker removable sets its delete
            // horizon; consumers that read the transaction's data before it
            // went have delete.retention.ms to read the marker too.
            auto rr = protocol::record_reader::open(b.value());
            if (!rr) return error{fmt::format("{}: batch at offset {}: {}", s.dir, h.base_offset, rr.err().message)};
            std::vector<kept_record> kept;
            protocol::record_view rv;
            for (;;) {
              auto more = rr->next(rv);
              if (!more) return error{fmt::format("{}: batch at offset {}: {}", s.dir, h.base_offset, more.err().message)};
              if (!more.value()) break;
              kept.push_back({rv.offset, h.base_timestamp + rv.timestamp_delta, rv.key, rv.value,
                              std::vector<protocol::record_header_view>(rv.headers.begin(), rv.headers.end())});
            }
            if (auto r = rewrite(kept, static_cast<int16_t>(h.attributes | kDeleteHorizonFlag),
                                 saturating_add(s.now_ms, s.cfg.delete_retention_ms), h.max_timestamp);
                !r)
              return r.err();
          }
        } else {
          auto aborted = aborted_txn_of(s, h);
          if (aborted) s.aborted_observed[*aborted] = true;
          else if (h.is_transactional()) s.ongoing_committed.insert(h.producer_id);
          auto rr = protocol::record_reader::open(b.value());
          if (!rr) return error{fmt::format("{}: batch at offset {}: {}", s.dir, h.base_offset, rr.err().message)};
          std::vector<kept_record> kept;
          int32_t total = 0;
          bool tombstone_kept = false;
          protocol::record_view rv;
          for (;;) {
            auto more = rr->next(rv);
            if (!more) return error{fmt::format("{}: batch at offset {}: {}", s.dir, h.base_offset, more.err().message)};
            if (!more.value()) break;
            ++total;
            if (aborted) {
              ++stats_.aborted_records_removed;
              continue;
            }
            if (!rv.key) continue;  // compacted topics keep keyed records only
            auto it = s.offset_map.find(std::string(as_string(*rv.key)));
            if (it != s.offset_map.end() && it->second > rv.offset) continue;  // superseded
            if (!rv.value) {
              if (has_horizon && s.now_ms > h.base_timestamp) {
                ++stats_.tombstones_removed;
                continue;
              }
              tombstone_kept = true;
            }
            kept.push_back({rv.offset, h.base_timestamp + rv.timestamp_delta, rv.key, rv.value,
                            std::vector<protocol::record_header_view>(rv.headers.begin(), rv.headers.end())});
          }
          stats_.records_read += total;
          stats_.records_kept += static_cast<int64_t>(kept.size());
          bool set_horizon = tombstone_kept && !has_horizon;
          if (static_cast<int32_t>(kept.size()) == total && !set_horizon) {
            s.out_buf.insert(s.out_buf.end(), b.value().begin(), b.value().end());
          } else if (kept.empty()) {
            if (is_last_of_producer(l.producers(), h)) {
              int16_t attrs = static_cast<int16_t>(h.attributes & ~protocol::batch_attr::compression_mask);
              write_batch(s.out_buf, b.value(), h, {}, attrs, h.base_timestamp, h.max_timestamp, 0);
            }
          } else {
            int64_t base_ts = tombstone_kept ? (has_horizon ? h.base_timestamp
                                                            : saturating_add(s.now_ms, s.cfg.delete_retention_ms))
                                             : kept.front().timestamp;
            int16_t attrs = tombstone_kept ? static_cast<int16_t>(h.attributes | kDeleteHorizonFlag)
                                           : static_cast<int16_t>(h.attributes & ~kDeleteHorizonFlag);
            int64_t max_ts = -1;
            for (auto& k : kept) max_ts = std::max(max_ts, k.timestamp);
            if (h.ts_type() == protocol::timestamp_type::log_append_time) max_ts = h.max_timestamp;
            if (auto r = rewrite(kept, attrs, base_ts, max_ts); !r) return r.err();
          }
        }
        if (s.out_buf.size() > before) {
          auto nh = batch_header::parse(s.out_buf.data() + before);
          uint64_t at = s.out_pos;
          if (nh.max_timestamp > s.max_ts) {
            s.max_ts = nh.max_timestamp;
            s.offset_of_max_ts = nh.last_offset();
          }
          if (s.bytes_since_index > s.cfg.index_interval_bytes && at <= std::numeric_limits<int32_t>::max()) {
            if (!s.index->full()) s.index->append(nh.last_offset(), at);
            if (!s.tindex->full()) s.tindex->maybe_append(s.max_ts, s.offset_of_max_ts);
            s.bytes_since_index = 0;
          }
          s.bytes_since_index += static_cast<int64_t>(nh.size_bytes());
          s.out_pos += nh.size_bytes();
          stats_.bytes_written += nh.size_bytes();
        }
        if (s.out_buf.size() >= kWriteBuffer) {
          if (auto r = s.out->append(s.out_buf); !r) return r.err();
          s.out_buf.clear();
        }
      }
      if (s.pos >= seg.size) {
        ++s.seg_i;
        s.pos = 0;
      }
    }
    // The group is written: make it durable, then swap it in.
    auto committed = commit_group(l);
    if (!committed) return committed.err();
    if (crashed_) return true;
    if (!committed.value()) {
      s.ph = state::phase::done;
      return true;  // the log changed under us; the next clean starts over
    }
    ++s.group_i;
    if (s.group_i < s.groups.size()) s.seg_i = s.groups[s.group_i].first;
    s.pos = 0;
  }
  if (auto r = write_cleaner_checkpoint(s.dir, s.end); !r) return r.err();
  s.ph = state::phase::done;
  logger()->info("{}: compacted up to offset {}: {} of {} records kept, {} tombstones removed, {} bytes read, {} written",
                 s.dir, s.end, stats_.records_kept, stats_.records_read, stats_.tombstones_removed, stats_.bytes_read,
                 stats_.bytes_written);
  return true;
}

result<bool> clean_job::commit_group(log& l) {
  state& s = *s_;
  auto [first, last] = s.groups[s.group_i];
  const int64_t base = s.segs[first].base;
  const size_t n = last - first;
  s.group_open = false;
  if (!s.out_buf.empty()) {
    if (auto r = s.out->append(s.out_buf); !r) return r.err();
    s.out_buf.clear();
  }
  if (s.max_ts >= 0 && !s.tindex->full()) s.tindex->maybe_append(s.max_ts, s.offset_of_max_ts);
  for (auto [suffix, which] : {std::pair{".index.cleaned", 0}, std::pair{".timeindex.cleaned", 1}}) {
    bytes data;
    if (which == 0) s.index->encode(0, data);
    else s.tindex->encode(0, data);
    auto f = runtime::file::open(segment_path(s.dir, base, suffix), runtime::file::mode::read_write_create);
    if (!f) return f.err();
    if (auto r = f.value()->truncate(0); !r) return r.err();
    if (!data.empty()) {
      if (auto r = f.value()->pwrite(0, data); !r) return r.err();
    }
    if (auto r = f.value()->sync(); !r) return r.err();
  }
  {
    // Written even when empty, so every suffix goes through the commit alike.
    // Kafka's .txnindex entry: version int16 0, producer id, first offset,
    // last offset (the marker), last stable offset.
    bytes idx;
    for (auto& a : s.group_aborted) {
      append_be<int16_t>(idx, 0);
      append_be<int64_t>(idx, a.producer_id);
      append_be<int64_t>(idx, a.first_offset);
      append_be<int64_t>(idx, a.last_offset);
      append_be<int64_t>(idx, a.last_stable_offset);
    }
    auto f = runtime::file::open(segment_path(s.dir, base, ".txnindex.cleaned"), runtime::file::mode::read_write_create);
    if (!f) return f.err();
    if (auto r = f.value()->truncate(0); !r) return r.err();
    if (!idx.empty()) {
      if (auto r = f.value()->pwrite(0, idx); !r) return r.err();
    }
    if (auto r = f.value()->sync(); !r) return r.err();
  }
  if (auto r = s.out->sync(); !r) return r.err();
  s.out.reset();

  // The old segments must still be exactly what was read.
  auto& segs = access::segments(l);
  size_t at = index_of(segs, base);
  bool same = at + n < segs.size();
  for (size_t k = 0; same && k < n; ++k) {
    auto& cur = *segs[at + k];
    auto& old = s.segs[first + k];
    same = cur.base_offset() == old.base && cur.log_file() == old.file && cur.size() == old.size;
  }
  if (!same) {
    logger()->info("{}: the log changed during compaction; abandoning it", s.dir);
    for (auto suffix : kSuffixes) {
      if (auto r = remove_if_exists(segment_path(s.dir, base, std::string(suffix) + ".cleaned")); !r) return r.err();
    }
    ++stats_.groups_abandoned;
    return false;
  }

  auto crash = [&] {
    if (crash_ && crash_(s.crash_step++)) crashed_ = true;
    return crashed_;
  };
  swap_record rec;
  rec.new_base = base;
  for (size_t k = first; k < last; ++k) rec.old_bases.push_back(s.segs[k].base);
  if (crash()) return true;
  if (auto r = runtime::fs::write_file_atomic(s.dir + "/" + kSwapFile, encode_swap(rec)); !r) return r.err();
  for (auto suffix : kSuffixes) {
    if (crash()) return true;
    std::string p = segment_path(s.dir, base, suffix);
    if (auto r = runtime::fs::rename(p + ".cleaned", p + ".swap"); !r) return r.err();
  }
  for (auto old : rec.old_bases) {
    if (old == base) continue;
    for (auto suffix : kSuffixes) {
      if (crash()) return true;
      std::string p = segment_path(s.dir, old, suffix);
      if (runtime::fs::exists(p)) {
        if (auto r = runtime::fs::rename(p, p + ".deleted"); !r) return r.err();
      }
    }
  }
  for (auto suffix : kSuffixes) {
    if (crash()) return true;
    std::string p = segment_path(s.dir, base, suffix);
    if (auto r = runtime::fs::rename(p + ".swap", p); !r) return r.err();
  }
  if (crash()) return true;
  if (auto r = runtime::fs::sync_dir(s.dir); !r) return r.err();

  // In memory: the new segment replaces the old ones.
  auto opened = segment::open(s.dir, base, s.cfg);
  if (!opened) return opened.err();
  if (auto r = opened.value()->ensure_indexes(); !r) return r.err();
  opened.value()->close_index_files();
  auto first_it = segs.begin() + static_cast<std::ptrdiff_t>(at);
  segs.erase(first_it + 1, first_it + static_cast<std::ptrdiff_t>(n));
  segs[at] = std::move(opened.value());
  if (auto r = access::replace_aborted(l, base, s.segs[last - 1].upper, s.group_aborted); !r) return r.err();

  for (auto old : rec.old_bases) {
    if (old == base) continue;
    for (auto suffix : kSuffixes) {
      if (crash()) return true;
      if (auto r = remove_if_exists(segment_path(s.dir, old, suffix) + ".deleted"); !r) return r.err();
    }
  }
  if (crash()) return true;
  if (auto r = runtime::fs::remove(s.dir + "/" + kSwapFile); !r) return r.err();
  if (auto r = runtime::fs::sync_dir(s.dir); !r) return r.err();
  ++stats_.groups_swapped;
  return true;
}

}  // namespace gregor::storage
