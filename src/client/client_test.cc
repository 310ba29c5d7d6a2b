// Unit tests of the client (murmur2, assignors, consumer protocol encoding,
// properties) and end-to-end tests against librdkafka's mock cluster: a
// second, independent implementation of the broker side, started in-process.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <limits>
#include <set>

#include "client/admin.h"
#include "client/assignor.h"
#include "client/consumer.h"
#include "client/idempotence.h"
#include "client/producer.h"

namespace gregor::client {
namespace {

bytes b(std::string_view s) { return bytes(s.begin(), s.end()); }

// Kafka's own test vectors (UtilsTest.testMurmur2).
TEST(Murmur2, MatchesKafkaJavaClient) {
  EXPECT_EQ(murmur2(b("21")), -973932308);
  EXPECT_EQ(murmur2(b("foobar")), -790332482);
  EXPECT_EQ(murmur2(b("a-little-bit-long-string")), -985981536);
  EXPECT_EQ(murmur2(b("a-little-bit-longer-string")), -1486304829);
  EXPECT_EQ(murmur2(b("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")), -58897971);
  EXPECT_EQ(murmur2(b("abc")), 479470107);
}

TEST(Murmur2, PartitionIsPositive) {
  for (int i = 0; i < 1000; ++i) {
    auto k = b(std::to_string(i * 7919));
    int32_t p = partition_for_key(k, 7);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, 7);
  }
}

TEST(ConsumerProtocol, SubscriptionAndAssignmentRoundTrip) {
  consumer_subscription s;
  s.topics = {"a", "b"};
  s.owned_partitions = {{"a", 0}, {"a", 2}, {"b", 1}};
  auto d = decode_subscription(encode_subscription(s));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->topics, s.topics);
  EXPECT_EQ(d->owned_partitions, s.owned_partitions);
  consumer_assignment a;
  a.partitions = {{"a", 1}, {"b", 0}, {"b", 3}};
  auto da = decode_assignment(encode_assignment(a));
  ASSERT_TRUE(da);
  EXPECT_EQ(da->partitions, a.partitions);
  // A v0 subscription (no owned partitions) decodes too.
  s.version = 0;
  d = decode_subscription(encode_subscription(s));
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->owned_partitions.empty());
  // An empty assignment (a member that gets nothing).
  EXPECT_TRUE(decode_assignment({}));
}

TEST(Assignor, RangeMatchesKafka) {
  std::vector<member_subscription> m = {{"c1", {"t1", "t2"}, {}}, {"c2", {"t1", "t2"}, {}}};
  auto a = assign_partitions("range", m, {{"t1", 3}, {"t2", 3}});
  std::vector<topic_partition> c1 = {{"t1", 0}, {"t1", 1}, {"t2", 0}, {"t2", 1}};
  std::vector<topic_partition> c2 = {{"t1", 2}, {"t2", 2}};
  EXPECT_EQ(a["c1"], c1);
  EXPECT_EQ(a["c2"], c2);
}

TEST(Assignor, RoundRobinMatchesKafka) {
  std::vector<member_subscription> m = {{"c1", {"t1", "t2"}, {}}, {"c2", {"t1", "t2"}, {}}};
  auto a = assign_partitions("roundrobin", m, {{"t1", 3}, {"t2", 3}});
  std::vector<topic_partition> c1 = {{"t1", 0}, {"t1", 2}, {"t2", 1}};
  std::vector<topic_partition> c2 = {{"t1", 1}, {"t2", 0}, {"t2", 2}};
  EXPECT_EQ(a["c1"], c1);
  EXPECT_EQ(a["c2"], c2);
}

