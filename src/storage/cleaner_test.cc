// The log cleaner: what a compaction keeps, and that a crash at any step of
// a clean leaves a readable log with nothing lost.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/file.h"
#include "storage/cleaner.h"
#include "storage/log.h"

using namespace gregor;
using namespace gregor::storage;
namespace fs = std::filesystem;
using protocol::compression_type;

namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;

struct rec {
  int64_t offset;
  int64_t timestamp;
  std::optional<std::string> key;
  std::optional<std::string> value;
  bool control = false;
  int64_t producer_id = -1;
};

class CleanerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::gregor::log::set_level("error");
    root_ = fs::path("/tmp") / ("gregor-cleaner-test-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    dir_ = (root_ / "topic-0").string();
    cfg_.segment_bytes = 600;
    cfg_.compact = true;
    cfg_.retention_ms = -1;
    cfg_.min_cleanable_dirty_ratio = 0.5;
    cfg_.index_interval_bytes = 100;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<storage::log> open(bool recover = false) {
    auto l = storage::log::open(dir_, cfg_, recover, kNow);
    EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.err().message);
    return l.ok() ? std::move(l.value()) : nullptr;
  }

  // Appends one batch of (key, value) pairs; nullopt value = tombstone.
  void append(storage::log& l, std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> kvs,
              compression_type c = compression_type::none, int64_t producer_id = -1, int64_t ts = kNow) {
    protocol::batch_builder_options o;
    o.compression = c;
    o.producer_id = producer_id;
    o.producer_epoch = producer_id >= 0 ? 0 : -1;
    o.base_sequence = producer_id >= 0 ? 0 : -1;
    protocol::batch_builder b(o);
    for (auto& [k, v] : kvs) b.add(ts, k, v);
    bytes data = b.build();
    auto r = l.append(data, kNow);
    ASSERT_TRUE(r.ok()) << r.err().message;
    for (auto& [k, v] : kvs)
      if (k) expected_[*k] = v;
  }

  void append_control(storage::log& l) {
    protocol::batch_builder_options o;
    o.control = true;
    o.transactional = true;
    o.producer_id = 77;
    o.producer_epoch = 0;
    protocol::batch_builder b(o);
    std::string key("\0\0\0\0", 4), value("\0\0\0\0\0\0", 6);
    b.add(kNow, std::optional<std::string_view>(key), std::optional<std::string_view>(value));
    bytes data = b.build();
    ASSERT_TRUE(l.append(data, kNow).ok());
  }

  // A log with many updates of 10 keys, some tombstones, and several segments.
  void fill(storage::log& l, int rounds = 12, compression_type c = compression_type::none) {
    for (int r = 0; r < rounds; ++r) {
      std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> kvs;
      for (int k = 0; k < 10; ++k) {
        std::optional<std::string> v = "v" + std::to_string(r) + "-" + std::to_string(k);
        if (r == rounds - 1 && k % 4 == 0) v.reset();  // tombstones in the last round
        kvs.emplace_back("k" + std::to_string(k), v);
      }
      append(l, {kvs.begin(), kvs.begin() + 5}, c);
      append(l, {kvs.begin() + 5, kvs.end()}, c);
    }
    // Later writes of a few keys land in the active segment.
    ASSERT_TRUE(l.roll(kNow).ok());
    append(l, {{"k1", "final-1"}}, c);
  }

  // A transactional batch of producer `pid` (epoch 0) from sequence `seq`.
  int64_t append_txn(storage::log& l, int64_t pid, int32_t seq,
                     std::vector<std::pair<std::string, std::string>> kvs) {
    protocol::batch_builder_options o;
    o.transactional = true;
    o.producer_id = pid;
    o.producer_epoch = 0;
    o.base_sequence = seq;
    protocol::batch_builder b(o);
    for (auto& [k, v] : kvs) b.add(kNow, std::optional<std::string_view>(k), std::optional<std::string_view>(v));
    bytes data = b.build();
    auto r = l.append(data, kNow);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return r.ok() ? r->base_offset : -1;
  }
  int64_t append_marker(storage::log& l, int64_t pid, bool commit) {
    bytes data = build_txn_marker_batch(pid, 0, txn_marker{commit, 0}, kNow);
    auto r = l.append(data, kNow);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return r.ok() ? r->base_offset : -1;
  }
  // What a read_committed consumer sees as the last value of each key: no
  // control records, nothing of an aborted transaction (by the log's
  // aborted transaction index, as a fetch returns it), nothing from `lso` on.
  static std::map<std::string, std::optional<std::string>> committed_values(storage::log& l, int64_t lso) {
    auto aborted = l.aborted_transactions(l.log_start_offset(), lso);
    std::map<std::string, std::optional<std::string>> m;
    for (auto& r : read_all(l)) {
      if (r.control || !r.key || r.offset >= lso) continue;
      bool is_aborted = std::any_of(aborted.begin(), aborted.end(), [&](const aborted_txn& a) {
        return a.producer_id == r.producer_id && a.first_offset <= r.offset && r.offset <= a.last_offset;
      });
      if (!is_aborted) m[*r.key] = r.value;
    }
    return m;
  }
  // Runs a forced clean at `now` after appending to the active segment and
  // rolling (the clean section alone is never dirty).
  void clean_again(storage::log& l, int64_t now) {
    append(l, {{"filler", "x"}});
    ASSERT_TRUE(l.roll(now).ok());
    l.last_stable_offset(l.log_end_offset());  // everything is replicated: closed transactions are stable
    auto job = clean_job::start(l, now, true);
    ASSERT_TRUE(job);
    ASSERT_TRUE(job->run(l, now).ok());
  }
  std::vector<std::string> files_with(const std::string& ext) const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ext) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  static std::vector<rec> read_all(storage::log& l, std::vector<protocol::batch_header>* headers = nullptr) {
    std::vector<rec> out;
    int64_t next = l.log_start_offset();
    while (next < l.log_end_offset()) {
      auto r = l.read(next, 1 << 20, true);
      EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
      if (!r.ok()) break;
      bytes data;
      for (auto& c : r->records.chunks()) {
        if (auto* b = std::get_if<bytes>(&c)) {
          data.insert(data.end(), b->begin(), b->end());
        } else {
          auto& reg = std::get<file_region>(c);
          size_t at = data.size();
          data.resize(at + reg.size);
          EXPECT_TRUE(reg.source->read_exact_at(reg.position, data.data() + at, reg.size).ok());
        }
      }
      if (data.empty()) break;
      protocol::batch_iterator it(data);
      protocol::batch_header h;
      while (auto batch = it.next(&h)) {
        if (headers) headers->push_back(h);
        EXPECT_TRUE(protocol::crc_matches(*batch)) << "batch at " << h.base_offset;
        auto recs = protocol::read_records(*batch);
        EXPECT_TRUE(recs.ok());
        if (!recs.ok()) return out;
        for (auto& x : recs.value()) {
          rec o{x.offset, x.timestamp, std::nullopt, std::nullopt, h.is_control(), h.producer_id};
          if (x.key) o.key = std::string(as_string(*x.key));
          if (x.value) o.value = std::string(as_string(*x.value));
          EXPECT_GT(o.offset, out.empty() ? -1 : out.back().offset);
          out.push_back(o);
        }
        EXPECT_GE(h.next_offset(), next);
        next = h.next_offset();
      }
    }
    return out;
  }

  // The last value of every key as a consumer reading everything sees it.
  static std::map<std::string, std::optional<std::string>> last_values(const std::vector<rec>& recs) {
    std::map<std::string, std::optional<std::string>> m;
    for (auto& r : recs)
      if (r.key && !r.control) m[*r.key] = r.value;
    return m;
  }
  std::map<std::string, std::optional<std::string>> expected_live() const {
    std::map<std::string, std::optional<std::string>> m;
    for (auto& [k, v] : expected_)
      if (v) m[k] = v;
    return m;
  }
  static std::map<std::string, std::optional<std::string>> live(const std::map<std::string, std::optional<std::string>>& m) {
    std::map<std::string, std::optional<std::string>> out;
    for (auto& [k, v] : m)
      if (v) out[k] = v;
    return out;
  }

  std::vector<std::string> leftovers() const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir_)) {
      auto n = e.path().filename().string();
      if (n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".deleted") || n == "cleaner-swap") out.push_back(n);
    }
    return out;
  }

  fs::path root_;
  std::string dir_;
  log_config cfg_;
  std::map<std::string, std::optional<std::string>> expected_;
};

