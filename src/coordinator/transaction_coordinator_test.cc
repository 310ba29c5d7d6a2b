// The transaction coordinator state machine driven as plain function calls
// with a fake clock: the transitions, the fencing, the error codes, the
// records it writes (golden bytes) and rebuilding from them.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "coordinator/transaction_coordinator.h"

namespace gregor::coordinator {
namespace {

using protocol::error_code;

struct harness {
  harness() : sm(txn_config{}) {
    for (int32_t p = 0; p < 50; ++p) {
      sm.begin_load(p);
      sm.end_load(p);
    }
  }
  // Runs a step as the driver would after a successful write.
  txn_step commit(txn_step s) {
    if (s.target) sm.complete(*s.target);
    return s;
  }
  txn_step init(const std::string& id, int32_t timeout = 60000, int64_t pid = -1, int16_t epoch = -1) {
    return commit(sm.init_producer_id(id, timeout, pid, epoch, now, [this] { return std::optional<int64_t>(next_pid++); }));
  }
  txn_step add(const std::string& id, int64_t pid, int16_t epoch, std::vector<topic_partition> tps) {
    return commit(sm.add_partitions(id, pid, epoch, tps, now));
  }
  txn_step end(const std::string& id, int64_t pid, int16_t epoch, bool commit_) {
    return commit(sm.end_txn(id, pid, epoch, commit_, now));
  }
  txn_state state(const std::string& id) { return sm.find(id)->state; }

  transaction_coordinator sm;
  int64_t now = 1000;
  int64_t next_pid = 7000;
};

TEST(TransactionCoordinator, PartitionForMatchesJavaHashCode) {
  // "abc".hashCode() == 96354; 96354 % 50 == 4.
  EXPECT_EQ(partition_for_transactional_id("abc", 50), 4);
  // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Kafka's Utils.abs gives 0.
  EXPECT_EQ(partition_for_transactional_id("polygenelubricants", 50), 0);
}

TEST(TransactionCoordinator, InitNewIdThenBumpEpoch) {
  harness h;
  auto s = h.init("t");
  ASSERT_EQ(s.error, error_code::none);
  ASSERT_TRUE(s.target);
  EXPECT_EQ(s.target->producer_id, 7000);
  EXPECT_EQ(s.target->producer_epoch, 0);
  EXPECT_EQ(h.state("t"), txn_state::empty);
  auto s2 = h.init("t");
  ASSERT_EQ(s2.error, error_code::none);
  EXPECT_EQ(s2.target->producer_id, 7000);
  EXPECT_EQ(s2.target->producer_epoch, 1);
  EXPECT_EQ(h.next_pid, 7001);  // no new id for a bump
}

TEST(TransactionCoordinator, InvalidTimeout) {
  harness h;
  EXPECT_EQ(h.init("t", 0).error, error_code::invalid_transaction_timeout);
  EXPECT_EQ(h.init("t", 900001).error, error_code::invalid_transaction_timeout);
  EXPECT_EQ(h.init("t", 900000).error, error_code::none);
}

TEST(TransactionCoordinator, EpochOverflowTakesNewProducerId) {
  harness h;
  h.init("t");
  txn_metadata m = *h.sm.find("t");
  m.producer_epoch = 32766;
  h.sm.complete(m);
  auto s = h.init("t");
  ASSERT_EQ(s.error, error_code::none);
  EXPECT_EQ(s.target->producer_id, 7001);
  EXPECT_EQ(s.target->producer_epoch, 0);
  EXPECT_EQ(s.target->previous_producer_id, 7000);
}

TEST(TransactionCoordinator, CommitFlow) {
  harness h;
  h.init("t");
  EXPECT_EQ(h.add("t", 7000, 0, {{"a", 0}, {"a", 1}}).error, error_code::none);
  EXPECT_EQ(h.state("t"), txn_state::ongoing);
  EXPECT_EQ(h.sm.find("t")->start_ms, 1000);
  // Adding what is already there writes nothing.
  auto again = h.sm.add_partitions("t", 7000, 0, {{"a", 1}}, h.now);
  EXPECT_EQ(again.error, error_code::none);
  EXPECT_FALSE(again.target);
  auto off = h.commit(h.sm.add_offsets("t", 7000, 0, "g", h.now));
  ASSERT_TRUE(off.target);
  EXPECT_EQ(h.sm.find("t")->partitions.count({"__consumer_offsets", partition_for_group("g", 50)}), 1u);
  auto e = h.end("t", 7000, 0, true);
  ASSERT_EQ(e.error, error_code::none);
  EXPECT_TRUE(e.then_markers);
  EXPECT_EQ(h.state("t"), txn_state::prepare_commit);
  // While the markers go out: CONCURRENT_TRANSACTIONS, or INVALID_TXN_STATE for the other outcome.
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, true, h.now).error, error_code::concurrent_transactions);
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, false, h.now).error, error_code::invalid_txn_state);
  EXPECT_EQ(h.sm.add_partitions("t", 7000, 0, {{"b", 0}}, h.now).error, error_code::concurrent_transactions);
  EXPECT_EQ(h.init("t").error, error_code::concurrent_transactions);
  auto c = h.commit(h.sm.complete_commit_or_abort("t", h.now));
  ASSERT_EQ(c.error, error_code::none);
  EXPECT_EQ(h.state("t"), txn_state::complete_commit);
  EXPECT_TRUE(h.sm.find("t")->partitions.empty());
  // A retried commit succeeds; an abort now is a wrong transition.
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, true, h.now).error, error_code::none);
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, false, h.now).error, error_code::invalid_txn_state);
  // The next transaction starts afresh.
  h.now = 5000;
  EXPECT_EQ(h.add("t", 7000, 0, {{"b", 0}}).error, error_code::none);
  EXPECT_EQ(h.sm.find("t")->partitions.size(), 1u);
  EXPECT_EQ(h.sm.find("t")->start_ms, 5000);
}

