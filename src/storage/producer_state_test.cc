// Idempotent producer state: the sequence rules as plain calls, then the
// log keeping it through snapshots, crashes, truncation and retention.
#include "storage/producer_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <limits>

#include "base/log.h"
#include "runtime/file.h"
#include "storage/log.h"

using namespace gregor;
using namespace gregor::storage;
namespace fs = std::filesystem;
using protocol::batch_header;

namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int32_t kMaxSeq = std::numeric_limits<int32_t>::max();

// A batch of `n` records from producer `pid` at `epoch`, sequences from `seq`.
bytes idempotent_batch(int64_t pid, int16_t epoch, int32_t seq, int n = 3, int64_t ts = kNow, bool txn = false) {
  protocol::batch_builder_options o;
  o.transactional = txn;
  o.producer_id = pid;
  o.producer_epoch = epoch;
  o.base_sequence = seq;
  protocol::batch_builder b(o);
  for (int i = 0; i < n; ++i) b.add(ts + i, std::optional<std::string_view>("k"), std::optional<std::string_view>("v"));
  return b.build();
}

batch_header header_at(int64_t pid, int16_t epoch, int32_t seq, int n, int64_t base_offset) {
  bytes b = idempotent_batch(pid, epoch, seq, n);
  auto h = batch_header::parse(b.data());
  h.base_offset = base_offset;
  return h;
}

TEST(ProducerState, NewProducerAnySequenceThenInOrderOnly) {
  producer_state s;
  EXPECT_EQ(s.check(header_at(7, 0, 42, 3, 0)).verdict, sequence_verdict::ok);  // KIP-360: unknown producer
  s.update(header_at(7, 0, 42, 3, 0));
  EXPECT_EQ(s.check(header_at(7, 0, 45, 1, 3)).verdict, sequence_verdict::ok);
  auto gap = s.check(header_at(7, 0, 46, 1, 3));
  EXPECT_EQ(gap.verdict, sequence_verdict::out_of_order);
  EXPECT_NE(gap.message.find("46"), std::string::npos);
  EXPECT_EQ(s.check(header_at(7, 0, 40, 1, 3)).verdict, sequence_verdict::out_of_order);
  EXPECT_EQ(s.map_end_offset(), 3);
}

TEST(ProducerState, DuplicatesOfTheLastFiveBatchesAnswerWithTheirOffsets) {
  producer_state s;
  int64_t offset = 100;
  for (int i = 0; i < 6; ++i) {
    s.update(header_at(9, 2, i * 2, 2, offset));
    offset += 2;
  }
  for (int i = 1; i < 6; ++i) {
    auto c = s.check(header_at(9, 2, i * 2, 2, -1));
    ASSERT_EQ(c.verdict, sequence_verdict::duplicate) << i;
    EXPECT_EQ(c.original.first_offset, 100 + i * 2);
    EXPECT_EQ(c.original.last_offset, 101 + i * 2);
  }
  // The oldest fell out of the window: it is out of order, never appended twice.
  EXPECT_EQ(s.check(header_at(9, 2, 0, 2, -1)).verdict, sequence_verdict::out_of_order);
  // Same first sequence, different length: not the same batch.
  EXPECT_EQ(s.check(header_at(9, 2, 10, 1, -1)).verdict, sequence_verdict::out_of_order);
}

TEST(ProducerState, EpochRules) {
  producer_state s;
  s.update(header_at(5, 3, 0, 2, 0));
  auto old = s.check(header_at(5, 2, 2, 1, 2));
  EXPECT_EQ(old.verdict, sequence_verdict::invalid_epoch);
  EXPECT_NE(old.message.find("smaller than the last seen epoch 3"), std::string::npos);
  // A duplicate is a duplicate only at its own epoch.
  EXPECT_EQ(s.check(header_at(5, 2, 0, 2, 2)).verdict, sequence_verdict::invalid_epoch);
  // A bumped epoch starts again at sequence 0.
  EXPECT_EQ(s.check(header_at(5, 4, 0, 1, 2)).verdict, sequence_verdict::ok);
  EXPECT_EQ(s.check(header_at(5, 4, 2, 1, 2)).verdict, sequence_verdict::out_of_order);
  s.update(header_at(5, 4, 0, 1, 2));
  EXPECT_EQ(s.find(5)->epoch, 4);
  EXPECT_EQ(s.find(5)->batches.size(), 1u);
  // A follower applies what its leader wrote, even an older epoch (no checks).
  s.update(header_at(5, 1, 7, 1, 3));
  EXPECT_EQ(s.find(5)->epoch, 1);
}