TEST_F(CleanerTest, KeepsTheLastRecordOfEveryKeyAtItsOffset) {
  auto l = open();
  fill(*l);
  auto before = read_all(*l);
  ASSERT_GT(l->segment_count(), 4u);
  std::map<std::string, int64_t> last_offset;
  for (auto& r : before) last_offset[*r.key] = r.offset;
  auto sec = cleanable(*l, kNow);
  ASSERT_TRUE(sec && sec->due);
  EXPECT_EQ(sec->first_dirty, 0);
  auto job = clean_job::start(*l, kNow);
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->run(*l, kNow).ok());
  auto after = read_all(*l);
  // Every key once (the active segment's k1 aside), at the offset it was last written at.
  EXPECT_EQ(last_values(after), last_values(before));
  for (auto& r : after) {
    if (*r.key == "k1" && r.offset != last_offset["k1"]) continue;  // k1's older copy sits below the active segment
    EXPECT_EQ(r.offset, last_offset[*r.key]) << *r.key;
  }
  EXPECT_LE(after.size(), 12u);
  size_t segments_after_first_clean = l->segment_count();
  EXPECT_EQ(read_cleaner_checkpoint(dir_), l->segments().back().base_offset);
  EXPECT_TRUE(leftovers().empty());
  // Tombstones survive the first clean (delete.retention.ms), with values null.
  int tombstones = 0;
  for (auto& r : after) tombstones += !r.value;
  EXPECT_EQ(tombstones, 3);

  // Nothing dirty now: no new clean is due.
  auto again = cleanable(*l, kNow);
  EXPECT_TRUE(!again || !again->due);

  // After delete.retention.ms, a forced clean drops the tombstones.
  int64_t later = kNow + cfg_.delete_retention_ms + 1;
  auto job2 = clean_job::start(*l, later, true);
  if (job2) ASSERT_TRUE(job2->run(*l, later).ok());
  // The clean section alone is never dirty; append and roll so there is a dirty segment.
  append(*l, {{"k5", "later"}});
  ASSERT_TRUE(l->roll(later).ok());
  auto job3 = clean_job::start(*l, later, true);
  ASSERT_TRUE(job3);
  ASSERT_TRUE(job3->run(*l, later).ok());
  auto final_recs = read_all(*l);
  EXPECT_LT(l->segment_count(), segments_after_first_clean);  // the now small segments were merged
  for (auto& r : final_recs) EXPECT_TRUE(r.value.has_value()) << "tombstone of " << *r.key << " still there";
  EXPECT_EQ(live(last_values(final_recs)), expected_live());

  // Reopening (clean and unclean) reads the same thing.
  ASSERT_TRUE(l->close().ok());
  l.reset();
  auto reopened = open(true);
  auto again_recs = read_all(*reopened);
  EXPECT_EQ(again_recs.size(), final_recs.size());
  EXPECT_EQ(live(last_values(again_recs)), expected_live());
}

