#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/file.h"
#include "storage/index.h"
#include "storage/log.h"
#include "storage/log_manager.h"

using namespace gregor;
using namespace gregor::storage;
namespace fs = std::filesystem;
using protocol::batch_header;
using protocol::compression_type;

namespace {

constexpr int64_t kNow = 1'700'000'000'000;

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::gregor::log::set_level("error");
    root_ = fs::path("/tmp") / ("gregor-storage-test-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    dir_ = (root_ / "topic-0").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<storage::log> open(log_config c = {}, bool recover = false, int64_t now = kNow) {
    auto l = storage::log::open(dir_, c, recover, now);
    EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.err().message);
    return l.ok() ? std::move(l.value()) : nullptr;
  }

  fs::path root_;
  std::string dir_;
};

// A batch of n records; record i has timestamp ts + i (or ts_of(i)).
bytes make_batch(int n, int64_t ts, size_t value_size = 20, compression_type c = compression_type::none,
                 std::function<int64_t(int)> ts_of = nullptr) {
  protocol::batch_builder_options o;
  o.compression = c;
  protocol::batch_builder b(o);
  for (int i = 0; i < n; ++i) {
    std::string v(value_size, static_cast<char>('a' + i % 26));
    std::string k = "k" + std::to_string(i);
    b.add(ts_of ? ts_of(i) : ts + i, std::optional<std::string_view>(k), std::optional<std::string_view>(v));
  }
  return b.build();
}

bytes region_bytes(const iobuf& buf) {
  bytes out;
  for (auto& c : buf.chunks()) {
    if (auto* b = std::get_if<bytes>(&c)) {
      out.insert(out.end(), b->begin(), b->end());
    } else {
      auto& r = std::get<file_region>(c);
      size_t at = out.size();
      out.resize(at + r.size);
      EXPECT_TRUE(r.source->read_exact_at(r.position, out.data() + at, r.size).ok());
    }
  }
  return out;
}

std::vector<batch_header> headers_of(const bytes& data) {
  std::vector<batch_header> out;
  protocol::batch_iterator it(data);
  batch_header h;
  while (it.next(&h)) out.push_back(h);
  EXPECT_FALSE(it.partial_tail());
  EXPECT_TRUE(it.error().empty());
  return out;
}

// All batches from `from` to the log end, read as a consumer would.
std::vector<batch_header> read_all(storage::log& l, int64_t from = -1) {
  std::vector<batch_header> out;
  int64_t next = from < 0 ? l.log_start_offset() : from;
  while (next < l.log_end_offset()) {
    auto r = l.read(next, 1 << 20, true);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) break;
    EXPECT_FALSE(r->offset_out_of_range);
    bytes data = region_bytes(r->records);
    EXPECT_FALSE(data.empty());
    if (data.empty()) break;
    EXPECT_TRUE(protocol::validate_batches(data, 1 << 30).ok());
    for (auto& h : headers_of(data)) {
      out.push_back(h);
      next = h.next_offset();
    }
  }
  return out;
}

std::string seg_name(int64_t base, const char* suffix) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020lld%s", static_cast<long long>(base), suffix);
  return buf;
}

std::vector<int64_t> segment_bases_on_disk(const std::string& dir) {
  std::vector<int64_t> out;
  for (auto& e : fs::directory_iterator(dir)) {
    auto n = e.path().filename().string();
    if (n.ends_with(".log")) out.push_back(std::stoll(n.substr(0, n.size() - 4)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bytes file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void append_garbage(const fs::path& p, const bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::app);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Checks the .index and .timeindex of every segment against the .log, in
// Kafka's format: each index entry names a batch start and that batch's last
// offset; time index entries increase.
void check_index_files(const std::string& dir) {
  for (int64_t base : segment_bases_on_disk(dir)) {
    bytes log = file_bytes(fs::path(dir) / seg_name(base, ".log"));
    std::map<uint32_t, batch_header> by_pos;
    protocol::batch_iterator it(log);
    batch_header h;
    size_t pos = 0;
    while (it.next(&h)) {
      by_pos[static_cast<uint32_t>(pos)] = h;
      pos = it.position();
    }
    bytes idx = file_bytes(fs::path(dir) / seg_name(base, ".index"));
    ASSERT_EQ(idx.size() % 8, 0u);
    int64_t prev = -1;
    for (size_t i = 0; i < idx.size(); i += 8) {
      int32_t rel = load_be<int32_t>(idx.data() + i);
      uint32_t p = static_cast<uint32_t>(load_be<int32_t>(idx.data() + i + 4));
      ASSERT_TRUE(by_pos.count(p)) << "index entry at a non-batch position " << p;
      EXPECT_EQ(by_pos[p].last_offset(), base + rel);
      EXPECT_GT(rel, prev);
      prev = rel;
    }
    bytes tidx = file_bytes(fs::path(dir) / seg_name(base, ".timeindex"));
    ASSERT_EQ(tidx.size() % 12, 0u);
    int64_t prev_ts = -1;
    for (size_t i = 0; i < tidx.size(); i += 12) {
      int64_t ts = load_be<int64_t>(tidx.data() + i);
      EXPECT_GT(ts, prev_ts);
      prev_ts = ts;
    }
  }
}

}  // namespace

TEST_F(StorageTest, AppendAssignsOffsetsAndReadsBack) {
  auto l = open();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->log_start_offset(), 0);
  EXPECT_EQ(l->log_end_offset(), 0);
  for (int i = 0; i < 3; ++i) {
    bytes b = make_batch(5, kNow + i * 10);
    auto r = l->append(b, kNow, 7);
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->base_offset, i * 5);
    EXPECT_EQ(r->last_offset, i * 5 + 4);
    EXPECT_EQ(r->log_append_time_ms, -1);
    EXPECT_EQ(r->log_start_offset, 0);
    EXPECT_EQ(batch_header::parse(b.data()).base_offset, i * 5);  // rewritten in place
  }
  EXPECT_EQ(l->log_end_offset(), 15);

  auto r = l->read(0, 1 << 20, false);
  ASSERT_TRUE(r.ok());
  bytes data = region_bytes(r->records);
  auto hs = headers_of(data);
  ASSERT_EQ(hs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(hs[i].base_offset, i * 5);
    EXPECT_EQ(hs[i].partition_leader_epoch, 7);
  }
  EXPECT_TRUE(protocol::validate_batches(data, 1 << 20).ok());
  // Zero copy: one file region.
  ASSERT_EQ(r->records.chunks().size(), 1u);
  EXPECT_TRUE(std::holds_alternative<file_region>(r->records.chunks()[0]));

  // From the middle of the second batch: that batch is returned whole.
  r = l->read(7, 1 << 20, false);
  ASSERT_TRUE(r.ok());
  hs = headers_of(region_bytes(r->records));
  ASSERT_EQ(hs.size(), 2u);
  EXPECT_EQ(hs[0].base_offset, 5);
  auto recs = protocol::read_records(region_bytes(r->records));
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->front().offset, 5);
  EXPECT_EQ(recs->back().offset, 9);
}

