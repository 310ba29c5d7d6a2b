// The controller's decisions about brokers and leadership, as plain function
// calls on images: each rule, then a randomized sequence that checks the
// invariant (no fenced or out-of-sync leader) after every decision.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "metadata/cluster_control.h"
#include "metadata/controller.h"
#include "metadata/records.h"

namespace gregor::metadata {
namespace {

using protocol::error_code;

uuid incarnation(uint8_t n) {
  uuid u;
  u.data.fill(n);
  return u;
}

// Commits records as the quorum would: one batch from image.last_offset + 1.
image commit(const image& img, const std::vector<record>& records) {
  if (records.empty()) return img;
  return apply(img, records, img.last_offset + static_cast<int64_t>(records.size()));
}

registration_request registration(int32_t id, std::optional<std::string> rack = std::nullopt, uint8_t inc = 1) {
  registration_request r;
  r.broker_id = id;
  r.cluster_id = "cluster-1";
  r.incarnation_id = incarnation(inc);
  r.listeners = {{"PLAINTEXT", "host" + std::to_string(id), 9092, 0}};
  r.rack = std::move(rack);
  return r;
}

// Registers and unfences brokers 1..n (racks by `racks`, if given).
image cluster_of(int n, std::vector<std::string> racks = {}) {
  image img;
  img.cluster_id = "cluster-1";
  for (int32_t id = 1; id <= n; ++id) {
    std::vector<record> out;
    auto rack = racks.empty() ? std::nullopt : std::optional<std::string>(racks[static_cast<size_t>(id - 1) % racks.size()]);
    auto res = plan_register_broker(img, registration(id, rack), "cluster-1", img.last_offset + 1, nullptr, out);
    EXPECT_EQ(res.error, error_code::none);
    img = commit(img, out);
    out.clear();
    auto hb = plan_heartbeat(img, {id, res.broker_epoch, img.last_offset, false, false}, out);
    EXPECT_FALSE(hb.is_fenced);
    img = commit(img, out);
  }
  return img;
}

image with_topic(const image& img, const std::string& name, int32_t partitions, int16_t rf, uint64_t start = 0) {
  std::vector<record> out;
  uuid id;
  id.data.fill(static_cast<uint8_t>(name.size() + 100));
  id.data[0] = static_cast<uint8_t>(name[0]);
  auto d = plan_create_topic(img, {name, partitions, rf, {}, {}}, id, {1, 1, start}, out);
  EXPECT_TRUE(d.ok()) << d.message;
  return commit(img, out);
}

TEST(ClusterControl, RegistrationGivesAFencedBrokerItsRecordOffsetAsEpoch) {
  image img;
  std::vector<record> out;
  auto res = plan_register_broker(img, registration(1), "cluster-1", 41, nullptr, out);
  ASSERT_EQ(res.error, error_code::none);
  EXPECT_EQ(res.broker_epoch, 41);
  ASSERT_EQ(out.size(), 1u);
  img = apply(img, out, 41);
  ASSERT_NE(img.broker(1), nullptr);
  EXPECT_TRUE(img.broker(1)->fenced);
  EXPECT_EQ(img.broker(1)->broker_epoch, 41);
  EXPECT_EQ(img.broker(1)->endpoint("PLAINTEXT")->host, "host1");
  // The same incarnation again: nothing new.
  out.clear();
  EXPECT_EQ(plan_register_broker(img, registration(1), "cluster-1", 42, nullptr, out).broker_epoch, 41);
  EXPECT_TRUE(out.empty());
}

TEST(ClusterControl, RegistrationRefusesAnotherClusterAndALiveDuplicate) {
  image img = cluster_of(1);
  std::vector<record> out;
  auto other = registration(2);
  other.cluster_id = "cluster-2";
  auto res = plan_register_broker(img, other, "cluster-1", 10, nullptr, out);
  EXPECT_EQ(res.error, error_code::inconsistent_cluster_id);
  EXPECT_NE(res.message.find("cluster-1"), std::string::npos);
  EXPECT_NE(res.message.find("cluster-2"), std::string::npos);
  res = plan_register_broker(img, registration(1, std::nullopt, 9), "cluster-1", 10, [](int32_t) { return true; }, out);
  EXPECT_EQ(res.error, error_code::duplicate_broker_registration);
  EXPECT_TRUE(out.empty());
  // Unless the new incarnation names the old epoch (a clean restart).
  auto again = registration(1, std::nullopt, 9);
  again.previous_broker_epoch = img.broker(1)->broker_epoch;
  res = plan_register_broker(img, again, "cluster-1", 10, [](int32_t) { return true; }, out);
  EXPECT_EQ(res.error, error_code::none);
}

TEST(ClusterControl, HeartbeatUnfencesOnlyOnceCaughtUp) {
  image img;
  std::vector<record> out;
  auto res = plan_register_broker(img, registration(1), "cluster-1", 5, nullptr, out);
  img = apply(img, out, 5);
  out.clear();
  auto hb = plan_heartbeat(img, {1, 5, 4, false, false}, out);
  EXPECT_FALSE(hb.is_caught_up);
  EXPECT_TRUE(hb.is_fenced);
  EXPECT_TRUE(out.empty());
  hb = plan_heartbeat(img, {1, 5, 5, false, false}, out);
  EXPECT_TRUE(hb.is_caught_up);
  EXPECT_FALSE(hb.is_fenced);
  img = apply(img, out, 6);
  EXPECT_FALSE(img.broker(1)->fenced);
  out.clear();
  EXPECT_EQ(plan_heartbeat(img, {1, 4, 9, false, false}, out).error, error_code::stale_broker_epoch);
  EXPECT_EQ(plan_heartbeat(img, {7, 4, 9, false, false}, out).error, error_code::broker_id_not_registered);
}

TEST(ClusterControl, FencingMovesLeadershipAndShrinksIsrs) {
  image img = with_topic(cluster_of(3), "t", 6, 3);
  std::vector<record> out;
  ASSERT_TRUE(plan_fence_broker(img, 2, out).ok());
  img = commit(img, out);
  EXPECT_TRUE(img.broker(2)->fenced);
  EXPECT_FALSE(leadership_violation(img).has_value()) << *leadership_violation(img);
  for (auto& p : img.topic("t")->partitions) {
    EXPECT_NE(p.leader, 2);
    EXPECT_EQ(std::count(p.isr.begin(), p.isr.end(), 2), 0);
    EXPECT_EQ(p.replicas.size(), 3u);  // replicas stay: only the ISR shrinks
  }
}

TEST(ClusterControl, LastInSyncReplicaFencedLeavesThePartitionOfflineUntilItReturns) {
  image img = with_topic(cluster_of(2), "single", 2, 1);
  auto& p0 = img.topic("single")->partitions[0];
  int32_t owner = p0.leader;
  std::vector<record> out;
  plan_fence_broker(img, owner, out);
  img = commit(img, out);
  EXPECT_EQ(img.topic("single")->partitions[0].leader, -1);
  EXPECT_EQ(img.topic("single")->partitions[0].isr, std::vector<int32_t>{owner});
  // It re-registers after a restart and catches up: it leads again.
  out.clear();
  auto res = plan_register_broker(img, registration(owner, std::nullopt, 77), "cluster-1", img.last_offset + 1,
                                  [](int32_t) { return false; }, out);
  img = commit(img, out);
  out.clear();
  auto hb = plan_heartbeat(img, {owner, res.broker_epoch, img.last_offset, false, false}, out);
  EXPECT_FALSE(hb.is_fenced);
  img = commit(img, out);
  EXPECT_EQ(img.topic("single")->partitions[0].leader, owner);
  EXPECT_FALSE(leadership_violation(img).has_value());
}

TEST(ClusterControl, ControlledShutdownMovesLeadersThenLetsGo) {
  image img = with_topic(cluster_of(3), "t", 6, 3);
  auto* b = img.broker(1);
  std::vector<record> out;
  auto hb = plan_heartbeat(img, {1, b->broker_epoch, img.last_offset, false, true}, out);
  EXPECT_TRUE(hb.should_shut_down);
  img = commit(img, out);
  EXPECT_TRUE(img.broker(1)->in_controlled_shutdown);
  for (auto& p : img.topic("t")->partitions) EXPECT_NE(p.leader, 1);
  // New partitions avoid it.
  auto placed = place_replicas(img, 4, 2, 0);
  ASSERT_TRUE(placed.outcome.ok());
  for (auto& r : placed.replicas) EXPECT_EQ(std::count(r.begin(), r.end(), 1), 0);
}

TEST(ClusterControl, PlacementNeedsEnoughUsableBrokers) {
  image img = cluster_of(2);
  auto placed = place_replicas(img, 1, 3, 0);
  EXPECT_EQ(placed.outcome.error, error_code::invalid_replication_factor);
  EXPECT_EQ(placed.outcome.message,
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached "
            "because only 2 broker(s) are registered.");
}

TEST(ClusterControl, PlacementSpreadsLeadersEvenlyAndReplicasOverDistinctBrokers) {
  for (int brokers : {3, 4, 5}) {
    for (int partitions : {1, 3, 6, 7, 12, 30}) {
      for (int rf = 1; rf <= std::min(brokers, 3); ++rf) {
        image img = cluster_of(brokers);
        auto placed = place_replicas(img, partitions, rf, static_cast<uint64_t>(partitions * 7));
        ASSERT_TRUE(placed.outcome.ok());
        std::map<int32_t, int> leaders;
        for (auto& r : placed.replicas) {
          ASSERT_EQ(r.size(), static_cast<size_t>(rf));
          EXPECT_EQ(std::set<int32_t>(r.begin(), r.end()).size(), r.size());
          ++leaders[r.front()];
        }
        int lo = partitions / brokers, hi = (partitions + brokers - 1) / brokers;
        for (int32_t id = 1; id <= brokers; ++id) {
          EXPECT_GE(leaders[id], lo) << brokers << " brokers, " << partitions << " partitions";
          EXPECT_LE(leaders[id], hi) << brokers << " brokers, " << partitions << " partitions";
        }
      }
    }
  }
}

TEST(ClusterControl, PlacementPutsReplicasInDifferentRacks) {
  image img = cluster_of(6, {"a", "b", "c"});
  auto placed = place_replicas(img, 12, 3, 5);
  ASSERT_TRUE(placed.outcome.ok());
  for (auto& r : placed.replicas) {
    std::set<std::string> racks;
    for (int32_t id : r) racks.insert(*img.broker(id)->rack);
    EXPECT_EQ(racks.size(), 3u);
  }
  // Two racks, rf 3: both racks used.
  image two = cluster_of(4, {"x", "y"});
  placed = place_replicas(two, 8, 3, 1);
  for (auto& r : placed.replicas) {
    std::set<std::string> racks;
    for (int32_t id : r) racks.insert(*two.broker(id)->rack);
    EXPECT_EQ(racks.size(), 2u);
  }
}

TEST(ClusterControl, PreferredAndUncleanElections) {
  image img = with_topic(cluster_of(3), "t", 3, 3);
  std::vector<record> out;
  EXPECT_EQ(plan_elect_leader(img, "t", 0, election_type::preferred, out).error, error_code::election_not_needed);
  EXPECT_EQ(plan_elect_leader(img, "t", 9, election_type::preferred, out).error, error_code::unknown_topic_or_partition);
  EXPECT_EQ(plan_elect_leader(img, "nope", 0, election_type::preferred, out).error,
            error_code::unknown_topic_or_partition);
  // Fence partition 0's preferred leader: it moves, and cannot come back yet.
  int32_t preferred = img.topic("t")->partitions[0].replicas.front();
  plan_fence_broker(img, preferred, out);
  img = commit(img, out);
  out.clear();
  EXPECT_EQ(plan_elect_leader(img, "t", 0, election_type::preferred, out).error,
            error_code::preferred_leader_not_available);
  EXPECT_EQ(plan_elect_leader(img, "t", 0, election_type::unclean, out).error, error_code::election_not_needed);
}

TEST(ClusterControl, AutoRebalanceFindsPartitionsLedByOthers) {
  image img = with_topic(cluster_of(3), "t", 6, 3);
  std::vector<record> out;
  plan_fence_broker(img, 1, out);
  img = commit(img, out);
  out.clear();
  // Broker 1 comes back (same incarnation re-registers after restart with a new one).
  auto res = plan_register_broker(img, registration(1, std::nullopt, 5), "cluster-1", img.last_offset + 1,
                                  [](int32_t) { return false; }, out);
  img = commit(img, out);
  out.clear();
  plan_heartbeat(img, {1, res.broker_epoch, img.last_offset, false, false}, out);
  img = commit(img, out);
  // Not in the ISRs again yet (that takes replication): nothing to elect.
  EXPECT_TRUE(unbalanced_partitions(img, 10).empty());
  // Once it is back in the ISRs, its preferred partitions go back to it.
  out.clear();
  for (auto& p : img.topic("t")->partitions) {
    protocol::partition_change_record c;
    c.topic_id = img.topic("t")->topic_id;
    c.partition_id = p.partition;
    c.isr = p.replicas;
    out.push_back(c);
  }
  img = commit(img, out);
  auto todo = unbalanced_partitions(img, 10);
  EXPECT_EQ(todo.size(), 2u);
  out.clear();
  for (auto& [t, p] : todo) EXPECT_TRUE(plan_elect_leader(img, t, p, election_type::preferred, out).ok());
  img = commit(img, out);
  EXPECT_TRUE(unbalanced_partitions(img, 10).empty());
}

TEST(ClusterControl, ReassignmentStartsListsCancelsAndCompletes) {
  image img = with_topic(cluster_of(4), "t", 1, 2);
  auto before = img.topic("t")->partitions[0];
  std::vector<record> out;
  EXPECT_EQ(plan_alter_reassignment(img, "t", 0, std::nullopt, out).error, error_code::no_reassignment_in_progress);
  EXPECT_EQ(plan_alter_reassignment(img, "t", 0, std::vector<int32_t>{1, 1}, out).error,
            error_code::invalid_replica_assignment);
  EXPECT_EQ(plan_alter_reassignment(img, "t", 0, std::vector<int32_t>{9}, out).error,
            error_code::invalid_replica_assignment);
  std::vector<int32_t> target;
  for (int32_t id = 1; id <= 4; ++id)
    if (std::count(before.replicas.begin(), before.replicas.end(), id) == 0) target.push_back(id);
  ASSERT_EQ(target.size(), 2u);
  ASSERT_TRUE(plan_alter_reassignment(img, "t", 0, target, out).ok());
  img = commit(img, out);
  auto ongoing = list_reassignments(img);
  ASSERT_EQ(ongoing.size(), 1u);
  EXPECT_EQ(ongoing[0].adding, target);
  EXPECT_EQ(ongoing[0].replicas.size(), 4u);
  // Not caught up: nothing completes. Cancel puts it back.
  out.clear();
  plan_complete_reassignments(img, out);
  EXPECT_TRUE(out.empty());
  image cancelled = commit(img, [&] {
    std::vector<record> o;
    EXPECT_TRUE(plan_alter_reassignment(img, "t", 0, std::nullopt, o).ok());
    return o;
  }());
  EXPECT_EQ(cancelled.topic("t")->partitions[0].replicas, before.replicas);
  EXPECT_TRUE(list_reassignments(cancelled).empty());
  // The new replicas join the ISR: the move completes and the leader moves.
  protocol::partition_change_record joined;
  joined.topic_id = img.topic("t")->topic_id;
  joined.partition_id = 0;
  auto isr = before.isr;
  isr.insert(isr.end(), target.begin(), target.end());
  joined.isr = isr;
  img = commit(img, {joined});
  out.clear();
  plan_complete_reassignments(img, out);
  ASSERT_FALSE(out.empty());
  img = commit(img, out);
  auto& after = img.topic("t")->partitions[0];
  EXPECT_EQ(after.replicas, target);
  EXPECT_TRUE(after.adding_replicas.empty());
  EXPECT_TRUE(std::count(target.begin(), target.end(), after.leader));
  EXPECT_GT(after.leader_epoch, before.leader_epoch);
  EXPECT_FALSE(leadership_violation(img).has_value());
}

TEST(ClusterControl, ImageRecordsRebuildTheImage) {
  image img = with_topic(with_topic(cluster_of(3, {"a", "b"}), "t", 4, 3), "u", 2, 1);
  std::vector<record> out;
  plan_fence_broker(img, 3, out);
  img = commit(img, out);
  img.broker_configs["1"]["log.retention.ms"] = "5";
  img.features["metadata.version"] = 21;
  image rebuilt;
  rebuilt.cluster_id = img.cluster_id;
  auto records = image_records(img);
  for (auto& r : records) {
    auto back = decode_record(encode_record(r));
    ASSERT_TRUE(back.ok()) << back.err().message;
  }
  rebuilt = apply(rebuilt, records, img.last_offset);
  EXPECT_EQ(rebuilt.brokers, img.brokers);
  EXPECT_EQ(rebuilt.broker_configs, img.broker_configs);
  EXPECT_EQ(rebuilt.features, img.features);
  ASSERT_EQ(rebuilt.topics.size(), img.topics.size());
  for (auto& [name, t] : img.topics) {
    auto* r = rebuilt.topic(name);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->topic_id, t->topic_id);
    EXPECT_EQ(r->partitions, t->partitions);
    EXPECT_EQ(r->configs, t->configs);
  }
}

// Random registrations, heartbeats, fencing, shutdowns, topics, elections
// and reassignments: after each, nobody fenced leads and every leader is a
// replica in its ISR.
TEST(ClusterControl, RandomDecisionsKeepTheLeadershipInvariant) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    image img = cluster_of(5, {"a", "b", "c"});
    std::map<int32_t, uint8_t> inc;
    int topics = 0;
    for (int step = 0; step < 300; ++step) {
      std::vector<record> out;
      int32_t id = 1 + static_cast<int32_t>(rng() % 5);
      auto* b = img.broker(id);
      switch (rng() % 8) {
        case 0: plan_fence_broker(img, id, out); break;
        case 1:
          if (b) plan_heartbeat(img, {id, b->broker_epoch, img.last_offset, false, false}, out);
          break;
        case 2:
          if (b) plan_heartbeat(img, {id, b->broker_epoch, img.last_offset, false, true}, out);
          break;
        case 3: {
          auto res = plan_register_broker(img, registration(id, std::string(1, static_cast<char>('a' + id % 3)), ++inc[id]),
                                          "cluster-1", img.last_offset + 1, [](int32_t) { return false; }, out);
          EXPECT_EQ(res.error, error_code::none);
          break;
        }
        case 4: {
          uuid tid;
          tid.data.fill(static_cast<uint8_t>(++topics));
          plan_create_topic(img, {"t" + std::to_string(topics), 1 + static_cast<int32_t>(rng() % 6),
                                  static_cast<int16_t>(1 + rng() % 3), {}, {}},
                            tid, {1, 1, rng()}, out);
          break;
        }
        case 5:
          for (auto& [name, t] : img.topics)
            plan_elect_leader(img, name, static_cast<int32_t>(rng() % t->partitions.size()),
                              rng() % 2 ? election_type::preferred : election_type::unclean, out);
          break;
        case 6:
          for (auto& [t, p] : unbalanced_partitions(img, 10)) plan_elect_leader(img, t, p, election_type::preferred, out);
          break;
        case 7:
          for (auto& [name, t] : img.topics) {
            std::vector<int32_t> target;
            for (int32_t r = 1; r <= 5; ++r)
              if (rng() % 2) target.push_back(r);
            if (!target.empty())
              plan_alter_reassignment(img, name, static_cast<int32_t>(rng() % t->partitions.size()), target, out);
            break;
          }
          plan_complete_reassignments(img, out);
          break;
      }
      img = commit(img, out);
      auto why = leadership_violation(img);
      ASSERT_FALSE(why.has_value()) << "seed " << seed << " step " << step << ": " << *why;
    }
  }
}

}  // namespace
}  // namespace gregor::metadata