TEST(ProducerState, SequenceWrapsAtInt32Max) {
  producer_state s;
  s.update(header_at(1, 0, kMaxSeq - 1, 2, 0));  // sequences MAX-1, MAX
  EXPECT_EQ(s.find(1)->last_sequence(), kMaxSeq);
  EXPECT_EQ(s.check(header_at(1, 0, 0, 1, 2)).verdict, sequence_verdict::ok);
  // A batch that itself wraps: MAX, 0, 1.
  producer_state w;
  w.update(header_at(2, 0, kMaxSeq - 3, 3, 0));  // MAX-3 .. MAX-1
  auto h = header_at(2, 0, kMaxSeq, 3, 3);
  EXPECT_EQ(h.last_sequence(), 1);
  EXPECT_EQ(w.check(h).verdict, sequence_verdict::ok);
  w.update(h);
  EXPECT_EQ(w.check(header_at(2, 0, kMaxSeq, 3, -1)).verdict, sequence_verdict::duplicate);
  EXPECT_EQ(w.check(header_at(2, 0, 2, 1, -1)).verdict, sequence_verdict::ok);
}

TEST(ProducerState, SnapshotRoundTripKeepsTheLastBatchOfEachProducer) {
  producer_state s;
  s.update(header_at(11, 0, 0, 3, 0));
  s.update(header_at(11, 0, 3, 2, 3));
  s.update(header_at(12, 5, kMaxSeq, 3, 5));  // wraps: first sequence MAX, last 1
  std::string snap = s.to_snapshot();
  ASSERT_EQ(snap.size(), 6u + 4u + 2u * 46u);
  EXPECT_EQ(snap[0], 0);
  EXPECT_EQ(snap[1], 1);  // version 1, as Kafka's
  auto back = producer_state::from_snapshot(snap, 8);
  ASSERT_TRUE(back.ok()) << back.err().message;
  EXPECT_EQ(back->map_end_offset(), 8);
  EXPECT_EQ(back->check(header_at(11, 0, 3, 2, -1)).verdict, sequence_verdict::duplicate);
  EXPECT_EQ(back->check(header_at(11, 0, 3, 2, -1)).original.first_offset, 3);
  EXPECT_EQ(back->check(header_at(11, 0, 5, 1, -1)).verdict, sequence_verdict::ok);
  auto wrapped = back->check(header_at(12, 5, kMaxSeq, 3, -1));
  EXPECT_EQ(wrapped.verdict, sequence_verdict::duplicate);
  EXPECT_EQ(wrapped.original.first_offset, 5);
  EXPECT_EQ(back->check(header_at(12, 4, 2, 1, -1)).verdict, sequence_verdict::invalid_epoch);

  std::string bad = snap;
  bad[20] ^= 1;
  auto refused = producer_state::from_snapshot(bad, 8);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.err().message.find("CRC"), std::string::npos);
  EXPECT_FALSE(producer_state::from_snapshot(snap.substr(0, snap.size() - 1), 8).ok());
  EXPECT_FALSE(producer_state::from_snapshot("", 8).ok());
}