TEST_F(StorageTest, SeveralBatchesInOneAppend) {
  auto l = open();
  bytes all;
  for (int i = 0; i < 4; ++i) {
    bytes b = make_batch(i + 1, kNow);
    all.insert(all.end(), b.begin(), b.end());
  }
  auto r = l->append(all, kNow);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->base_offset, 0);
  EXPECT_EQ(r->last_offset, 9);
  auto hs = read_all(*l);
  ASSERT_EQ(hs.size(), 4u);
  EXPECT_EQ(hs[0].base_offset, 0);
  EXPECT_EQ(hs[1].base_offset, 1);
  EXPECT_EQ(hs[2].base_offset, 3);
  EXPECT_EQ(hs[3].base_offset, 6);
}

TEST_F(StorageTest, LogAppendTime) {
  log_config c;
  c.message_timestamp_type = "LogAppendTime";
  auto l = open(c);
  for (auto comp : {compression_type::none, compression_type::lz4}) {
    bytes b = make_batch(3, 1000, 20, comp);
    auto r = l->append(b, kNow + 5);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->log_append_time_ms, kNow + 5);
  }
  auto rr = l->read(0, 1 << 20, true);
  bytes data = region_bytes(rr->records);
  ASSERT_TRUE(protocol::validate_batches(data, 1 << 20).ok());  // CRC recomputed
  protocol::batch_iterator it(data);
  while (auto b = it.next()) {
    auto h = batch_header::parse(b->data());
    EXPECT_EQ(h.ts_type(), protocol::timestamp_type::log_append_time);
    EXPECT_EQ(h.max_timestamp, kNow + 5);
    auto recs = protocol::read_records(*b);
    ASSERT_TRUE(recs.ok());
    for (size_t i = 0; i < recs->size(); ++i) EXPECT_EQ(recs.value()[i].timestamp, kNow + 5);
  }
}

TEST_F(StorageTest, ReadBoundsAndKip74) {
  auto l = open();
  std::vector<size_t> sizes;
  for (int i = 0; i < 5; ++i) {
    bytes b = make_batch(2, kNow, 1000);
    sizes.push_back(b.size());
    ASSERT_TRUE(l->append(b, kNow).ok());
  }
  // Out of range on both sides; the log end itself is a valid empty read.
  auto r = l->read(11, 1000, true);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->offset_out_of_range);
  EXPECT_EQ(r->log_end_offset, 10);
  r = l->read(-1, 1000, true);
  EXPECT_TRUE(r->offset_out_of_range);
  r = l->read(10, 1000, true);
  EXPECT_FALSE(r->offset_out_of_range);
  EXPECT_TRUE(r->records.empty());

  // First batch larger than max_bytes: whole with min_one_batch, else nothing.
  r = l->read(0, 100, true);
  EXPECT_EQ(r->records.size(), sizes[0]);
  r = l->read(0, 100, false);
  EXPECT_TRUE(r->records.empty());
  EXPECT_FALSE(r->offset_out_of_range);
  // Only whole batches within max_bytes.
  r = l->read(0, static_cast<int32_t>(sizes[0] + sizes[1] + sizes[2] / 2), true);
  EXPECT_EQ(r->records.size(), sizes[0] + sizes[1]);
  r = l->read(2, static_cast<int32_t>(sizes[1] + sizes[2]), true);
  EXPECT_EQ(r->records.size(), sizes[1] + sizes[2]);
  // max_offset (high watermark) is exclusive and cuts at batch boundaries.
  r = l->read(0, 1 << 20, true, 6);
  auto hs = headers_of(region_bytes(r->records));
  ASSERT_EQ(hs.size(), 3u);
  EXPECT_EQ(hs.back().last_offset(), 5);
  r = l->read(6, 1 << 20, true, 6);
  EXPECT_TRUE(r->records.empty());
  EXPECT_FALSE(r->offset_out_of_range);
  r = l->read(0, 1 << 20, true, 5);  // offset 5 is the second record of batch [4, 5]
  EXPECT_EQ(headers_of(region_bytes(r->records)).size(), 2u);
}