TEST(Assignor, CooperativeStickyKeepsOwnedAndNeverMovesDirectly) {
  // c1 owned everything; c2 joins. c1 keeps half; the other half is not given
  // to c2 in this round (c1 must revoke first).
  std::vector<topic_partition> all;
  for (int p = 0; p < 4; ++p) all.push_back({"t", p});
  std::vector<member_subscription> m = {{"c1", {"t"}, all}, {"c2", {"t"}, {}}};
  auto a = assign_partitions("cooperative-sticky", m, {{"t", 4}});
  EXPECT_EQ(a["c1"].size(), 2u);
  EXPECT_TRUE(a["c2"].empty());
  // Next round: c1 owns its 2; c2 gets the rest.
  m[0].owned = a["c1"];
  auto b2 = assign_partitions("cooperative-sticky", m, {{"t", 4}});
  EXPECT_EQ(b2["c1"], a["c1"]);
  EXPECT_EQ(b2["c2"].size(), 2u);
  std::set<topic_partition> u(b2["c1"].begin(), b2["c1"].end());
  u.insert(b2["c2"].begin(), b2["c2"].end());
  EXPECT_EQ(u.size(), 4u);
}

TEST(Config, KafkaPropertyNames) {
  producer_config p;
  EXPECT_TRUE(p.set("acks", "all").ok());
  EXPECT_EQ(p.acks, -1);
  EXPECT_TRUE(p.set("compression.type", "zstd").ok());
  EXPECT_TRUE(p.set("linger.ms", "7").ok());
  EXPECT_EQ(p.linger_ms, 7);
  EXPECT_FALSE(p.set("linger.ms", "soon").ok());
  EXPECT_FALSE(p.set("no.such.thing", "1").ok());
  consumer_config c;
  EXPECT_TRUE(c.set("partition.assignment.strategy", "roundrobin,cooperative-sticky").ok());
  EXPECT_FALSE(c.set("partition.assignment.strategy", "sticky-ish").ok());
  EXPECT_TRUE(c.set("auto.offset.reset", "earliest").ok());
  EXPECT_FALSE(parse_bootstrap("nohostport").ok());
  EXPECT_TRUE(parse_bootstrap("a:1,b:2").ok());
}

// ---- idempotence: configuration and the sequence bookkeeping, as plain calls ----

TEST(Idempotence, ConfigDefaultsAndConflicts) {
  producer_config p;
  EXPECT_TRUE(p.idempotence());  // on by default, as Kafka 3.0+
  EXPECT_TRUE(p.validate().ok());
  // Not asked for, conflicting: silently off.
  ASSERT_TRUE(p.set("acks", "1").ok());
  EXPECT_FALSE(p.idempotence());
  EXPECT_TRUE(p.validate().ok());
  // Asked for, conflicting: a configuration error that says why.
  ASSERT_TRUE(p.set("enable.idempotence", "true").ok());
  auto v = p.validate();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.err().message.find("enable.idempotence=true"), std::string::npos) << v.err().message;
  EXPECT_NE(v.err().message.find("acks"), std::string::npos) << v.err().message;
  ASSERT_TRUE(p.set("acks", "all").ok());
  EXPECT_TRUE(p.validate().ok());
  EXPECT_TRUE(p.idempotence());
  ASSERT_TRUE(p.set("max.in.flight.requests.per.connection", "6").ok());
  v = p.validate();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.err().message.find("max.in.flight.requests.per.connection"), std::string::npos);
  ASSERT_TRUE(p.set("max.in.flight.requests.per.connection", "5").ok());
  ASSERT_TRUE(p.set("retries", "0").ok());
  EXPECT_FALSE(p.validate().ok());
  ASSERT_TRUE(p.set("enable.idempotence", "false").ok());
  EXPECT_TRUE(p.validate().ok());
  EXPECT_FALSE(p.idempotence());
  EXPECT_FALSE(p.set("enable.idempotence", "maybe").ok());
}