TEST(ProducerState, ExpirationForgetsIdleProducers) {
  producer_state s;
  s.update(header_at(1, 0, 0, 1, 0));  // max timestamp kNow
  bytes later = idempotent_batch(2, 0, 0, 1, kNow + 1000);
  auto h = batch_header::parse(later.data());
  h.base_offset = 1;
  s.update(h);
  EXPECT_EQ(s.remove_expired(kNow + 1500, 1000), 1u);
  EXPECT_EQ(s.find(1), nullptr);
  EXPECT_NE(s.find(2), nullptr);
}

// KIP-890: a guard taken before asking the coordinator holds until a marker
// for the producer or the transaction's first batch; requests in flight
// together share it; failed ones expire.
TEST(ProducerState, VerificationGuardsEndWithMarkersAndTransactions) {
  producer_state s;
  uint64_t g = s.begin_verification(5, kNow);
  EXPECT_EQ(s.begin_verification(5, kNow + 1), g);  // a second request in flight
  EXPECT_NE(s.begin_verification(6, kNow), g);
  EXPECT_TRUE(s.verification_holds(5, g));
  EXPECT_FALSE(s.verification_holds(5, 0));
  EXPECT_FALSE(s.verification_holds(7, g));

  // A marker written while the question was out (the transaction ended):
  // the verified batch must not open a transaction after it.
  bytes m = build_txn_marker_batch(5, 0, txn_marker{false, 0}, kNow);
  auto mh = batch_header::parse(m.data());
  mh.base_offset = 0;
  s.update(mh);
  EXPECT_FALSE(s.verification_holds(5, g));
  uint64_t g2 = s.begin_verification(5, kNow);
  EXPECT_NE(g2, g);

  // The transaction's first batch uses the guard up.
  bytes t = idempotent_batch(5, 0, 0, 1, kNow, true);
  auto th = batch_header::parse(t.data());
  th.base_offset = 1;
  s.update(th);
  EXPECT_TRUE(s.has_open_transaction(5));
  EXPECT_FALSE(s.verification_holds(5, g2));

  // Guards of verifications that never led anywhere expire.
  uint64_t g6 = s.begin_verification(6, kNow);
  s.remove_expired(kNow + 1000, 1000);
  EXPECT_FALSE(s.verification_holds(6, g6));
}

// ---- in the log ------------------------------------------------------------

class ProducerStateLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::gregor::log::set_level("error");
    dir_ = (fs::path("/tmp") / ("gregor-pstate-test-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<storage::log> open(bool recover, log_config c = {}) {
    auto l = storage::log::open(dir_, c, recover, kNow);
    EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.err().message);
    return l.ok() ? std::move(l.value()) : nullptr;
  }
  static int64_t append(storage::log& l, int64_t pid, int16_t epoch, int32_t seq, int n = 3) {
    bytes b = idempotent_batch(pid, epoch, seq, n);
    auto r = l.append(b, kNow, 0);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->base_offset : -1;
  }
  static sequence_verdict verdict(const storage::log& l, int64_t pid, int16_t epoch, int32_t seq, int n = 3) {
    bytes b = idempotent_batch(pid, epoch, seq, n);
    return l.producers().check(batch_header::parse(b.data())).verdict;
  }
  std::vector<int64_t> snapshots_on_disk() const {
    std::vector<int64_t> out;
    for (auto& e : fs::directory_iterator(dir_)) {
      auto n = e.path().filename().string();
      if (n.ends_with(".snapshot")) out.push_back(std::stoll(n.substr(0, n.size() - 9)));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_;
};

TEST_F(ProducerStateLogTest, CleanRestartLoadsTheSnapshotAtTheLogEnd) {
  {
    auto l = open(false);
    append(*l, 1, 0, 0);
    append(*l, 1, 0, 3);
    append(*l, 2, 0, 0);
    ASSERT_TRUE(l->close().ok());
  }
  EXPECT_EQ(snapshots_on_disk(), std::vector<int64_t>{9});
  auto l = open(false);
  EXPECT_EQ(l->producers().map_end_offset(), 9);
  EXPECT_EQ(verdict(*l, 1, 0, 3), sequence_verdict::duplicate);
  EXPECT_EQ(verdict(*l, 1, 0, 6), sequence_verdict::ok);
  EXPECT_EQ(verdict(*l, 2, 0, 1), sequence_verdict::out_of_order);
}

TEST_F(ProducerStateLogTest, ALogWithoutProducersStopsWithoutASnapshot) {
  {
    auto l = open(false);
    bytes plain = idempotent_batch(-1, -1, -1);
    ASSERT_TRUE(l->append(plain, kNow, 0).ok());
    ASSERT_TRUE(l->close().ok());
  }
  EXPECT_TRUE(snapshots_on_disk().empty());  // no fsync per idle partition at shutdown
  auto l = open(false);
  EXPECT_TRUE(l->producers().producers().empty());
  EXPECT_EQ(l->producers().map_end_offset(), 3);
  append(*l, 8, 0, 0);
  ASSERT_TRUE(l->close().ok());
  EXPECT_EQ(snapshots_on_disk(), std::vector<int64_t>{6});
}

TEST_F(ProducerStateLogTest, CrashRecoveryReplaysTheBatchesAfterTheLastSnapshot) {
  log_config c;
  c.segment_bytes = 400;  // a roll every few batches, each with its snapshot
  {
    auto l = open(false, c);
    for (int i = 0; i < 12; ++i) append(*l, 1, 0, i * 3);
    append(*l, 2, 3, 0);
    // No close: the process dies. The segments written so far are on disk.
  }
  auto snaps = snapshots_on_disk();
  ASSERT_GE(snaps.size(), 2u);
  auto l = open(true, c);
  EXPECT_EQ(l->log_end_offset(), 39);
  EXPECT_EQ(l->producers().map_end_offset(), 39);
  // Batches after the last snapshot are replayed, so each is known; the
  // snapshot itself keeps only the last batch before it, as Kafka's does.
  ASSERT_LT(snaps.back(), 39);  // something to replay
  for (int i = 0; i < 12; ++i) {
    if (i * 3 >= snaps.back()) EXPECT_EQ(verdict(*l, 1, 0, i * 3), sequence_verdict::duplicate) << i;
  }
  EXPECT_EQ(verdict(*l, 1, 0, 36), sequence_verdict::ok);
  EXPECT_EQ(verdict(*l, 2, 3, 0), sequence_verdict::duplicate);
  EXPECT_EQ(verdict(*l, 2, 2, 3), sequence_verdict::invalid_epoch);
}

TEST_F(ProducerStateLogTest, TruncationForgetsTheBatchesItRemoves) {
  log_config c;
  c.segment_bytes = 400;
  auto l = open(false, c);
  std::vector<int64_t> base;
  for (int i = 0; i < 10; ++i) base.push_back(append(*l, 1, 0, i * 3));
  ASSERT_TRUE(l->truncate_to(base[6]).ok());
  EXPECT_EQ(l->producers().map_end_offset(), base[6]);
  // Batch 6 is gone: it may be written again, and is not a duplicate.
  EXPECT_EQ(verdict(*l, 1, 0, 18), sequence_verdict::ok);
  EXPECT_EQ(verdict(*l, 1, 0, 15), sequence_verdict::duplicate);
  for (auto s : snapshots_on_disk()) EXPECT_LE(s, base[6]);
  // A follower starting over: everything is forgotten, snapshots too.
  ASSERT_TRUE(l->truncate_fully_and_start_at(100).ok());
  EXPECT_TRUE(snapshots_on_disk().empty());
  EXPECT_EQ(l->producers().find(1), nullptr);
  EXPECT_EQ(verdict(*l, 1, 0, 33), sequence_verdict::ok);
}

TEST_F(ProducerStateLogTest, FollowerAppendsUpdateTheState) {
  auto leader = open(false);
  for (int i = 0; i < 3; ++i) append(*leader, 4, 1, i * 3);
  auto read = leader->read(0, 1 << 20, true);
  ASSERT_TRUE(read.ok());
  bytes copied = runtime::read_region(std::get<file_region>(read->records.chunks().front())).value();
  fs::path follower_dir = fs::path(dir_ + "-follower");
  fs::remove_all(follower_dir);
  auto f = storage::log::open(follower_dir.string(), {}, false, kNow);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f.value()->append_as_follower(copied, kNow).ok());
  EXPECT_EQ(verdict(*f.value(), 4, 1, 6), sequence_verdict::duplicate);
  EXPECT_EQ(verdict(*f.value(), 4, 1, 9), sequence_verdict::ok);
  f.value().reset();
  fs::remove_all(follower_dir);
}