TEST_F(CleanerTest, CompressedBatchesAreRewrittenWithTheirCodec) {
  auto l = open();
  fill(*l, 12, compression_type::gzip);
  auto before = last_values(read_all(*l));
  auto job = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->run(*l, kNow).ok());
  auto after = read_all(*l);
  EXPECT_EQ(last_values(after), before);
  EXPECT_LT(after.size(), 20u);
}

TEST_F(CleanerTest, KeylessRecordsGoControlBatchesAndProducerStateStay) {
  auto l = open();
  append(*l, {{std::nullopt, "no-key"}, {"a", "1"}});
  append_control(*l);
  append(*l, {{"b", "1"}}, compression_type::none, 42);
  append(*l, {{"b", "2"}}, compression_type::none, 43);
  for (int i = 0; i < 30; ++i) append(*l, {{"a", "x" + std::to_string(i)}});
  ASSERT_TRUE(l->roll(kNow).ok());
  append(*l, {{"z", "z"}});
  auto job = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->run(*l, kNow).ok());
  auto after = read_all(*l);
  bool control = false;
  for (auto& r : after) {
    EXPECT_TRUE(r.key.has_value() || r.control);
    control |= r.control;
  }
  EXPECT_TRUE(control);
  auto m = last_values(after);
  EXPECT_EQ(m["a"], std::optional<std::string>("x29"));
  EXPECT_EQ(m["b"], std::optional<std::string>("2"));
  // Producer 42's only batch lost its record: it stays as an empty batch.
  auto r = l->read(0, 1 << 20, true);
  ASSERT_TRUE(r.ok());
  bool empty_batch_of_42 = false;
  for (auto& c : r->records.chunks()) {
    if (!std::holds_alternative<file_region>(c)) continue;
    auto& reg = std::get<file_region>(c);
    bytes data(reg.size);
    ASSERT_TRUE(reg.source->read_exact_at(reg.position, data.data(), reg.size).ok());
    protocol::batch_iterator it(data);
    protocol::batch_header h;
    while (it.next(&h))
      if (h.producer_id == 42 && h.records_count == 0) empty_batch_of_42 = true;
  }
  EXPECT_TRUE(empty_batch_of_42);
}