TEST(Transactions, ConfigImpliesIdempotence) {
  producer_config p;
  ASSERT_TRUE(p.set("transactional.id", "tx-1").ok());
  ASSERT_TRUE(p.set("transaction.timeout.ms", "10000").ok());
  EXPECT_EQ(p.transaction_timeout_ms, 10000);
  EXPECT_TRUE(p.validate().ok());
  EXPECT_TRUE(p.idempotence());
  ASSERT_TRUE(p.set("enable.idempotence", "false").ok());
  auto v = p.validate();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.err().message.find("enable.idempotence=false"), std::string::npos) << v.err().message;
  EXPECT_NE(v.err().message.find("tx-1"), std::string::npos) << v.err().message;
  ASSERT_TRUE(p.set("enable.idempotence", "true").ok());
  ASSERT_TRUE(p.set("acks", "1").ok());  // needs acks=all, like any idempotent producer
  v = p.validate();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.err().message.find("acks must be all"), std::string::npos) << v.err().message;
  EXPECT_FALSE(p.set("transaction.timeout.ms", "0").ok());
  producer_config d;
  EXPECT_EQ(d.transaction_timeout_ms, 60000);
  EXPECT_FALSE(d.transactional_id.has_value());
}

TEST(Idempotence, SequencesWrapAtInt32Max) {
  const int32_t max = std::numeric_limits<int32_t>::max();
  EXPECT_EQ(increment_sequence(0, 5), 5);
  EXPECT_EQ(increment_sequence(max, 1), 0);
  EXPECT_EQ(increment_sequence(max - 2, 5), 2);
  EXPECT_EQ(increment_sequence(max - 5, 5), max);
  batch_sequence b;
  b.base_sequence = max - 1;
  b.record_count = 4;
  EXPECT_EQ(b.last_sequence(), 1);
}

const topic_partition kA{"t", 0};
const topic_partition kB{"t", 1};
constexpr int16_t kOutOfOrder = 45;
constexpr int16_t kNotLeader = 6;
constexpr int16_t kMessageTooLarge = 10;
constexpr int16_t kUnknownProducerId = 59;

batch_sequence records(int32_t n) {
  batch_sequence b;
  b.record_count = n;
  return b;
}

TEST(Idempotence, AssignsSequencesPerPartitionOnceThereIsAnId) {
  idempotence_state s;
  auto b1 = records(3), b2 = records(2), c1 = records(4);
  EXPECT_TRUE(s.needs_producer_id());
  EXPECT_FALSE(s.may_drain(kA, b1));  // nothing goes before InitProducerId
  s.set_producer_id({7, 0});
  ASSERT_TRUE(s.may_drain(kA, b1));
  s.assign(kA, b1);
  s.assign(kA, b2);
  s.assign(kB, c1);
  EXPECT_EQ(b1.base_sequence, 0);
  EXPECT_EQ(b2.base_sequence, 3);
  EXPECT_EQ(c1.base_sequence, 0);
  EXPECT_EQ(b2.id, (producer_id_and_epoch{7, 0}));
  EXPECT_EQ(s.next_sequence(kA), 5);
  EXPECT_EQ(s.next_sequence(kB), 4);
  s.on_acknowledged(kA, b1, 100);
  s.on_acknowledged(kA, b2, 103);
  EXPECT_EQ(s.last_acked_sequence(kA), 4);
  EXPECT_EQ(s.in_flight(kA), 0u);
}

TEST(Idempotence, AssignmentWrapsAtInt32Max) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto big = records(std::numeric_limits<int32_t>::max() - 1);
  s.assign(kA, big);
  s.on_acknowledged(kA, big, 0);
  EXPECT_EQ(s.next_sequence(kA), std::numeric_limits<int32_t>::max() - 1);
  auto b = records(3), c = records(1);
  s.assign(kA, b);
  EXPECT_EQ(b.base_sequence, std::numeric_limits<int32_t>::max() - 1);
  EXPECT_EQ(b.last_sequence(), 0);
  EXPECT_EQ(s.next_sequence(kA), 1);
  s.on_acknowledged(kA, b, 10);
  s.assign(kA, c);
  EXPECT_EQ(c.base_sequence, 1);
  // The batch after a wrapped one is the next expected: its gap is real.
  EXPECT_TRUE(s.can_retry(kA, c, kOutOfOrder, 0, false));
  EXPECT_TRUE(s.bump_required());
}