TEST_F(StorageTest, RollsBySizeAndReadsEveryOffsetAcrossSegments) {
  log_config c;
  c.segment_bytes = 8 * 1024;
  c.index_interval_bytes = 700;
  auto l = open(c);
  std::mt19937 rng(42);
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [base, last] of each batch
  for (int i = 0; i < 300; ++i) {
    int n = 1 + static_cast<int>(rng() % 7);
    bytes b = make_batch(n, kNow + i, 10 + rng() % 400, i % 5 == 0 ? compression_type::zstd : compression_type::none);
    auto r = l->append(b, kNow);
    ASSERT_TRUE(r.ok());
    ranges.push_back({r->base_offset, r->last_offset});
  }
  int64_t leo = l->log_end_offset();
  EXPECT_EQ(leo, ranges.back().second + 1);
  EXPECT_GT(l->segment_count(), 5u);
  auto bases = segment_bases_on_disk(dir_);
  ASSERT_EQ(bases.size(), l->segment_count());
  for (auto& s : l->segments()) EXPECT_LE(s.size_bytes, 8u * 1024);
  // Segment bases are batch base offsets.
  for (int64_t b : bases) {
    EXPECT_TRUE(std::any_of(ranges.begin(), ranges.end(), [&](auto& r) { return r.first == b; })) << b;
  }
  // Every offset: the batch containing it comes first.
  for (int64_t o = 0; o < leo; ++o) {
    auto r = l->read(o, 1, true);
    ASSERT_TRUE(r.ok());
    auto hs = headers_of(region_bytes(r->records));
    ASSERT_EQ(hs.size(), 1u) << o;
    EXPECT_LE(hs[0].base_offset, o);
    EXPECT_GE(hs[0].last_offset(), o);
  }
  // Large reads stay within one segment and return whole batches.
  auto all = read_all(*l);
  ASSERT_EQ(all.size(), ranges.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].base_offset, ranges[i].first);
    EXPECT_EQ(all[i].last_offset(), ranges[i].second);
  }
  ASSERT_TRUE(l->close().ok());
  check_index_files(dir_);

  // The same after a clean reopen (indexes loaded from disk)...
  l = open(c, false);
  EXPECT_EQ(l->log_end_offset(), leo);
  for (int64_t o = 0; o < leo; o += 3) {
    auto hs = headers_of(region_bytes(l->read(o, 1, true)->records));
    ASSERT_EQ(hs.size(), 1u);
    EXPECT_LE(hs[0].base_offset, o);
    EXPECT_GE(hs[0].last_offset(), o);
  }
  // ...and after recovery rebuilt them.
  l.reset();
  l = open(c, true);
  EXPECT_EQ(l->log_end_offset(), leo);
  EXPECT_EQ(read_all(*l).size(), ranges.size());
}

TEST_F(StorageTest, IndexEntriesAreSparseAndExact) {
  log_config c;
  c.index_interval_bytes = 4096;
  auto l = open(c);
  for (int i = 0; i < 400; ++i) {
    bytes b = make_batch(3, kNow + i, 100);
    ASSERT_TRUE(l->append(b, kNow).ok());
  }
  ASSERT_TRUE(l->close().ok());
  auto idx = file_bytes(fs::path(dir_) / seg_name(0, ".index"));
  uint64_t log_size = fs::file_size(fs::path(dir_) / seg_name(0, ".log"));
  // One entry after each 4 KiB of log (Kafka's rule: once more than
  // index.interval.bytes were appended since the last entry).
  size_t batch_size = make_batch(3, kNow, 100).size();
  EXPECT_LE(idx.size() / 8, log_size / 4096);
  EXPECT_GE(idx.size() / 8, log_size / (4096 + batch_size) - 1);
  check_index_files(dir_);
  // The decoded index answers lookups like Kafka's: largest entry <= target.
  auto decoded = offset_index::decode(idx, 0, 1 << 20, log_size);
  ASSERT_TRUE(decoded.ok());
  for (int64_t o = 0; o < 1200; ++o) {
    auto e = decoded->lookup(o);
    EXPECT_LE(e.offset, o);
  }
}

TEST_F(StorageTest, RollsBySegmentMs) {
  log_config c;
  c.segment_ms = 1000;
  auto l = open(c);
  bytes b = make_batch(1, kNow);
  ASSERT_TRUE(l->append(b, kNow).ok());
  b = make_batch(1, kNow);
  ASSERT_TRUE(l->append(b, kNow + 1000).ok());
  EXPECT_EQ(l->segment_count(), 1u);
  b = make_batch(1, kNow);
  ASSERT_TRUE(l->append(b, kNow + 1001).ok());
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(l->segments().back().base_offset, 2);
  b = make_batch(1, kNow);
  ASSERT_TRUE(l->append(b, kNow + 1500).ok());
  EXPECT_EQ(l->segment_count(), 2u);
  // A rolled segment is fsynced: the recovery point moved to the new base.
  EXPECT_EQ(l->recovery_point(), 2);
}