TEST_F(CleanerTest, RatioAndLagDecideWhenToClean) {
  cfg_.min_compaction_lag_ms = 10 * kDay;
  auto l = open();
  fill(*l);
  // Every segment is younger than min.compaction.lag.ms.
  EXPECT_FALSE(cleanable(*l, kNow).has_value());
  EXPECT_TRUE(cleanable(*l, kNow + 11 * kDay).has_value());
  cfg_.min_compaction_lag_ms = 0;
  cfg_.min_cleanable_dirty_ratio = 1.0;
  l->set_config(cfg_);
  auto s = cleanable(*l, kNow);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->due);  // all dirty: ratio 1.0
  ASSERT_TRUE(clean_job::start(*l, kNow)->run(*l, kNow).ok());
  append(*l, {{"k2", "new"}});
  ASSERT_TRUE(l->roll(kNow).ok());
  s = cleanable(*l, kNow);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->due);  // a small dirty tail over a bigger clean head
  EXPECT_FALSE(clean_job::start(*l, kNow));
  cfg_.max_compaction_lag_ms = kDay;
  l->set_config(cfg_);
  s = cleanable(*l, kNow + 2 * kDay);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->max_lag_exceeded);
  EXPECT_TRUE(s->due);
}

TEST_F(CleanerTest, SlicesInterleaveWithAppendsAndAbandonWhenTheLogChanges) {
  auto l = open();
  fill(*l);
  auto job = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job);
  int steps = 0;
  for (;; ++steps) {
    auto done = job->step(*l, kNow, 200);
    ASSERT_TRUE(done.ok()) << done.err().message;
    if (done.value()) break;
    append(*l, {{"k3", "during-" + std::to_string(steps)}});  // appends between slices
    ASSERT_LT(steps, 10000);
  }
  EXPECT_GT(steps, 3);
  EXPECT_EQ(live(last_values(read_all(*l))), expected_live());

  // A truncation between slices makes the job give up without harm.
  append(*l, {{"k4", "x"}});
  ASSERT_TRUE(l->roll(kNow).ok());
  auto job2 = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job2);
  ASSERT_TRUE(job2->step(*l, kNow, 100).ok());
  ASSERT_TRUE(l->truncate_to(l->segments()[0].base_offset + 1).ok());
  for (int i = 0; i < 10000; ++i) {
    auto done = job2->step(*l, kNow, 1 << 20);
    ASSERT_TRUE(done.ok());
    if (done.value()) break;
  }
  EXPECT_TRUE(leftovers().empty());
  read_all(*l);
}