TEST(Idempotence, RetriesGoOneAtATimeInSequenceOrder) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto b1 = records(1), b2 = records(1), b3 = records(1);
  s.assign(kA, b1);
  s.assign(kA, b2);
  s.assign(kA, b3);
  // All three come back NOT_LEADER: retried unchanged, no bump.
  for (auto* b : {&b1, &b2, &b3}) EXPECT_TRUE(s.can_retry(kA, *b, kNotLeader, -1, true));
  EXPECT_FALSE(s.needs_producer_id());
  EXPECT_EQ(s.first_in_flight_sequence(kA), 0);
  EXPECT_TRUE(s.may_drain(kA, b1));
  EXPECT_FALSE(s.may_drain(kA, b2));  // waits for b1
  s.on_acknowledged(kA, b1, 0);
  EXPECT_TRUE(s.may_drain(kA, b2));
  EXPECT_FALSE(s.may_drain(kA, b3));
  EXPECT_EQ(b2.base_sequence, 1);  // never renumbered: the broker can spot a duplicate
  auto fresh = records(1);
  EXPECT_TRUE(s.may_drain(kA, fresh));  // a new batch may follow the retries (Kafka's rule)
}

TEST(Idempotence, OutOfOrderForTheNextBatchBumpsAndRewrites) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto b1 = records(2), b2 = records(2), b3 = records(3);
  s.assign(kA, b1);
  s.assign(kA, b2);
  s.assign(kA, b3);
  s.on_acknowledged(kA, b1, 0);
  // b2 is the next expected batch: a real gap on the broker.
  EXPECT_TRUE(s.can_retry(kA, b2, kOutOfOrder, 0, false));
  EXPECT_TRUE(s.bump_required());
  EXPECT_TRUE(s.needs_producer_id());
  EXPECT_FALSE(s.may_drain(kA, b2));  // nothing until the new id
  // b3 follows the gap: retried, without asking again.
  EXPECT_TRUE(s.can_retry(kA, b3, kOutOfOrder, 0, false));
  s.set_producer_id({8, 0});  // InitProducerId's answer
  EXPECT_FALSE(s.needs_producer_id());
  EXPECT_EQ(b2.id, (producer_id_and_epoch{8, 0}));
  EXPECT_EQ(b2.base_sequence, 0);
  EXPECT_TRUE(b2.sequence_reset);
  EXPECT_EQ(b3.base_sequence, 2);
  EXPECT_EQ(s.next_sequence(kA), 5);
  EXPECT_TRUE(s.may_drain(kA, b2));
  EXPECT_FALSE(s.may_drain(kA, b3));
  // An OUT_OF_ORDER for a rewritten batch after it is retried, no new bump.
  EXPECT_TRUE(s.can_retry(kA, b3, kOutOfOrder, 0, false));
  EXPECT_FALSE(s.bump_required());
}

TEST(Idempotence, OutOfOrderBehindAFailedBatchIsRetriedWithoutBump) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto b1 = records(1), b2 = records(1);
  s.assign(kA, b1);
  s.assign(kA, b2);
  EXPECT_TRUE(s.can_retry(kA, b1, kNotLeader, -1, true));
  EXPECT_TRUE(s.can_retry(kA, b2, kOutOfOrder, 0, false));  // b1 is missing, not b2
  EXPECT_FALSE(s.bump_required());
}

TEST(Idempotence, BatchFailedForGoodBumpsUnlessRetriesWereUsedUp) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto b1 = records(1);
  s.assign(kA, b1);
  EXPECT_FALSE(s.can_retry(kA, b1, kMessageTooLarge, 0, false));
  s.on_failed(kA, b1, kMessageTooLarge, /*adjust_sequences=*/true);
  EXPECT_TRUE(s.bump_required());
  s.set_producer_id({8, 0});
  auto b2 = records(1);
  s.assign(kA, b2);
  EXPECT_EQ(b2.base_sequence, 0);  // the partition restarted under the new id
  EXPECT_EQ(b2.id.producer_id, 8);
  s.on_failed(kA, b2, kNotLeader, /*adjust_sequences=*/false);
  EXPECT_FALSE(s.bump_required());
}