TEST(TransactionCoordinator, EndWithoutTransactionIsInvalidState) {
  harness h;
  h.init("t");
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, true, h.now).error, error_code::invalid_txn_state);
  EXPECT_EQ(h.sm.end_txn("nope", 7000, 0, true, h.now).error, error_code::invalid_producer_id_mapping);
  EXPECT_EQ(h.sm.end_txn("t", 1, 0, true, h.now).error, error_code::invalid_producer_id_mapping);
}

TEST(TransactionCoordinator, OldEpochIsFenced) {
  harness h;
  h.init("t");
  h.init("t");  // epoch 1
  EXPECT_EQ(h.sm.add_partitions("t", 7000, 0, {{"a", 0}}, h.now).error, error_code::producer_fenced);
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, true, h.now).error, error_code::producer_fenced);
  EXPECT_EQ(fenced_error_for_version(error_code::producer_fenced, 1, 2), error_code::invalid_producer_epoch);
  EXPECT_EQ(fenced_error_for_version(error_code::producer_fenced, 2, 2), error_code::producer_fenced);
  EXPECT_EQ(h.add("t", 7000, 1, {{"a", 0}}).error, error_code::none);
}

TEST(TransactionCoordinator, InitDuringOngoingFencesAndAborts) {
  harness h;
  h.init("t");
  h.add("t", 7000, 0, {{"a", 0}});
  auto s = h.init("t");
  ASSERT_EQ(s.error, error_code::none);
  EXPECT_TRUE(s.fenced_ongoing);
  EXPECT_TRUE(s.then_markers);
  EXPECT_EQ(s.target->state, txn_state::prepare_abort);
  EXPECT_EQ(s.target->producer_epoch, 1);
  // The zombie is fenced.
  EXPECT_EQ(h.sm.add_partitions("t", 7000, 0, {{"a", 1}}, h.now).error, error_code::producer_fenced);
  h.commit(h.sm.complete_commit_or_abort("t", h.now));
  EXPECT_EQ(h.state("t"), txn_state::complete_abort);
  auto s2 = h.init("t");
  ASSERT_EQ(s2.error, error_code::none);
  EXPECT_EQ(s2.target->producer_epoch, 2);
}

TEST(TransactionCoordinator, Kip360ExpectedEpoch) {
  harness h;
  h.init("t");
  EXPECT_EQ(h.init("t", 60000, 7000, 5).error, error_code::producer_fenced);
  auto s = h.init("t", 60000, 7000, 0);
  ASSERT_EQ(s.error, error_code::none);
  EXPECT_EQ(s.target->producer_epoch, 1);
  // The same request again (its answer was lost): the same answer, no write.
  auto r = h.init("t", 60000, 7000, 0);
  EXPECT_EQ(r.error, error_code::none);
  EXPECT_FALSE(r.target);
  EXPECT_EQ(r.producer_epoch, 1);
}

TEST(TransactionCoordinator, PendingWriteAnswersConcurrentTransactions) {
  harness h;
  h.init("t");
  auto s = h.sm.add_partitions("t", 7000, 0, {{"a", 0}}, h.now);  // not completed yet
  ASSERT_TRUE(s.target);
  EXPECT_EQ(h.sm.add_partitions("t", 7000, 0, {{"a", 1}}, h.now).error, error_code::concurrent_transactions);
  h.sm.abandon("t");  // the write failed: nothing changed
  EXPECT_EQ(h.state("t"), txn_state::empty);
  EXPECT_EQ(h.add("t", 7000, 0, {{"a", 1}}).error, error_code::none);
}