// A crash before each file operation of a clean's commit, then recovery:
// the log opens, reads in order, and no key lost its last value.
TEST_F(CleanerTest, CrashAtEveryStepOfACleanLosesNothing) {
  bool completed = false;
  int crash_points = 0;
  for (int crash_at = 0; crash_at < 200 && !completed; ++crash_at) {
    crash_points = crash_at;
    fs::remove_all(dir_);
    expected_.clear();
    auto l = open();
    fill(*l, 6);
    // A first clean leaves small segments, which the crashing clean merges.
    ASSERT_TRUE(clean_job::start(*l, kNow, true)->run(*l, kNow).ok());
    append(*l, {{"k2", "after-1"}, {"k7", std::nullopt}});
    append(*l, {{"k3", "after-2"}});
    ASSERT_TRUE(l->roll(kNow).ok());
    auto before = last_values(read_all(*l));
    auto job = clean_job::start(*l, kNow, true);
    ASSERT_TRUE(job);
    int seen = 0;
    job->set_crash_hook([&](int step) {
      seen = step;
      return step == crash_at;
    });
    ASSERT_TRUE(job->run(*l, kNow).ok()) << "crash_at " << crash_at;
    completed = !job->crashed();
    l.reset();  // the process "dies": nothing more is written, nothing closed
    auto back = open(true);
    ASSERT_TRUE(back) << "crash_at " << crash_at;
    EXPECT_TRUE(leftovers().empty()) << "crash_at " << crash_at;
    auto recs = read_all(*back);
    EXPECT_EQ(last_values(recs), before) << "crash_at " << crash_at << " (step " << seen << ")";
    // A clean after recovery finishes the job.
    if (auto again = clean_job::start(*back, kNow, true)) ASSERT_TRUE(again->run(*back, kNow).ok());
    EXPECT_EQ(last_values(read_all(*back)), before) << "crash_at " << crash_at;
    EXPECT_TRUE(leftovers().empty());
  }
  EXPECT_TRUE(completed);
  // More than one group's worth of steps: segments were merged (.deleted paths covered).
  EXPECT_GT(crash_points, 9);
}

}  // namespace

namespace {

using value_map = std::map<std::string, std::optional<std::string>>;

int count_markers(const std::vector<protocol::batch_header>& hs, int64_t pid = -1) {
  int n = 0;
  for (auto& h : hs) n += h.is_control() && (pid < 0 || h.producer_id == pid);
  return n;
}

}  // namespace