TEST(Idempotence, ExpiredBatchLeavesPartitionUnresolvedUntilLaterOnesSettle) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  // b1 expires in retry, but b2 (sent after it) is acknowledged: b1 was written.
  auto b1 = records(1), b2 = records(1);
  s.assign(kA, b1);
  s.assign(kA, b2);
  s.on_expired_in_retry(kA, b1);
  s.on_failed(kA, b1, 7, false);
  auto fresh = records(1);
  EXPECT_FALSE(s.may_drain(kA, fresh));
  s.maybe_resolve_sequences();
  EXPECT_TRUE(s.has_unresolved_sequence(kA));  // b2 still in flight
  s.on_acknowledged(kA, b2, 1);
  s.maybe_resolve_sequences();
  EXPECT_FALSE(s.has_unresolved_sequence(kA));
  EXPECT_FALSE(s.bump_required());
  EXPECT_TRUE(s.may_drain(kA, fresh));
  // Now one expires with nothing after it: nobody knows, so bump.
  s.assign(kA, fresh);
  s.on_expired_in_retry(kA, fresh);
  s.on_failed(kA, fresh, 7, false);
  s.maybe_resolve_sequences();
  EXPECT_TRUE(s.bump_required());
}

TEST(Idempotence, OutOfOrderRightAfterAnExpiredBatchBumps) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto b1 = records(2), b2 = records(1);
  s.assign(kA, b1);
  s.assign(kA, b2);
  s.on_expired_in_retry(kA, b1);
  s.on_failed(kA, b1, 7, false);
  EXPECT_TRUE(s.can_retry(kA, b2, kOutOfOrder, 0, false));  // b1 never made it
  EXPECT_TRUE(s.bump_required());
  EXPECT_TRUE(s.rewrite_pending(kA));
}

TEST(Idempotence, OtherPartitionsMoveToTheNewIdWhenTheirBatchesComplete) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto a1 = records(1), b1 = records(1);
  s.assign(kA, a1);
  s.assign(kB, b1);
  EXPECT_TRUE(s.can_retry(kA, a1, kOutOfOrder, 0, false));  // kA asks for the bump
  EXPECT_TRUE(s.can_retry(kB, b1, kNotLeader, -1, true));
  s.set_producer_id({9, 0});
  EXPECT_EQ(b1.id.producer_id, 7);  // kB's batch keeps its id and sequence
  EXPECT_TRUE(s.may_drain(kB, b1));
  auto b2 = records(1);
  EXPECT_FALSE(s.may_drain(kB, b2));  // not under the new id before b1 completes
  s.on_acknowledged(kB, b1, 0);
  EXPECT_TRUE(s.may_drain(kB, b2));
  s.assign(kB, b2);
  EXPECT_EQ(b2.id.producer_id, 9);
  EXPECT_EQ(b2.base_sequence, 0);
}

TEST(Idempotence, UnknownProducerId) {
  idempotence_state s;
  s.set_producer_id({7, 0});
  auto b1 = records(1);
  s.assign(kA, b1);
  EXPECT_TRUE(s.can_retry(kA, b1, kUnknownProducerId, -1, false));  // no log start offset: just retry
  EXPECT_FALSE(s.bump_required());
  EXPECT_TRUE(s.can_retry(kA, b1, kUnknownProducerId, 0, false));
  EXPECT_TRUE(s.bump_required());
}

TEST(Unreachable, ClearErrors) {
  admin_config cfg;
  cfg.bootstrap_servers = "127.0.0.1:1";
  cfg.socket_connection_setup_timeout_ms = 2000;
  admin_client admin(cfg);
  auto r = admin.list_topics();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("127.0.0.1:1"), std::string::npos) << r.err().message;
}

// ---- against librdkafka's mock cluster -------------------------------------------

class MockCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ASSERT_NE(rk_, nullptr) << err;
    mock_ = rd_kafka_mock_cluster_new(rk_, 1);
    ASSERT_NE(mock_, nullptr);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(mock_);
  }
  void TearDown() override {
    if (mock_) rd_kafka_mock_cluster_destroy(mock_);
    if (rk_) rd_kafka_destroy(rk_);
  }
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  std::string bootstrap_;
};