TEST(TransactionCoordinator, VerifyOnly) {
  harness h;
  h.init("t");
  h.add("t", 7000, 0, {{"a", 0}});
  auto r = h.sm.verify_partitions("t", 7000, 0, {{"a", 0}, {"a", 1}});
  EXPECT_EQ(r.error, error_code::none);
  ASSERT_EQ(r.per_partition.size(), 2u);
  EXPECT_EQ(r.per_partition[0], error_code::none);
  EXPECT_EQ(r.per_partition[1], error_code::invalid_txn_state);
  EXPECT_EQ(h.sm.verify_partitions("t", 7000, 3, {{"a", 0}}).error, error_code::producer_fenced);
  EXPECT_FALSE(h.sm.pending("t"));  // verify never writes
}

TEST(TransactionCoordinator, TimeoutFencesAndAborts) {
  harness h;
  h.init("t", 1000);
  h.add("t", 7000, 0, {{"a", 0}});
  EXPECT_TRUE(h.sm.timed_out(h.now + 1000).empty());
  auto ids = h.sm.timed_out(h.now + 1001);
  ASSERT_EQ(ids.size(), 1u);
  auto s = h.commit(h.sm.abort_timed_out("t", h.now + 1001));
  ASSERT_EQ(s.error, error_code::none);
  EXPECT_EQ(h.state("t"), txn_state::prepare_abort);
  EXPECT_EQ(h.sm.find("t")->producer_epoch, 1);
  EXPECT_EQ(h.sm.end_txn("t", 7000, 0, true, h.now).error, error_code::producer_fenced);
}

// transactional.id.expiration.ms: an id with nothing open and idle that long
// is written as a tombstone and forgotten; an open transaction never expires.
TEST(TransactionCoordinator, IdleIdsExpireAsTombstones) {
  harness h;
  const int64_t week = txn_config{}.transactional_id_expiration_ms;
  int64_t pid = h.init("idle").target->producer_id;
  auto busy = h.init("busy").target;
  h.add("busy", busy->producer_id, busy->producer_epoch, {{"t", 0}});
  h.now += week - 1;
  EXPECT_TRUE(h.sm.expired(h.now).empty());
  h.now += 1;
  EXPECT_EQ(h.sm.expired(h.now), std::vector<std::string>{"idle"}) << "busy has a transaction open";

  auto s = h.sm.expire("idle", h.now);
  ASSERT_EQ(s.error, error_code::none);
  ASSERT_TRUE(s.target);
  EXPECT_EQ(s.target->state, txn_state::dead);
  auto rec = transaction_log_record(*s.target);
  EXPECT_FALSE(rec.value) << "a tombstone";
  EXPECT_EQ(h.sm.init_producer_id("idle", 60000, -1, -1, h.now, [] { return std::optional<int64_t>(1); }).error,
            error_code::concurrent_transactions)
      << "while the tombstone is being written";
  h.sm.complete(*s.target);
  EXPECT_EQ(h.sm.find("idle"), nullptr);
  EXPECT_NE(h.init("idle").target->producer_id, pid) << "a new producer id after expiry";

  // Loading the tombstone forgets the id too.
  h.sm.begin_load(h.sm.partition_for("busy"));
  auto loaded = transaction_log_record(*h.sm.find("busy"));
  h.sm.replay(h.sm.partition_for("busy"), loaded.key, std::nullopt);
  h.sm.end_load(h.sm.partition_for("busy"));
  EXPECT_EQ(h.sm.find("busy"), nullptr);
}

TEST(TransactionCoordinator, NotCoordinatorAndLoading) {
  transaction_coordinator sm(txn_config{});
  auto none = [] { return std::optional<int64_t>(1); };
  int32_t p = partition_for_transactional_id("t", 50);
  EXPECT_EQ(sm.init_producer_id("t", 1000, -1, -1, 0, none).error, error_code::not_coordinator);
  sm.begin_load(p);
  EXPECT_EQ(sm.init_producer_id("t", 1000, -1, -1, 0, none).error, error_code::coordinator_load_in_progress);
  sm.end_load(p);
  auto s = sm.init_producer_id("t", 1000, -1, -1, 0, none);
  ASSERT_EQ(s.error, error_code::none);
  sm.complete(*s.target);
  sm.unload(p);
  EXPECT_EQ(sm.find("t"), nullptr);
  EXPECT_EQ(sm.describe("t").error_code, static_cast<int16_t>(error_code::not_coordinator));
}

