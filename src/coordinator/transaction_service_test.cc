// The transaction coordinator's driver (transaction_service) on the
// simulated runtime, with an in-memory __transaction_state and a marker
// sender the test controls: what is written before an answer, markers before
// Complete*, a write that fails, a Prepare* found when loading, a timed-out
// transaction and an expired id.
#include "coordinator/transaction_service.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/clock.h"
#include "runtime/shards.h"
#include "runtime/sim/world.h"

namespace gregor::coordinator {
namespace {

using protocol::error_code;
constexpr int32_t kPartitions = 4;

// __transaction_state in memory: one vector of batches per partition.
class memory_log final : public offsets_log {
 public:
  int32_t partition_count() override { return created ? kPartitions : 0; }
  runtime::task<result<int32_t>> create_topic() override {
    created = true;
    co_return kPartitions;
  }
  runtime::task<append_result> append(int32_t partition, bytes batch) override {
    co_await runtime::sleep_for(1);  // the ISR's round trip
    if (fail_appends) co_return append_result{error_code::not_leader_or_follower, -1};
    auto& p = batches[partition];
    auto h = protocol::batch_header::parse(batch.data());
    int64_t base = next_offset[partition];
    h.base_offset = base;
    protocol::set_base_offset(batch, base);
    next_offset[partition] = base + h.last_offset_delta + 1;
    p.push_back(std::move(batch));
    co_return append_result{error_code::none, base};
  }
  runtime::task<bool> committed_up_to(int32_t partition, int64_t offset) override {
    co_return offset <= committed_below.value_or(next_offset[partition]);
  }
  runtime::task<result<bytes>> read(int32_t partition, int64_t offset) override {
    bytes out;
    for (auto& b : batches[partition]) {
      auto h = protocol::batch_header::parse(b.data());
      if (h.base_offset >= offset) out.insert(out.end(), b.begin(), b.end());
    }
    co_return out;
  }
  // The states written for an id, in order ("Dead" for a tombstone).
  std::vector<txn_state> states_of(const std::string& id) {
    std::vector<txn_state> out;
    for (auto& [p, list] : batches)
      for (auto& b : list) {
        auto reader = protocol::record_reader::open(b);
        protocol::record_view rec;
        for (;;) {
          if (!reader) break;
          auto more = reader.value().next(rec);
          if (!more || !more.value()) break;
          std::string got;
          auto m = decode_transaction_log_record(*rec.key, rec.value, &got);
          if (got == id) out.push_back(m ? m->state : txn_state::dead);
        }
      }
    return out;
  }