std::vector<consumer_record> read_all(consumer& c, size_t want, int64_t timeout_ms) {
  std::vector<consumer_record> out;
  const int64_t deadline = sys::monotonic_ms() + timeout_ms;
  while (out.size() < want && sys::monotonic_ms() < deadline) {
    auto r = c.poll(200);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    if (!r) break;
    for (auto& rec : r.value()) out.push_back(std::move(rec));
  }
  return out;
}

TEST_F(MockCluster, ProduceAndConsumeEveryCodec) {
  ASSERT_EQ(rd_kafka_mock_topic_create(mock_, "codecs", 3, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  const char* codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
  int n = 0;
  for (auto* codec : codecs) {
    producer_config pc;
    pc.bootstrap_servers = bootstrap_;
    ASSERT_TRUE(pc.set("compression.type", codec).ok());
    pc.linger_ms = 2;
    pc.max_block_ms = 5000;
    producer p(pc);
    auto parts = p.partitions_for("codecs");
    ASSERT_TRUE(parts.ok()) << parts.err().message;
    std::vector<std::future<record_metadata>> fs;
    for (int i = 0; i < 20; ++i, ++n) {
      auto r = producer_record::of("codecs", "k" + std::to_string(n), std::string(codec) + "-" + std::to_string(n));
      r.headers.push_back({"h", b("v" + std::to_string(n))});
      r.timestamp = 1700000000000 + n;
      fs.push_back(p.send(std::move(r)));
    }
    ASSERT_TRUE(p.flush(20000));
    for (auto& f : fs) {
      auto md = f.get();
      ASSERT_TRUE(md.ok()) << md.describe_error();
      EXPECT_GE(md.offset, 0);
      EXPECT_EQ(md.partition, partition_for_key(b("k" + std::to_string(&f - fs.data() + n - 20)), 3));
    }
  }
  consumer_config cc;
  cc.bootstrap_servers = bootstrap_;
  cc.auto_offset_reset = "earliest";
  consumer c(cc);
  c.assign({{"codecs", 0}, {"codecs", 1}, {"codecs", 2}});
  auto recs = read_all(c, static_cast<size_t>(n), 20000);
  ASSERT_EQ(recs.size(), static_cast<size_t>(n));
  std::set<std::string> values;
  for (auto& r : recs) {
    ASSERT_TRUE(r.key && r.value);
    std::string k(as_string(*r.key));
    int i = std::stoi(k.substr(1));
    EXPECT_EQ(r.partition, partition_for_key(*r.key, 3));
    EXPECT_EQ(r.timestamp, 1700000000000 + i);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].key, "h");
    values.insert(std::string(as_string(*r.value)));
  }
  EXPECT_EQ(values.size(), static_cast<size_t>(n));
}