TEST_F(ProducerStateLogTest, SnapshotsGoWithTheirSegmentsAndACorruptOneIsSkipped) {
  log_config c;
  c.segment_bytes = 400;
  {
    auto l = open(false, c);
    for (int i = 0; i < 12; ++i) append(*l, 1, 0, i * 3);
    auto segs = l->segments();
    ASSERT_GE(segs.size(), 3u);
    ASSERT_TRUE(l->delete_segments_below(segs[2].base_offset).ok());
    for (auto s : snapshots_on_disk()) EXPECT_GE(s, segs[2].base_offset);
    ASSERT_TRUE(l->close().ok());
  }
  // The snapshot at the log end is damaged: the one before it and the batches
  // after it give the same state.
  auto snaps = snapshots_on_disk();
  ASSERT_GE(snaps.size(), 2u);
  {
    auto p = fs::path(dir_) / fs::path(std::string(20 - std::to_string(snaps.back()).size(), '0') +
                                        std::to_string(snaps.back()) + ".snapshot");
    ASSERT_TRUE(fs::exists(p));
    fs::resize_file(p, 7);
  }
  auto l = open(false, c);
  EXPECT_EQ(verdict(*l, 1, 0, 33), sequence_verdict::duplicate);
  EXPECT_EQ(verdict(*l, 1, 0, 36), sequence_verdict::ok);
}

// ---- transactions -----------------------------------------------------------

TEST(ProducerState, MarkersParseAndBuild) {
  bytes b = build_txn_marker_batch(77, 3, txn_marker{true, 9}, kNow);
  auto h = batch_header::parse(b.data());
  EXPECT_TRUE(h.is_control());
  EXPECT_TRUE(h.is_transactional());
  EXPECT_EQ(h.producer_id, 77);
  auto m = parse_txn_marker(b);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->commit);
  EXPECT_EQ(m->coordinator_epoch, 9);
  EXPECT_FALSE(parse_txn_marker(idempotent_batch(1, 0, 0)));
}

class TxnLogTest : public ProducerStateLogTest {
 protected:
  static int64_t txn(storage::log& l, int64_t pid, int32_t seq, int n = 2) {
    bytes b = idempotent_batch(pid, 0, seq, n, kNow, true);
    auto r = l.append(b, kNow, 0);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->base_offset : -1;
  }
  static int64_t marker(storage::log& l, int64_t pid, bool commit, int32_t coordinator_epoch = 0) {
    EXPECT_EQ(l.producers().check_marker(pid, 0, coordinator_epoch).verdict, sequence_verdict::ok);
    bytes b = build_txn_marker_batch(pid, 0, txn_marker{commit, coordinator_epoch}, kNow);
    auto r = l.append(b, kNow, 0);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->base_offset : -1;
  }
  std::vector<std::string> txn_index_files() const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".txnindex") out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