TEST_F(CleanerTest, AbortedDataGoesAndMarkersStayUntilNothingOfTheirTransactionIsLeft) {
  auto l = open();
  append_txn(*l, 1, 0, {{"k1", "c1"}, {"k2", "c1"}, {"k5", "c5"}});  // 0-2
  append_marker(*l, 1, true);                                        // 3
  append_txn(*l, 2, 0, {{"k1", "a1"}, {"k3", "a3"}, {"k5", "a5"}});  // 4-6: aborted, the last write of k3 and k5
  int64_t abort2 = append_marker(*l, 2, false);                      // 7
  append(*l, {{"k2", "plain"}});                                     // 8
  append_txn(*l, 1, 3, {{"k1", "c2"}});                              // 9
  append_marker(*l, 1, true);                                        // 10
  append_txn(*l, 2, 3, {{"k4", "c4"}});                              // 11
  append_marker(*l, 2, true);                                        // 12
  ASSERT_TRUE(l->roll(kNow).ok());
  const value_map expected{{"k1", "c2"}, {"k2", "plain"}, {"k4", "c4"}, {"k5", "c5"}};
  l->last_stable_offset(l->log_end_offset());  // the markers are replicated

  // Pass 1: the aborted records go, and an aborted write never wins.
  auto job = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->run(*l, kNow).ok());
  EXPECT_EQ(job->stats().aborted_records_removed, 3);
  std::vector<protocol::batch_header> hs;
  auto recs = read_all(*l, &hs);
  for (auto& r : recs) EXPECT_FALSE(!r.control && r.value && r.value->starts_with("a")) << *r.key;
  EXPECT_EQ(last_values(recs), expected);  // read_uncommitted
  EXPECT_EQ(committed_values(*l, l->log_end_offset()), expected);
  // Every marker stays: the commits have data left, and the abort's data
  // was read by this pass (a later one removes it), so the abort stays indexed.
  EXPECT_EQ(count_markers(hs), 4);
  ASSERT_EQ(l->aborted_transactions(0, l->log_end_offset()).size(), 1u);

  // Pass 2: nothing of the aborted transaction is left: its index entry
  // goes and its marker gets a delete horizon, but stays until it passes.
  clean_again(*l, kNow);
  hs.clear();
  recs = read_all(*l, &hs);
  EXPECT_EQ(count_markers(hs), 4);
  EXPECT_TRUE(l->aborted_transactions(0, l->log_end_offset()).empty());
  for (auto& h : hs) {
    if (h.base_offset == abort2) EXPECT_TRUE(h.attributes & 0x40);
    else if (h.is_control()) EXPECT_FALSE(h.attributes & 0x40) << h.base_offset;
  }
  EXPECT_TRUE(files_with(".txnindex").empty());
  value_map want = expected;
  want["filler"] = "x";
  EXPECT_EQ(committed_values(*l, l->log_end_offset()), want);

  // Pass 3, past delete.retention.ms: the abort marker goes. Producer 1's
  // first commit stays (k5=c5 of its transaction is left), as do the
  // markers of the producers' last transactions.
  int64_t later = kNow + cfg_.delete_retention_ms + 1;
  clean_again(*l, later);
  hs.clear();
  recs = read_all(*l, &hs);
  EXPECT_EQ(count_markers(hs), 3);
  for (auto& h : hs) EXPECT_NE(h.base_offset, abort2);
  EXPECT_EQ(last_values(recs), want);
  EXPECT_EQ(committed_values(*l, l->log_end_offset()), want);

  // Producer state rebuilt from the cleaned log alone (no snapshots) still
  // knows each producer's last sequence.
  ASSERT_TRUE(l->close().ok());
  l.reset();
  for (auto& f : files_with(".snapshot")) fs::remove(fs::path(dir_) / f);
  auto reopened = open(true);
  ASSERT_TRUE(reopened);
  ASSERT_TRUE(reopened->producers().find(1));
  ASSERT_TRUE(reopened->producers().find(2));
  EXPECT_EQ(reopened->producers().find(1)->last_sequence(), 3);
  EXPECT_EQ(reopened->producers().find(2)->last_sequence(), 3);
  EXPECT_EQ(committed_values(*reopened, reopened->log_end_offset()), want);
}

TEST_F(CleanerTest, TheLastBatchOfEachProducerStaysEmptyAndKeepsItsMarker) {
  auto l = open();
  int64_t aborted_at = append_txn(*l, 7, 0, {{"k1", "aborted"}});  // producer 7's only batch
  int64_t abort7 = append_marker(*l, 7, false);
  int64_t committed_at = append_txn(*l, 8, 0, {{"k1", "c8"}, {"k2", "c8"}});  // producer 8's only batch
  append_marker(*l, 8, true);
  append(*l, {{"k1", "later"}, {"k2", "later"}});  // supersedes all of producer 8's records
  ASSERT_TRUE(l->roll(kNow).ok());
  for (int64_t now : {kNow, kNow, kNow + cfg_.delete_retention_ms + 1}) {
    clean_again(*l, now);
    std::vector<protocol::batch_header> hs;
    auto recs = read_all(*l, &hs);
    bool empty7 = false, empty8 = false;
    for (auto& h : hs) {
      empty7 |= h.producer_id == 7 && !h.is_control() && h.records_count == 0 && h.base_offset == aborted_at &&
                h.last_sequence() == 0 && h.is_transactional();
      empty8 |= h.producer_id == 8 && !h.is_control() && h.records_count == 0 && h.base_offset == committed_at &&
                h.last_sequence() == 1;
    }
    EXPECT_TRUE(empty7);
    EXPECT_TRUE(empty8);
    // The empty batches are still batches of their transactions: the
    // markers that close them stay, and the aborted one stays indexed.
    EXPECT_EQ(count_markers(hs, 7), 1);
    EXPECT_EQ(count_markers(hs, 8), 1);
    auto aborted = l->aborted_transactions(0, l->log_end_offset());
    ASSERT_EQ(aborted.size(), 1u);
    EXPECT_EQ(aborted[0].last_offset, abort7);
    EXPECT_EQ(committed_values(*l, l->log_end_offset()),
              (value_map{{"k1", "later"}, {"k2", "later"}, {"filler", "x"}}));
  }
  ASSERT_TRUE(l->close().ok());
  l.reset();
  for (auto& f : files_with(".snapshot")) fs::remove(fs::path(dir_) / f);
  auto reopened = open(true);
  ASSERT_TRUE(reopened && reopened->producers().find(7) && reopened->producers().find(8));
  EXPECT_EQ(reopened->producers().find(7)->last_sequence(), 0);
  EXPECT_EQ(reopened->producers().find(8)->last_sequence(), 1);
  EXPECT_FALSE(reopened->producers().has_open_transaction(7));
  EXPECT_EQ(reopened->aborted_transactions(0, reopened->log_end_offset()).size(), 1u);
}