TEST_F(StorageTest, OffsetForTimestampMatchesBruteForce) {
  log_config c;
  c.segment_bytes = 4096;
  c.index_interval_bytes = 300;
  auto l = open(c);
  std::mt19937 rng(7);
  std::vector<std::pair<int64_t, int64_t>> recs;  // (offset, timestamp)
  for (int i = 0; i < 200; ++i) {
    int n = 1 + static_cast<int>(rng() % 5);
    std::vector<int64_t> ts(n);
    for (auto& t : ts) t = 1000 + i * 10 + static_cast<int64_t>(rng() % 40) - 20;  // not monotonic
    bytes b = make_batch(n, 0, 30, i % 3 == 0 ? compression_type::gzip : compression_type::none,
                         [&](int k) { return ts[static_cast<size_t>(k)]; });
    auto r = l->append(b, kNow);
    ASSERT_TRUE(r.ok());
    for (int k = 0; k < n; ++k) recs.push_back({r->base_offset + k, ts[static_cast<size_t>(k)]});
  }
  EXPECT_GT(l->segment_count(), 3u);
  auto check = [&](storage::log& log, int64_t start) {
    for (int64_t ts = 900; ts <= 3100; ts += 7) {
      std::optional<std::pair<int64_t, int64_t>> want;
      for (auto& [o, t] : recs) {
        if (o >= start && t >= ts) {
          want = std::make_pair(o, t);
          break;
        }
      }
      auto got = log.offset_for_timestamp(ts);
      ASSERT_TRUE(got.ok()) << got.err().message;
      ASSERT_EQ(got->has_value(), want.has_value()) << ts;
      if (want) {
        EXPECT_EQ((*got)->offset, want->first) << ts;
        EXPECT_EQ((*got)->timestamp, want->second) << ts;
      }
    }
  };
  check(*l, 0);
  // Max timestamp: the first record holding the largest timestamp.
  auto best = std::max_element(recs.begin(), recs.end(), [](auto& a, auto& b) { return a.second < b.second; });
  auto m = l->offset_for_max_timestamp();
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->timestamp, best->second);
  EXPECT_EQ((*m)->offset, best->first);
  EXPECT_EQ(l->max_timestamp(), best->second);
  // After a clean reopen (time indexes from disk), and with a raised log start.
  ASSERT_TRUE(l->close().ok());
  check_index_files(dir_);
  l = open(c, false);
  check(*l, 0);
  ASSERT_TRUE(l->advance_log_start_offset(300).ok());
  check(*l, 300);
}

TEST_F(StorageTest, RecoveryKeepsEveryCompleteBatchAtEveryCutPoint) {
  // A log of a few batches; the process dies and the last batch is torn at
  // every possible byte.
  bytes last = make_batch(2, kNow, 40);
  size_t last_size = last.size();
  uint64_t full_size = 0;
  for (size_t cut = 0; cut <= last_size; ++cut) {
    fs::remove_all(dir_);
    {
      auto l = open();
      for (int i = 0; i < 4; ++i) {
        bytes b = make_batch(3, kNow + i, 50);
        ASSERT_TRUE(l->append(b, kNow).ok());
      }
      bytes b = last;
      ASSERT_TRUE(l->append(b, kNow).ok());
      // Destroyed without close(): a crash with the page cache intact.
    }
    auto path = fs::path(dir_) / seg_name(0, ".log");
    if (cut == 0) full_size = fs::file_size(path);
    fs::resize_file(path, full_size - last_size + cut);
    auto l = open({}, true);
    ASSERT_TRUE(l);
    int64_t want = cut == last_size ? 14 : 12;
    ASSERT_EQ(l->log_end_offset(), want) << "cut " << cut;
    EXPECT_EQ(fs::file_size(path), cut == last_size ? full_size : full_size - last_size);
    EXPECT_EQ(read_all(*l).size(), cut == last_size ? 5u : 4u);
    bytes more = make_batch(1, kNow);
    auto r = l->append(more, kNow);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->base_offset, want);
  }
}

TEST_F(StorageTest, RecoveryTruncatesGarbageAndZeros) {
  for (bool zeros : {false, true}) {
    fs::remove_all(dir_);
    uint64_t size;
    {
      auto l = open();
      for (int i = 0; i < 10; ++i) {
        bytes b = make_batch(2, kNow, 30);
        ASSERT_TRUE(l->append(b, kNow).ok());
      }
      size = l->size_bytes();
    }
    auto path = fs::path(dir_) / seg_name(0, ".log");
    bytes junk(777);
    std::mt19937 rng(1);
    for (auto& x : junk) x = zeros ? 0 : static_cast<uint8_t>(rng());
    append_garbage(path, junk);
    auto l = open({}, true);
    EXPECT_EQ(l->log_end_offset(), 20);
    EXPECT_EQ(fs::file_size(path), size);
    EXPECT_EQ(read_all(*l).size(), 10u);
  }
}

TEST_F(StorageTest, RecoveryTruncatesAtACorruptBatchAndDropsLaterSegments) {
  log_config c;
  c.segment_bytes = 2000;
  std::vector<int64_t> bases;
  {
    auto l = open(c);
    for (int i = 0; i < 40; ++i) {
      bytes b = make_batch(2, kNow, 100);
      ASSERT_TRUE(l->append(b, kNow).ok());
    }
    ASSERT_TRUE(l->close().ok());
  }
  bases = segment_bases_on_disk(dir_);
  ASSERT_GE(bases.size(), 4u);
  // Flip a payload byte of the second batch of the second segment.
  auto path = fs::path(dir_) / seg_name(bases[1], ".log");
  bytes log = file_bytes(path);
  size_t second = protocol::batch_header::parse(log.data()).size_bytes();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(second + 70));
    char x = static_cast<char>(log[second + 70] ^ 0x55);
    f.write(&x, 1);
  }
  // A clean open trusts the files: nothing is scanned.
  {
    auto l = open(c, false);
    EXPECT_EQ(l->log_end_offset(), 80);
    l.reset();  // not closed: the next open must recover
  }
  // Recovery from the start (no checkpoint: recovery point 0) stops there.
  fs::remove(fs::path(dir_) / "gregor.checkpoint");
  auto l = open(c, true);
  EXPECT_EQ(l->log_end_offset(), bases[1] + 2);
  EXPECT_EQ(fs::file_size(path), second);
  auto now_bases = segment_bases_on_disk(dir_);
  EXPECT_EQ(now_bases, std::vector<int64_t>(bases.begin(), bases.begin() + 2));
  EXPECT_EQ(read_all(*l).size(), static_cast<size_t>((bases[1] + 2) / 2));
  bytes b = make_batch(2, kNow);
  EXPECT_EQ(l->append(b, kNow)->base_offset, bases[1] + 2);
}