TEST_F(TxnLogTest, TheLastStableOffsetWaitsForMarkersAndTheHighWatermark) {
  auto l = open(false);
  append(*l, 1, 0, 0);                 // 0-2, not transactional
  int64_t a = txn(*l, 10, 0);          // 3-4, transaction of producer 10
  int64_t b = txn(*l, 11, 0);          // 5-6, producer 11
  txn(*l, 10, 2);                      // 7-8, still producer 10's transaction
  EXPECT_EQ(l->last_stable_offset(9), a);
  EXPECT_EQ(l->last_stable_offset(2), 2);  // never above the high watermark
  int64_t m = marker(*l, 10, true);     // 9
  EXPECT_EQ(l->last_stable_offset(9), a);  // the commit marker is not replicated yet
  EXPECT_EQ(l->last_stable_offset(10), b);  // now it is: producer 11's transaction is next
  marker(*l, 11, false);                // 10: abort
  EXPECT_EQ(l->last_stable_offset(11), 11);
  auto aborted = l->aborted_transactions(0, 11);
  ASSERT_EQ(aborted.size(), 1u);
  EXPECT_EQ(aborted[0].producer_id, 11);
  EXPECT_EQ(aborted[0].first_offset, b);
  EXPECT_EQ(aborted[0].last_offset, 10);
  EXPECT_EQ(aborted[0].last_stable_offset, 11);
  EXPECT_TRUE(l->aborted_transactions(0, b).empty());   // a fetch that stops before it
  EXPECT_TRUE(l->aborted_transactions(11, 20).empty());  // a fetch after its marker
  EXPECT_EQ(l->aborted_transactions(6, 7).size(), 1u);
  EXPECT_EQ(m, 9);
  // Old producer or coordinator epochs cannot write markers.
  EXPECT_EQ(l->producers().check_marker(10, -1, 0).verdict, sequence_verdict::invalid_epoch);
  marker(*l, 10, true, 4);
  EXPECT_EQ(l->producers().check_marker(10, 0, 3).verdict, sequence_verdict::coordinator_fenced);
}

TEST_F(TxnLogTest, AbortedTransactionsAndOpenOnesSurviveRestartsCrashesAndTruncation) {
  log_config c;
  c.segment_bytes = 500;
  int64_t first_open = -1;
  {
    auto l = open(false, c);
    for (int i = 0; i < 6; ++i) {
      txn(*l, 20 + i, 0);
      marker(*l, 20 + i, i % 2 == 0);  // 20, 22, 24 commit; 21, 23, 25 abort
    }
    first_open = txn(*l, 40, 0);       // left open
    EXPECT_EQ(l->aborted_transactions(0, 1000).size(), 3u);
    ASSERT_TRUE(l->close().ok());
  }
  EXPECT_FALSE(txn_index_files().empty());
  {
    auto l = open(false, c);  // from the .txnindex files and the snapshot
    auto aborted = l->aborted_transactions(0, 1000);
    ASSERT_EQ(aborted.size(), 3u);
    EXPECT_EQ(aborted[0].producer_id, 21);
    EXPECT_EQ(aborted[2].producer_id, 25);
    EXPECT_EQ(l->last_stable_offset(1000), first_open);
    marker(*l, 41, false);  // a marker for a producer with nothing open: nothing to abort
    EXPECT_EQ(l->aborted_transactions(0, 1000).size(), 3u);
    // No close: a crash. Recovery replays and finds the same.
  }
  {
    auto l = open(true, c);
    EXPECT_EQ(l->aborted_transactions(0, 1000).size(), 3u);
    EXPECT_EQ(l->last_stable_offset(1000), first_open);
    // A follower truncating below the last abort marker forgets it.
    auto last = l->aborted_transactions(0, 1000).back();
    ASSERT_TRUE(l->truncate_to(last.last_offset).ok());
    EXPECT_EQ(l->aborted_transactions(0, 1000).size(), 2u);
    EXPECT_EQ(l->last_stable_offset(1000), last.first_offset);  // 25's transaction is open again
    ASSERT_TRUE(l->close().ok());
  }
  {
    auto l = open(false, c);
    EXPECT_EQ(l->aborted_transactions(0, 1000).size(), 2u);
    ASSERT_TRUE(l->truncate_fully_and_start_at(500).ok());
    EXPECT_TRUE(l->aborted_transactions(0, 1000).empty());
    EXPECT_TRUE(txn_index_files().empty());
    EXPECT_EQ(l->last_stable_offset(500), 500);
  }
}

}  // namespace