TEST_F(CleanerTest, AnAbortWhoseMarkerIsAboveTheCleanedRangeStillRemovesItsData) {
  auto l = open();
  append_txn(*l, 1, 0, {{"k", "committed"}});
  append_marker(*l, 1, true);
  append_txn(*l, 2, 0, {{"k", "aborted"}});
  ASSERT_TRUE(l->roll(kNow).ok());
  append_marker(*l, 2, false);  // in the active segment: not cleaned
  l->last_stable_offset(l->log_end_offset());
  auto job = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->run(*l, kNow).ok());
  EXPECT_EQ(job->stats().aborted_records_removed, 1);
  const value_map want{{"k", "committed"}};
  EXPECT_EQ(last_values(read_all(*l)), want);
  EXPECT_EQ(committed_values(*l, l->log_end_offset()), want);
}

TEST_F(CleanerTest, NothingAtOrPastTheLastStableOffsetIsCleaned) {
  auto l = open();
  append_txn(*l, 1, 0, {{"k1", "c1"}});
  append_marker(*l, 1, true);
  for (int i = 0; i < 10; ++i) append(*l, {{"k2", "v" + std::to_string(i)}});
  ASSERT_TRUE(l->roll(kNow).ok());
  int64_t open_at = append_txn(*l, 3, 0, {{"k1", "open"}, {"k2", "open"}});  // stays open
  ASSERT_TRUE(l->roll(kNow).ok());
  for (int i = 0; i < 10; ++i) append(*l, {{"k2", "after" + std::to_string(i)}});
  ASSERT_TRUE(l->roll(kNow).ok());
  append(*l, {{"k9", "active"}});
  l->last_stable_offset(l->log_end_offset());
  auto sec = cleanable(*l, kNow);
  ASSERT_TRUE(sec);
  EXPECT_LE(sec->end, open_at);
  auto before = read_all(*l);
  auto job = clean_job::start(*l, kNow, true);
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->run(*l, kNow).ok());
  auto after = read_all(*l);
  auto from = [](const std::vector<rec>& rs, int64_t o) {
    std::vector<std::pair<int64_t, std::optional<std::string>>> out;
    for (auto& r : rs)
      if (r.offset >= o) out.emplace_back(r.offset, r.value);
    return out;
  };
  EXPECT_EQ(from(after, open_at), from(before, open_at));  // the open transaction and all after it
  EXPECT_LT(after.size(), before.size());                  // below it, k2's old values went
  int64_t lso = l->last_stable_offset(l->log_end_offset());
  EXPECT_EQ(lso, open_at);
  EXPECT_EQ(committed_values(*l, lso), (value_map{{"k1", "c1"}, {"k2", "v9"}}));

  // The caller's last stable offset (the high watermark's) bounds it too.
  auto bounded = cleanable(*l, kNow, 0);
  EXPECT_FALSE(bounded.has_value());

  // Once the transaction commits, the rest is cleanable.
  append_marker(*l, 3, true);
  clean_again(*l, kNow);
  auto m = committed_values(*l, l->last_stable_offset(l->log_end_offset()));
  EXPECT_EQ(m["k1"], std::optional<std::string>("open"));
  EXPECT_EQ(m["k2"], std::optional<std::string>("after9"));
}