  bool created = false;
  bool fail_appends = false;
  std::optional<int64_t> committed_below;  // the high watermark, if not the log end
  std::map<int32_t, std::vector<bytes>> batches;
  std::map<int32_t, int64_t> next_offset;
};

// Records every send; succeeds unless told to hold (then it waits).
class recording_markers final : public txn_marker_sender {
 public:
  runtime::task<bool> send(markers m, std::function<bool()> still_current) override {
    sent.push_back(m);
    while (hold && still_current()) co_await runtime::sleep_for(10);
    co_return still_current();
  }
  std::vector<markers> sent;
  bool hold = false;
};

struct fixture {
  fixture() : w(7) {
    ::gregor::log::set_level("off");
    txn_service_config cfg;
    cfg.abort_timed_out_transaction_cleanup_interval_ms = 1000;
    cfg.remove_expired_transaction_cleanup_interval_ms = 1000;
    cfg.coordinator.transaction_state_log_num_partitions = kPartitions;
    cfg.coordinator.transactional_id_expiration_ms = 60'000;
    n = &w.add_node(1, "n1", 1);
    n->start([this, cfg] {
      svc = std::make_shared<transaction_service>(cfg, log, markers, 0, [this] { return std::optional(next_pid++); });
      svc->start();
      own();
      return std::shared_ptr<void>(svc);
    });
    w.run_for(10);
  }
  void own(int32_t epoch = 5) { svc->set_owned_partitions(std::vector<int32_t>(kPartitions, epoch)); }
  // Runs fn on the node's shard 0 (runtime calls need the node's backend).
  void on_node(std::function<void()> fn) {
    bool done = false;
    w.schedule(n, 0, 0, [&] {
      fn();
      done = true;
    });
    EXPECT_TRUE(w.run_until([&] { return done; }, 1'000));
  }

  // Runs a request to completion on the node.
  template <class R>
  R call(std::function<runtime::task<R>()> fn) {
    std::optional<R> out;
    on_node([&] { runtime::spawn(0, [&]() -> runtime::task<void> { out = co_await fn(); }); });
    EXPECT_TRUE(w.run_until([&] { return out.has_value(); }, 10'000));
    return out.value_or(R{});
  }
  protocol::init_producer_id_response init(const std::string& id, int32_t timeout_ms = 60'000) {
    protocol::init_producer_id_request r;
    r.transactional_id = id;
    r.transaction_timeout_ms = timeout_ms;
    r.producer_id = -1;
    r.producer_epoch = -1;
    return call<protocol::init_producer_id_response>([this, r] { return svc->init_producer_id(4, r); });
  }
  int16_t add(const std::string& id, const protocol::init_producer_id_response& p, const std::string& topic,
              int32_t partition) {
    protocol::add_partitions_to_txn_request r;
    r.v3_and_below_transactional_id = id;
    r.v3_and_below_producer_id = p.producer_id;
    r.v3_and_below_producer_epoch = p.producer_epoch;
    auto& t = r.v3_and_below_topics.emplace_back();
    t.name = topic;
    t.partitions = {partition};
    auto resp = call<protocol::add_partitions_to_txn_response>([this, r] {
      return svc->add_partitions_to_txn(3, r, [](const std::string&, int32_t) { return true; });
    });
    return resp.results_by_topic_v3_and_below.at(0).results_by_partition.at(0).partition_error_code;
  }
  int16_t end(const std::string& id, const protocol::init_producer_id_response& p, bool commit) {
    protocol::end_txn_request r;
    r.transactional_id = id;
    r.producer_id = p.producer_id;
    r.producer_epoch = p.producer_epoch;
    r.committed = commit;
    return call<protocol::end_txn_response>([this, r] { return svc->end_txn(3, r); }).error_code;
  }
  const txn_metadata* find(const std::string& id) {
    return svc->state().find(id);
  }

  runtime::sim::world w;
  runtime::sim::node* n = nullptr;
  memory_log log;
  recording_markers markers;
  std::shared_ptr<transaction_service> svc;
  int64_t next_pid = 1000;
};

TEST(TransactionService, CommitWritesPrepareThenMarkersThenComplete) {
  fixture f;
  auto p = f.init("a");
  ASSERT_EQ(p.error_code, 0);
  ASSERT_EQ(f.add("a", p, "t", 0), 0);
  f.markers.hold = true;
  ASSERT_EQ(f.end("a", p, true), 0) << "answered once PrepareCommit is written";
  f.w.run_for(100);
  EXPECT_EQ(f.log.states_of("a"),
            (std::vector<txn_state>{txn_state::empty, txn_state::ongoing, txn_state::prepare_commit}));
  ASSERT_EQ(f.markers.sent.size(), 1u);
  EXPECT_TRUE(f.markers.sent[0].commit);
  EXPECT_EQ(f.markers.sent[0].coordinator_epoch, 5);
  EXPECT_EQ(f.markers.sent[0].partitions, (std::vector<topic_partition>{{"t", 0}}));
  // While the markers are out, the id is busy.
  EXPECT_EQ(f.add("a", p, "t", 1), static_cast<int16_t>(error_code::concurrent_transactions));
  f.markers.hold = false;
  ASSERT_TRUE(f.w.run_until([&] { return f.find("a")->state == txn_state::complete_commit; }, 5'000));
  EXPECT_EQ(f.log.states_of("a").back(), txn_state::complete_commit);
}

TEST(TransactionService, AFailedWriteChangesNothing) {
  fixture f;
  auto p = f.init("a");
  f.log.fail_appends = true;
  EXPECT_EQ(f.add("a", p, "t", 0), static_cast<int16_t>(error_code::not_coordinator));
  EXPECT_EQ(f.find("a")->state, txn_state::empty);
  f.log.fail_appends = false;
  EXPECT_EQ(f.add("a", p, "t", 0), 0);
  EXPECT_EQ(f.find("a")->state, txn_state::ongoing);
}

TEST(TransactionService, ALoadedPrepareSendsItsMarkersAgain) {
  fixture f;
  auto p = f.init("a");
  f.add("a", p, "t", 0);
  f.markers.hold = true;
  ASSERT_EQ(f.end("a", p, false), 0);
  // The partition moves away with the markers out, then comes back under a
  // newer leader epoch: the new load finds PrepareAbort and finishes it.
  f.on_node([&] { f.svc->set_owned_partitions(std::vector<int32_t>(kPartitions, -1)); });
  f.w.run_for(100);
  EXPECT_EQ(f.find("a"), nullptr);
  f.markers.hold = false;
  f.on_node([&] { f.own(6); });
  ASSERT_TRUE(f.w.run_until([&] { auto* m = f.find("a"); return m && m->state == txn_state::complete_abort; },
                            5'000));
  ASSERT_EQ(f.markers.sent.size(), 2u);
  EXPECT_FALSE(f.markers.sent[1].commit);
  EXPECT_EQ(f.markers.sent[1].coordinator_epoch, 6);
}

// A new leader loads its partition to the log's end; what it loaded above the
// high watermark may yet be lost to another failover, so it answers from it
// only once it is committed (the simulation's seed 21962).
TEST(TransactionService, ALoadedTailIsActedOnOnlyOnceCommitted) {
  fixture f;
  auto p = f.init("a");
  ASSERT_EQ(f.add("a", p, "t", 0), 0);
  int32_t part = f.svc->state().partition_for("a");
  // The partition moves away and comes back with its last record (Ongoing,
  // with t-0) not below the high watermark.
  f.on_node([&] { f.svc->set_owned_partitions(std::vector<int32_t>(kPartitions, -1)); });
  f.w.run_for(100);
  f.log.committed_below = f.log.next_offset[part] - 1;
  f.on_node([&] { f.own(6); });
  f.w.run_for(500);
  EXPECT_EQ(f.add("a", p, "t", 0), static_cast<int16_t>(error_code::coordinator_load_in_progress))
      << "not \"already in the transaction\" from an uncommitted record";
  f.log.committed_below.reset();
  ASSERT_TRUE(f.w.run_until([&] { auto* m = f.find("a"); return m && m->state == txn_state::ongoing; }, 1'000));
  EXPECT_EQ(f.add("a", p, "t", 0), 0);
}

TEST(TransactionService, TimedOutTransactionsAreAbortedWithABumpedEpoch) {
  fixture f;
  auto p = f.init("slow", 2'000);
  f.add("slow", p, "t", 0);
  f.w.run_for(4'000);
  auto* m = f.find("slow");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->state, txn_state::complete_abort);
  EXPECT_EQ(m->producer_epoch, p.producer_epoch + 1) << "the old producer is fenced";
  ASSERT_EQ(f.markers.sent.size(), 1u);
  EXPECT_FALSE(f.markers.sent[0].commit);
  EXPECT_EQ(f.markers.sent[0].producer_epoch, p.producer_epoch + 1);
  // The fenced producer's EndTxn is refused.
  EXPECT_EQ(f.end("slow", p, true), static_cast<int16_t>(error_code::producer_fenced));
}

TEST(TransactionService, IdleIdsExpireWithATombstone) {
  fixture f;
  auto p = f.init("idle");
  f.w.run_for(62'000);
  EXPECT_EQ(f.find("idle"), nullptr);
  EXPECT_EQ(f.log.states_of("idle").back(), txn_state::dead);
  auto again = f.init("idle");
  EXPECT_NE(again.producer_id, p.producer_id);
}

}  // namespace
}  // namespace gregor::coordinator