TEST_F(StorageTest, CrashWithoutFlushRecoversEverythingWritten) {
  log_config c;
  c.segment_bytes = 3000;
  int64_t leo;
  {
    auto l = open(c);
    for (int i = 0; i < 50; ++i) {
      bytes b = make_batch(3, kNow + i, 60);
      ASSERT_TRUE(l->append(b, kNow).ok());
    }
    leo = l->log_end_offset();
  }
  auto l = open(c, true);
  EXPECT_EQ(l->log_end_offset(), leo);
  EXPECT_EQ(read_all(*l).size(), 50u);
  ASSERT_TRUE(l->close().ok());
  check_index_files(dir_);
}

TEST_F(StorageTest, MissingOrCorruptIndexesAreRebuilt) {
  log_config c;
  c.segment_bytes = 5000;
  c.index_interval_bytes = 500;
  {
    auto l = open(c);
    for (int i = 0; i < 60; ++i) {
      bytes b = make_batch(2, kNow + i, 80);
      ASSERT_TRUE(l->append(b, kNow).ok());
    }
    ASSERT_TRUE(l->close().ok());
  }
  auto bases = segment_bases_on_disk(dir_);
  ASSERT_GE(bases.size(), 3u);
  auto idx0 = file_bytes(fs::path(dir_) / seg_name(bases[0], ".index"));
  auto tidx1 = file_bytes(fs::path(dir_) / seg_name(bases[1], ".timeindex"));
  auto idx_last = file_bytes(fs::path(dir_) / seg_name(bases.back(), ".index"));
  ASSERT_FALSE(idx0.empty());
  fs::remove(fs::path(dir_) / seg_name(bases[0], ".index"));
  fs::resize_file(fs::path(dir_) / seg_name(bases[1], ".timeindex"), tidx1.size() - 5);
  fs::remove(fs::path(dir_) / seg_name(bases.back(), ".index"));
  // Garbage that keeps the size right: found when the index is loaded.
  {
    std::fstream f(fs::path(dir_) / seg_name(bases[2], ".index"), std::ios::in | std::ios::out | std::ios::binary);
    f.write("\xff\xff\xff\xff", 4);
  }
  auto l = open(c, false);
  EXPECT_EQ(l->log_end_offset(), 120);
  EXPECT_EQ(read_all(*l).size(), 60u);
  EXPECT_EQ(file_bytes(fs::path(dir_) / seg_name(bases[0], ".index")), idx0);
  EXPECT_EQ(file_bytes(fs::path(dir_) / seg_name(bases[1], ".timeindex")), tidx1);
  ASSERT_TRUE(l->close().ok());
  EXPECT_EQ(file_bytes(fs::path(dir_) / seg_name(bases.back(), ".index")), idx_last);
  check_index_files(dir_);
}

TEST_F(StorageTest, ReopenKeepsOffsetsAndContinues) {
  {
    auto l = open();
    for (int i = 0; i < 5; ++i) {
      bytes b = make_batch(4, kNow);
      ASSERT_TRUE(l->append(b, kNow).ok());
    }
    ASSERT_TRUE(l->close().ok());
  }
  for (bool recover : {false, true}) {
    auto l = open({}, recover);
    EXPECT_EQ(l->log_end_offset(), recover ? 24 : 20);
    EXPECT_EQ(l->recovery_point(), l->log_end_offset());
    bytes b = make_batch(4, kNow);
    auto r = l->append(b, kNow);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->base_offset, recover ? 24 : 20);
    ASSERT_TRUE(l->close().ok());
  }
  auto l = open();
  EXPECT_EQ(read_all(*l).size(), 7u);
  // Leftovers of interrupted operations are cleaned up.
  std::ofstream(fs::path(dir_) / "00000000000000000000.log.deleted") << "x";
  std::ofstream(fs::path(dir_) / "00000000000000000099.index") << "";
  l->close().ok();
  l = open();
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "00000000000000000000.log.deleted"));
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "00000000000000000099.index"));
}

TEST_F(StorageTest, FlushPolicyMovesTheRecoveryPoint) {
  log_config c;
  c.flush_interval_messages = 5;
  auto l = open(c);
  bytes b = make_batch(3, kNow);
  ASSERT_TRUE(l->append(b, kNow).ok());
  EXPECT_EQ(l->recovery_point(), 0);
  b = make_batch(3, kNow);
  ASSERT_TRUE(l->append(b, kNow).ok());
  EXPECT_EQ(l->recovery_point(), 6);

  log_config t;
  t.flush_interval_ms = 100;
  dir_ = (root_ / "t-1").string();
  l = open(t);
  b = make_batch(1, kNow);
  ASSERT_TRUE(l->append(b, kNow + 50).ok());
  EXPECT_EQ(l->recovery_point(), 0);
  ASSERT_TRUE(l->flush_if_due(kNow + 99).ok());
  EXPECT_EQ(l->recovery_point(), 0);
  ASSERT_TRUE(l->flush_if_due(kNow + 100).ok());
  EXPECT_EQ(l->recovery_point(), 1);
}

// Kafka's truncateTo: with nothing to cut, the epoch cache still ends at the
// log end. A replica that led an epoch without appending has an entry there
// its new leader may not have had; kept, its follower asks about that epoch
// again after every truncation and never catches up.
TEST_F(StorageTest, TruncateAtTheLogEndDropsAnEpochStartingThere) {
  auto l = open(log_config{});
  bytes b = make_batch(3, kNow);
  ASSERT_TRUE(l->append(b, kNow, 0).ok());
  ASSERT_TRUE(l->begin_leader_epoch(1).ok());  // led epoch 1, appended nothing
  ASSERT_EQ(l->leader_epochs().entries().size(), 2u);
  ASSERT_TRUE(l->truncate_to(l->log_end_offset()).ok());
  EXPECT_EQ(l->log_end_offset(), 3);
  ASSERT_EQ(l->leader_epochs().entries().size(), 1u);
  EXPECT_EQ(l->leader_epochs().entries()[0].epoch, 0);
}