TEST(TransactionCoordinator, GoldenRecordBytes) {
  txn_metadata m;
  m.transactional_id = "t1";
  m.producer_id = 1000;
  m.producer_epoch = 2;
  m.timeout_ms = 60000;
  m.state = txn_state::ongoing;
  m.partitions = {{"a", 0}, {"a", 3}};
  m.last_update_ms = 5;
  m.start_ms = 4;
  auto r = transaction_log_record(m);
  // Key: version 0, then TransactionalId as an int16-length string.
  bytes key{0, 0, 0, 2, 't', '1'};
  EXPECT_EQ(r.key, key);
  // Value v0: ProducerId int64, ProducerEpoch int16, TransactionTimeoutMs
  // int32, TransactionStatus int8, TransactionPartitions (int32 count; Topic
  // int16-length string, PartitionIds int32 count + int32s),
  // TransactionLastUpdateTimestampMs int64, TransactionStartTimestampMs int64.
  bytes value{0, 0,                                     // version
              0, 0, 0, 0, 0, 0, 0x03, 0xE8,             // producer id 1000
              0, 2,                                     // epoch
              0, 0, 0xEA, 0x60,                         // 60000 ms
              1,                                        // Ongoing
              0, 0, 0, 1,                               // one topic
              0, 1, 'a',                                // "a"
              0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3,       // [0, 3]
              0, 0, 0, 0, 0, 0, 0, 5,                   // last update
              0, 0, 0, 0, 0, 0, 0, 4};                  // start
  ASSERT_TRUE(r.value);
  EXPECT_EQ(*r.value, value);
  std::string id;
  auto back = decode_transaction_log_record(bytes_view(r.key), bytes_view(*r.value), &id);
  ASSERT_TRUE(back);
  EXPECT_EQ(id, "t1");
  EXPECT_EQ(back->producer_id, 1000);
  EXPECT_EQ(back->producer_epoch, 2);
  EXPECT_EQ(back->state, txn_state::ongoing);
  EXPECT_EQ(back->partitions, m.partitions);
  EXPECT_EQ(back->start_ms, 4);
}

TEST(TransactionCoordinator, EmptyStateHasNullPartitions) {
  txn_metadata m;
  m.transactional_id = "t1";
  m.state = txn_state::empty;
  auto r = transaction_log_record(m);
  // After pid (8), epoch (2), timeout (4), status (1): a null array (-1).
  ASSERT_GE(r.value->size(), 2u + 15u + 4u);
  EXPECT_EQ((*r.value)[17], 0xFF);
  EXPECT_EQ((*r.value)[20], 0xFF);
}

TEST(TransactionCoordinator, LoadRebuildsAndReportsUnfinished) {
  harness h;
  h.init("t");
  h.add("t", 7000, 0, {{"a", 0}});
  h.end("t", 7000, 0, true);
  h.init("u");
  std::vector<offsets_record> log;
  log.push_back(transaction_log_record(*h.sm.find("t")));
  log.push_back(transaction_log_record(*h.sm.find("u")));
  transaction_coordinator fresh(txn_config{});
  int32_t pt = partition_for_transactional_id("t", 50);
  int32_t pu = partition_for_transactional_id("u", 50);
  for (int32_t p : {pt, pu}) {
    if (fresh.loading(p)) continue;
    fresh.begin_load(p);
  }
  for (auto& r : log) {
    std::string id;
    decode_transaction_log_record(bytes_view(r.key), std::nullopt, &id);
    fresh.replay(partition_for_transactional_id(id, 50), bytes_view(r.key), bytes_view(*r.value));
  }
  auto unfinished = fresh.end_load(pt);
  if (pu != pt) fresh.end_load(pu);
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[0], "t");
  EXPECT_EQ(fresh.find("t")->state, txn_state::prepare_commit);
  EXPECT_EQ(fresh.find("u")->state, txn_state::empty);
}

TEST(TransactionCoordinator, ListAndDescribe) {
  harness h;
  h.init("t");
  h.add("t", 7000, 0, {{"a", 0}, {"b", 2}});
  h.init("u");
  protocol::list_transactions_request req;
  auto all = h.sm.list(1, req, h.now);
  EXPECT_EQ(all.transaction_states.size(), 2u);
  req.state_filters = {"Ongoing", "Bogus"};
  auto on = h.sm.list(1, req, h.now);
  ASSERT_EQ(on.transaction_states.size(), 1u);
  EXPECT_EQ(on.transaction_states[0].transactional_id, "t");
  EXPECT_EQ(on.transaction_states[0].transaction_state, "Ongoing");
  ASSERT_EQ(on.unknown_state_filters.size(), 1u);
  auto d = h.sm.describe("t");
  EXPECT_EQ(d.error_code, 0);
  EXPECT_EQ(d.producer_id, 7000);
  EXPECT_EQ(d.transaction_timeout_ms, 60000);
  EXPECT_EQ(d.topics.size(), 2u);
  EXPECT_EQ(h.sm.describe("zzz").error_code, static_cast<int16_t>(error_code::transactional_id_not_found));
}

}  // namespace
}  // namespace gregor::coordinator