TEST_F(MockCluster, GroupSubscribeCommitAndResume) {
  ASSERT_EQ(rd_kafka_mock_topic_create(mock_, "grp", 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  producer_config pc;
  pc.bootstrap_servers = bootstrap_;
  producer p(pc);
  for (int i = 0; i < 30; ++i) p.send(producer_record::of("grp", std::to_string(i), "v" + std::to_string(i)));
  ASSERT_TRUE(p.flush(20000));
  consumer_config cc;
  cc.bootstrap_servers = bootstrap_;
  cc.group_id = "g";
  cc.auto_offset_reset = "earliest";
  cc.enable_auto_commit = false;
  cc.heartbeat_interval_ms = 500;
  cc.session_timeout_ms = 6000;
  std::vector<topic_partition> assigned;
  {
    consumer c(cc);
    rebalance_listener l;
    l.on_partitions_assigned = [&](const std::vector<topic_partition>& tps) {
      assigned.insert(assigned.end(), tps.begin(), tps.end());
    };
    ASSERT_TRUE(c.subscribe({"grp"}, l).ok());
    auto recs = read_all(c, 30, 30000);
    EXPECT_EQ(recs.size(), 30u);
    EXPECT_EQ(assigned.size(), 2u);
    // Commit 10 on partition 0 only, then leave.
    ASSERT_TRUE(c.commit_sync({{{"grp", 0}, 1}}).ok());
    auto committed = c.committed({{"grp", 0}});
    ASSERT_TRUE(committed.ok()) << committed.err().message;
    EXPECT_EQ(committed.value()[(topic_partition{"grp", 0})], 1);
    auto pos = c.position({"grp", 1});
    ASSERT_TRUE(pos.ok());
    EXPECT_GT(pos.value(), 0);
    c.close();
  }
  consumer c2(cc);
  c2.assign({{"grp", 0}});
  auto pos = c2.position({"grp", 0});
  ASSERT_TRUE(pos.ok()) << pos.err().message;
  EXPECT_EQ(pos.value(), 1);
}

// The default producer is idempotent: against librdkafka's mock broker
// (which checks sequences too) it gets a producer id, and errors that make it
// retry, or bump its epoch (OUT_OF_ORDER_SEQUENCE_NUMBER on the next expected
// batch), still leave every record written once, in order.
TEST_F(MockCluster, IdempotentProducerRetriesAndBumpsInOrder) {
  ASSERT_EQ(rd_kafka_mock_topic_create(mock_, "idem", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  producer_config pc;
  pc.bootstrap_servers = bootstrap_;
  pc.linger_ms = 0;
  pc.retry_backoff_ms = 10;
  pc.max_block_ms = 5000;
  producer p(pc);
  ASSERT_TRUE(p.partitions_for("idem").ok());
  rd_kafka_mock_push_request_errors(mock_, 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  std::vector<std::future<record_metadata>> fs;
  for (int i = 0; i < 40; ++i) fs.push_back(p.send(producer_record::of("idem", "k", "v" + std::to_string(i))));
  ASSERT_TRUE(p.flush(20000));
  int64_t last = -1;
  for (auto& f : fs) {
    auto md = f.get();
    ASSERT_TRUE(md.ok()) << md.describe_error();
    EXPECT_GT(md.offset, last);
    last = md.offset;
  }
  auto st = p.idempotence();
  EXPECT_TRUE(st.enabled) << st.note;
  EXPECT_GE(st.producer_id, 0);
  consumer_config cc;
  cc.bootstrap_servers = bootstrap_;
  cc.auto_offset_reset = "earliest";
  consumer c(cc);
  c.assign({{"idem", 0}});
  auto recs = read_all(c, 40, 20000);
  ASSERT_EQ(recs.size(), 40u);
  for (size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(as_string(*recs[i].value), "v" + std::to_string(i));
  EXPECT_TRUE(read_all(c, 1, 500).empty());  // nothing twice
}

// The transactional producer against librdkafka's mock transaction
// coordinator: records only inside a transaction, commit, abort, offsets in
// a transaction, and a coordinator that is busy for a while.
producer_config transactional_config(const std::string& bootstrap, const std::string& transactional_id) {
  producer_config pc;
  pc.bootstrap_servers = bootstrap;
  pc.transactional_id = transactional_id;
  pc.linger_ms = 1;
  pc.retry_backoff_ms = 10;
  pc.max_block_ms = 10000;
  return pc;
}

TEST_F(MockCluster, TransactionalProducerCommitsAbortsAndSendsOffsets) {
  ASSERT_EQ(rd_kafka_mock_topic_create(mock_, "txn", 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  producer p(transactional_config(bootstrap_, "tx-mock"));
  ASSERT_TRUE(p.partitions_for("txn").ok());
  auto early = p.send(producer_record::of("txn", "k", "v")).get();
  EXPECT_FALSE(early.ok());
  EXPECT_NE(early.describe_error().find("init_transactions"), std::string::npos) << early.describe_error();
  EXPECT_FALSE(p.begin_transaction().ok());

  rd_kafka_mock_push_request_errors(mock_, 22 /* InitProducerId */, 1, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
  auto init = p.init_transactions();
  ASSERT_TRUE(init.ok()) << init.err().message;
  EXPECT_EQ(p.transaction_state(), txn_state::ready);
  EXPECT_GE(p.idempotence().producer_id, 0);
  auto outside = p.send(producer_record::of("txn", "k", "v")).get();
  EXPECT_FALSE(outside.ok());
  EXPECT_NE(outside.describe_error().find("begin_transaction"), std::string::npos) << outside.describe_error();

  ASSERT_TRUE(p.begin_transaction().ok());
  // The coordinator still completing a transaction: AddPartitionsToTxn is retried.
  rd_kafka_mock_push_request_errors(mock_, 24 /* AddPartitionsToTxn */, 2, RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
  std::vector<std::future<record_metadata>> fs;
  for (int i = 0; i < 10; ++i)
    fs.push_back(p.send(producer_record::of("txn", "k" + std::to_string(i), "c" + std::to_string(i))));
  auto commit = p.commit_transaction();
  ASSERT_TRUE(commit.ok()) << commit.err().message;
  for (auto& f : fs) {
    auto md = f.get();
    EXPECT_TRUE(md.ok()) << md.describe_error();
  }
  EXPECT_EQ(p.transactions_committed(), 1);
  EXPECT_EQ(p.transaction_state(), txn_state::ready);

  ASSERT_TRUE(p.begin_transaction().ok());
  for (int i = 0; i < 5; ++i) p.send(producer_record::of("txn", "k", "a" + std::to_string(i)));
  auto abort = p.abort_transaction();
  ASSERT_TRUE(abort.ok()) << abort.err().message;
  EXPECT_EQ(p.transactions_committed(), 1);

  // An empty transaction commits without the coordinator.
  ASSERT_TRUE(p.begin_transaction().ok());
  ASSERT_TRUE(p.commit_transaction().ok());
  EXPECT_EQ(p.transactions_committed(), 2);

  ASSERT_TRUE(p.begin_transaction().ok());
  p.send(producer_record::of("txn", "k", "with-offsets"));
  auto offs = p.send_offsets_to_transaction({{{"txn", 0}, offset_and_metadata{7, -1, "m", 0}}},
                                            consumer_group_metadata{"grp-txn"});
  ASSERT_TRUE(offs.ok()) << offs.err().message;
  commit = p.commit_transaction();
  ASSERT_TRUE(commit.ok()) << commit.err().message;
  EXPECT_EQ(p.transactions_committed(), 3);
  EXPECT_FALSE(p.init_transactions().ok());  // once
}

TEST_F(MockCluster, FencedTransactionalProducerIsDone) {
  ASSERT_EQ(rd_kafka_mock_topic_create(mock_, "fenced", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  producer p(transactional_config(bootstrap_, "tx-fenced"));
  ASSERT_TRUE(p.init_transactions().ok());
  ASSERT_TRUE(p.begin_transaction().ok());
  ASSERT_TRUE(p.send(producer_record::of("fenced", "k", "v")).get().ok());
  rd_kafka_mock_push_request_errors(mock_, 26 /* EndTxn */, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
  auto commit = p.commit_transaction();
  ASSERT_FALSE(commit.ok());
  EXPECT_NE(commit.err().message.find("fenced"), std::string::npos) << commit.err().message;
  EXPECT_EQ(p.transaction_state(), txn_state::fatal_error);
  auto again = p.begin_transaction();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.err().message.find("close the producer"), std::string::npos) << again.err().message;
  EXPECT_FALSE(p.abort_transaction().ok());
  EXPECT_FALSE(p.send(producer_record::of("fenced", "k", "v")).get().ok());
}

TEST_F(MockCluster, ExplicitIdempotenceWithAcks1FailsSendsClearly) {
  producer_config pc;
  pc.bootstrap_servers = bootstrap_;
  pc.acks = 1;
  pc.enable_idempotence = true;
  producer p(pc);
  auto md = p.send(producer_record::of("x", "k", "v")).get();
  EXPECT_FALSE(md.ok());
  EXPECT_NE(md.describe_error().find("enable.idempotence=true"), std::string::npos) << md.describe_error();
}

}  // namespace
}  // namespace gregor::client