TEST_F(StorageTest, TruncateTo) {
  log_config c;
  c.segment_bytes = 1500;
  c.index_interval_bytes = 200;
  auto l = open(c);
  for (int i = 0; i < 40; ++i) {
    bytes b = make_batch(3, kNow + i, 50);
    ASSERT_TRUE(l->append(b, kNow).ok());
  }
  size_t segs = l->segment_count();
  ASSERT_GE(segs, 4u);
  // Mid-batch: the whole batch goes.
  ASSERT_TRUE(l->truncate_to(61).ok());
  EXPECT_EQ(l->log_end_offset(), 60);
  EXPECT_LT(l->segment_count(), segs);
  EXPECT_EQ(read_all(*l).size(), 20u);
  EXPECT_EQ(l->max_timestamp(), kNow + 19 + 2);
  bytes b = make_batch(3, kNow);
  EXPECT_EQ(l->append(b, kNow)->base_offset, 60);
  // Exactly at a segment base: that segment is emptied.
  auto infos = l->segments();
  int64_t base = infos[1].base_offset;
  ASSERT_TRUE(l->truncate_to(base).ok());
  EXPECT_EQ(l->log_end_offset(), base);
  EXPECT_EQ(l->segment_count(), 2u);
  for (int64_t o = 0; o < base; ++o) {
    auto hs = headers_of(region_bytes(l->read(o, 1, true)->records));
    ASSERT_EQ(hs.size(), 1u);
    EXPECT_LE(hs[0].base_offset, o);
    EXPECT_GE(hs[0].last_offset(), o);
  }
  ASSERT_TRUE(l->close().ok());
  check_index_files(dir_);
  l = open(c, false);
  EXPECT_EQ(l->log_end_offset(), base);
  l.reset();
  l = open(c, true);
  EXPECT_EQ(l->log_end_offset(), base);

  ASSERT_TRUE(l->truncate_fully_and_start_at(1000).ok());
  EXPECT_EQ(l->log_start_offset(), 1000);
  EXPECT_EQ(l->log_end_offset(), 1000);
  EXPECT_EQ(segment_bases_on_disk(dir_), std::vector<int64_t>{1000});
  b = make_batch(2, kNow);
  EXPECT_EQ(l->append(b, kNow)->base_offset, 1000);
  EXPECT_TRUE(l->read(999, 100, true)->offset_out_of_range);
  ASSERT_TRUE(l->close().ok());
  l = open(c, false);
  EXPECT_EQ(l->log_start_offset(), 1000);
  EXPECT_EQ(l->log_end_offset(), 1002);
}

// Segments start writeback every few MB (segment::write); appends across that
// point, and a truncation below a point already written back, keep every
// record and the offsets exact.
TEST_F(StorageTest, LargeAppendsAcrossWritebackPointsAndTruncation) {
  auto l = open();
  int64_t records = 0;
  for (int i = 0; i < 100; ++i) {  // ~10 MB of 100-record batches
    bytes b = make_batch(100, kNow, 1000);
    auto r = l->append(b, kNow);
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->base_offset, records);
    records += 100;
  }
  ASSERT_TRUE(l->truncate_to(2000).ok());
  for (int i = 0; i < 60; ++i) {
    bytes b = make_batch(100, kNow, 1000);
    ASSERT_EQ(l->append(b, kNow)->base_offset, 2000 + i * 100);
  }
  auto hs = read_all(*l);
  ASSERT_EQ(hs.size(), 80u);
  for (size_t i = 0; i < hs.size(); ++i) EXPECT_EQ(hs[i].base_offset, static_cast<int64_t>(i) * 100);
  auto data = region_bytes(l->read(0, 64 << 20, false)->records);
  EXPECT_TRUE(protocol::validate_batches(data, 64 << 20).ok());
  ASSERT_TRUE(l->close().ok());
  l = open({}, true);
  EXPECT_EQ(l->log_end_offset(), 8000);
}

TEST_F(StorageTest, LogStartOffsetAndRetention) {
  log_config c;
  c.segment_bytes = 1000;
  auto l = open(c);
  for (int i = 0; i < 30; ++i) {
    bytes b = make_batch(2, kNow + i * 1000, 100);
    ASSERT_TRUE(l->append(b, kNow).ok());
  }
  auto infos = l->segments();
  ASSERT_GE(infos.size(), 5u);
  // DeleteRecords-style: raise the log start into the third segment.
  int64_t start = infos[2].base_offset + 1;
  ASSERT_TRUE(l->advance_log_start_offset(start).ok());
  EXPECT_EQ(l->log_start_offset(), start);
  EXPECT_EQ(l->segments().front().base_offset, infos[2].base_offset);
  EXPECT_TRUE(l->read(start - 1, 100, true)->offset_out_of_range);
  auto r = l->read(start, 100, true);
  EXPECT_FALSE(r->offset_out_of_range);
  EXPECT_FALSE(r->records.empty());  // the batch holding `start` is still served
  EXPECT_FALSE(l->advance_log_start_offset(l->log_end_offset() + 1).ok());
  ASSERT_TRUE(l->close().ok());
  l = open(c, false);
  EXPECT_EQ(l->log_start_offset(), start);

  // Retention by size keeps at least retention.bytes.
  log_config small = c;
  small.retention_bytes = 2500;
  small.retention_ms = -1;
  l->set_config(small);
  uint64_t before = l->size_bytes();
  auto n = l->apply_retention(kNow, l->log_end_offset());
  ASSERT_TRUE(n.ok());
  EXPECT_GT(n.value(), 0);
  EXPECT_GE(l->size_bytes(), 2500u);
  EXPECT_LT(l->size_bytes(), before);
  EXPECT_EQ(l->log_start_offset(), l->segments().front().base_offset);
  // Never beyond the high watermark.
  log_config none = c;
  none.retention_bytes = 0;
  none.retention_ms = -1;
  l->set_config(none);
  int64_t hw = l->segments().front().base_offset;  // nothing is wholly below it
  EXPECT_EQ(l->apply_retention(kNow, hw).value(), 0);
  // Retention by time; the active segment rolls when everything expired.
  log_config by_time = c;
  by_time.retention_ms = 1000;
  l->set_config(by_time);
  int64_t leo = l->log_end_offset();
  n = l->apply_retention(kNow + 10'000'000, leo);
  ASSERT_TRUE(n.ok());
  EXPECT_GT(n.value(), 0);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_EQ(l->log_start_offset(), leo);
  EXPECT_EQ(l->log_end_offset(), leo);
  bytes b = make_batch(1, kNow);
  EXPECT_EQ(l->append(b, kNow)->base_offset, leo);
}