TEST_F(CleanerTest, DeleteRecordsDropsTxnIndexesAndSnapshotsButKeepsProducers) {
  cfg_.compact = false;
  auto l = open();
  append_txn(*l, 5, 0, {{"k", "a"}});
  append_marker(*l, 5, false);
  ASSERT_TRUE(l->roll(kNow).ok());
  append(*l, {{"k", "b"}});
  ASSERT_TRUE(l->roll(kNow).ok());
  append(*l, {{"k", "c"}});
  EXPECT_EQ(files_with(".txnindex").size(), 1u);
  EXPECT_FALSE(files_with(".snapshot").empty());
  ASSERT_TRUE(l->advance_log_start_offset(l->segments()[2].base_offset).ok());
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_TRUE(files_with(".txnindex").empty());
  for (auto& f : files_with(".snapshot")) EXPECT_GE(std::stoll(f), l->segments()[0].base_offset) << f;
  EXPECT_TRUE(l->aborted_transactions(0, l->log_end_offset()).empty());
  // Kafka keeps a producer whose batches are all gone until
  // producer.id.expiration.ms: its sequence still dedups a late retry.
  ASSERT_TRUE(l->producers().find(5));
  EXPECT_EQ(l->producers().find(5)->last_sequence(), 0);
  EXPECT_EQ(l->remove_expired_producers(kNow + 1, 10 * kDay), 0u);
  EXPECT_EQ(l->remove_expired_producers(kNow + 11 * kDay, 10 * kDay), 1u);
}

TEST_F(CleanerTest, CrashAtEveryStepKeepsAbortedTransactionsIndexed) {
  // Tiny segments (the clean merges them) with aborts whose data and
  // markers are in different segments: a crash anywhere must leave every
  // aborted record that is still in the log in the .txnindex.
  bool completed = false;
  const value_map want{{"k0", "c2"}, {"k1", "c1"}};
  for (int crash_at = 0; crash_at < 200 && !completed; ++crash_at) {
    fs::remove_all(dir_);
    auto l = open();
    for (int i = 0; i < 3; ++i) {  // few: every step of every group is a reopen
      std::string k = "k" + std::to_string(i % 2);
      append_txn(*l, 20, 2 * i, {{k, "c" + std::to_string(i)}});
      append_marker(*l, 20, true);
      append_txn(*l, 10 + i, 0, {{k, "aborted" + std::to_string(i)}});
      ASSERT_TRUE(l->roll(kNow).ok());
      append_marker(*l, 10 + i, false);
      ASSERT_TRUE(l->roll(kNow).ok());
    }
    append(*l, {{"z", "active"}});
    l->last_stable_offset(l->log_end_offset());
    value_map all = want;
    all["z"] = "active";
    auto job = clean_job::start(*l, kNow, true);
    ASSERT_TRUE(job);
    job->set_crash_hook([&](int step) { return step == crash_at; });
    ASSERT_TRUE(job->run(*l, kNow).ok()) << "crash_at " << crash_at;
    completed = !job->crashed();
    l.reset();
    auto back = open(true);
    ASSERT_TRUE(back) << "crash_at " << crash_at;
    EXPECT_TRUE(leftovers().empty()) << "crash_at " << crash_at;
    EXPECT_EQ(committed_values(*back, back->log_end_offset()), all) << "crash_at " << crash_at;
    back->last_stable_offset(back->log_end_offset());
    if (auto again = clean_job::start(*back, kNow, true)) ASSERT_TRUE(again->run(*back, kNow).ok());
    EXPECT_EQ(committed_values(*back, back->log_end_offset()), all) << "crash_at " << crash_at;
    EXPECT_EQ(last_values(read_all(*back)), all) << "crash_at " << crash_at;
    // Each aborting producer's only batch stays (empty), so its abort stays indexed.
    EXPECT_EQ(back->aborted_transactions(0, back->log_end_offset()).size(), 3u) << "crash_at " << crash_at;
  }
  EXPECT_TRUE(completed);
}