TEST_F(StorageTest, FollowerAppendKeepsOffsets) {
  auto l = open();
  protocol::batch_builder_options o;
  o.base_offset = 10;
  o.partition_leader_epoch = 3;
  protocol::batch_builder bb(o);
  bb.add(kNow, std::optional<std::string_view>("k"), std::optional<std::string_view>("v"));
  bb.add(kNow, std::optional<std::string_view>("k"), std::optional<std::string_view>("v"));
  bytes b = bb.build();
  auto r = l->append_as_follower(b, kNow);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->base_offset, 10);
  EXPECT_EQ(r->last_offset, 11);
  EXPECT_EQ(l->log_end_offset(), 12);
  auto hs = read_all(*l, 10);
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].partition_leader_epoch, 3);
  EXPECT_FALSE(l->append_as_follower(b, kNow).ok());  // below the log end
}

TEST_F(StorageTest, LeaderEpochsFollowAppendsTruncationAndTheLogStartAndSurviveReopen) {
  auto l = open();
  auto append = [&](int32_t epoch, int n) {
    bytes b = make_batch(n, kNow);
    ASSERT_TRUE(l->append(std::span<uint8_t>(b.data(), b.size()), kNow, epoch).ok());
  };
  append(1, 3);  // 0..2
  append(1, 2);  // 3..4
  append(4, 2);  // 5..6
  append(6, 3);  // 7..9
  using E = std::vector<epoch_entry>;
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 0}, {4, 5}, {6, 7}}));
  {
    bytes f = file_bytes(fs::path(dir_) / "leader-epoch-checkpoint");
    EXPECT_EQ(std::string(f.begin(), f.end()), "0\n3\n1 0\n4 5\n6 7\n");
  }
  // Every batch carries the epoch that wrote it.
  auto hs = read_all(*l, 0);
  ASSERT_EQ(hs.size(), 4u);
  EXPECT_EQ(hs[2].partition_leader_epoch, 4);

  ASSERT_TRUE(l->truncate_to(7).ok());  // epoch 6's records are gone: so is epoch 6
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 0}, {4, 5}}));
  ASSERT_TRUE(l->advance_log_start_offset(4).ok());
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 4}, {4, 5}}));

  // A follower's append brings the leader's epochs.
  protocol::batch_builder_options o;
  o.base_offset = 7;
  o.partition_leader_epoch = 9;
  protocol::batch_builder bb(o);
  bb.add(kNow, std::optional<std::string_view>("k"), std::optional<std::string_view>("v"));
  bytes fb = bb.build();
  ASSERT_TRUE(l->append_as_follower(fb, kNow).ok());
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 4}, {4, 5}, {9, 7}}));
  EXPECT_EQ(l->leader_epochs().end_offset_for(4, l->log_end_offset()), (epoch_end{4, 7}));

  // Reopened (cleanly or not), the cache is read back.
  ASSERT_TRUE(l->close().ok());
  l = open({}, true);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 4}, {4, 5}, {9, 7}}));

  // Without its file (a log from before epochs were kept), it is rebuilt from the batches.
  ASSERT_TRUE(l->close().ok());
  fs::remove(fs::path(dir_) / "leader-epoch-checkpoint");
  l = open();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 4}, {4, 5}, {9, 7}}));

  // A file that claims an epoch the log lost in a crash is cut back to the log.
  ASSERT_TRUE(l->close().ok());
  {
    std::ofstream f(fs::path(dir_) / "leader-epoch-checkpoint", std::ios::trunc);
    f << "0\n4\n1 4\n4 5\n9 7\n11 8\n";
  }
  l = open({}, true);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->leader_epochs().entries(), (E{{1, 4}, {4, 5}, {9, 7}}));

  ASSERT_TRUE(l->truncate_fully_and_start_at(100).ok());
  EXPECT_TRUE(l->leader_epochs().entries().empty());
}

TEST(LogManager, PartitionDirNames) {
  EXPECT_EQ(partition_dir("/data", "my-topic", 3), "/data/my-topic-3");
  auto p = parse_partition_dir_name("my-topic-3");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, "my-topic");
  EXPECT_EQ(p->second, 3);
  p = parse_partition_dir_name("__consumer_offsets-49");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, "__consumer_offsets");
  EXPECT_FALSE(parse_partition_dir_name("my-topic-3.0123456789abcdef0123456789abcdef-delete"));
  EXPECT_FALSE(parse_partition_dir_name("my-topic-3.abc-future"));
  EXPECT_FALSE(parse_partition_dir_name("recovery-point-offset-checkpoint"));
  EXPECT_FALSE(parse_partition_dir_name("-3"));
  EXPECT_FALSE(parse_partition_dir_name("topic-"));
  EXPECT_FALSE(parse_partition_dir_name("topic"));
  EXPECT_FALSE(parse_partition_dir_name("topic-99999999999"));
  EXPECT_FALSE(parse_partition_dir_name(".kafka_cleanshutdown"));
}

TEST(LogManager, MarkerListingAndDeletion) {
  std::string root = "/tmp/gregor-log-manager-test-" + std::to_string(::getpid());
  fs::remove_all(root);
  EXPECT_TRUE(list_partition_dirs(root).empty());
  fs::create_directories(root);
  EXPECT_FALSE(has_clean_shutdown_marker(root));
  EXPECT_FALSE(consume_clean_shutdown_marker(root).value());
  ASSERT_TRUE(write_clean_shutdown_marker(root).ok());
  EXPECT_TRUE(fs::exists(root + "/.kafka_cleanshutdown"));
  EXPECT_TRUE(consume_clean_shutdown_marker(root).value());
  EXPECT_FALSE(has_clean_shutdown_marker(root));

  for (auto* name : {"a-0", "a-1", "with-dash-7"}) {
    auto l = storage::log::open(partition_dir(root, std::string_view(name).substr(0, std::string_view(name).rfind('-')),
                                              std::stoi(std::string(std::string_view(name).substr(std::string_view(name).rfind('-') + 1)))),
                                {}, false, kNow);
    ASSERT_TRUE(l.ok());
    bytes b = make_batch(1, kNow);
    ASSERT_TRUE(l.value()->append(b, kNow).ok());
    ASSERT_TRUE(l.value()->close().ok());
  }
  std::ofstream(root + "/recovery-point-offset-checkpoint") << "0\n0\n";
  auto dirs = list_partition_dirs(root);
  std::sort(dirs.begin(), dirs.end(), [](auto& x, auto& y) { return x.path < y.path; });
  ASSERT_EQ(dirs.size(), 3u);
  EXPECT_EQ(dirs[0].topic, "a");
  EXPECT_EQ(dirs[1].partition, 1);
  EXPECT_EQ(dirs[2].topic, "with-dash");
  EXPECT_EQ(dirs[2].partition, 7);
  EXPECT_EQ(dirs[2].path, root + "/with-dash-7");

  ASSERT_TRUE(delete_log_dir(root + "/a-1").ok());
  EXPECT_FALSE(fs::exists(root + "/a-1"));
  EXPECT_EQ(list_partition_dirs(root).size(), 2u);
  fs::create_directories(root + "/a-0.00112233445566778899aabbccddeeff-delete/x");
  EXPECT_EQ(list_partition_dirs(root).size(), 2u);
  EXPECT_EQ(remove_deleted_log_dirs(root).value(), 1);
  EXPECT_EQ(std::distance(fs::directory_iterator(root), fs::directory_iterator()), 3);  // 2 dirs + checkpoint
  EXPECT_TRUE(delete_log_dir(root + "/does-not-exist-0").ok());
  fs::remove_all(root);
}

TEST(Index, OffsetIndexLookupAndTruncate) {
  offset_index idx(100, 10);
  EXPECT_EQ(idx.lookup(150).offset, 100);
  EXPECT_EQ(idx.lookup(150).position, 0u);
  idx.append(110, 1000);
  idx.append(120, 2000);
  idx.append(130, 3000);
  EXPECT_EQ(idx.lookup(109).position, 0u);
  EXPECT_EQ(idx.lookup(110).position, 1000u);
  EXPECT_EQ(idx.lookup(125).position, 2000u);
  EXPECT_EQ(idx.lookup(1000).position, 3000u);
  EXPECT_EQ(idx.floor_position(2500)->position, 2000u);
  EXPECT_FALSE(idx.floor_position(999));
  bytes enc;
  idx.encode(0, enc);
  ASSERT_EQ(enc.size(), 24u);
  EXPECT_EQ(load_be<int32_t>(enc.data() + 8), 20);
  EXPECT_EQ(load_be<int32_t>(enc.data() + 12), 2000);
  auto dec = offset_index::decode(enc, 100, 10, 5000);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->lookup(125).position, 2000u);
  EXPECT_FALSE(offset_index::decode(enc, 100, 10, 2500).ok());  // points past the log
  EXPECT_FALSE(offset_index::decode(bytes_view(enc).first(20), 100, 10, 5000).ok());
  bytes zeros(16, 0);
  EXPECT_FALSE(offset_index::decode(zeros, 100, 10, 5000).ok());  // preallocated, untrimmed
  idx.truncate_from_position(2000);
  EXPECT_EQ(idx.size(), 1u);

  time_index t(100, 10);
  EXPECT_EQ(t.lookup(5).offset, 100);
  EXPECT_EQ(t.lookup(5).timestamp, -1);
  t.maybe_append(50, 105);
  t.maybe_append(50, 106);  // not larger: ignored
  t.maybe_append(70, 120);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.lookup(49).offset, 100);
  EXPECT_EQ(t.lookup(50).offset, 105);
  EXPECT_EQ(t.lookup(69).offset, 105);
  EXPECT_EQ(t.lookup(700).offset, 120);
  bytes tenc;
  t.encode(0, tenc);
  ASSERT_EQ(tenc.size(), 24u);
  EXPECT_EQ(load_be<int64_t>(tenc.data() + 12), 70);
  EXPECT_EQ(load_be<int32_t>(tenc.data() + 20), 20);
  t.truncate_from_offset(110);
  EXPECT_EQ(t.size(), 1u);
}
