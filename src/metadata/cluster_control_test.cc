// The controller's decisions about brokers and leadership, as plain function
// calls on images: each rule, then a randomized sequence that checks the
// invariant (no fenced or out-of-sync leader) after every decision.
#include <gtest/gtest.h>

#include <limits>
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

// ---- AlterPartition

// A request from the leader of `topic`-`partition` for `isr`, at the
// partition's current epochs; from v3 each member carries its broker epoch.
alter_partition_request isr_change(const image& img, const std::string& topic, int32_t partition,
                                   const std::vector<int32_t>& isr, int16_t version = 3) {
  auto* t = img.topic(topic);
  auto& p = t->partitions[static_cast<size_t>(partition)];
  alter_partition_request req;
  req.broker_id = p.leader;
  req.broker_epoch = img.broker(p.leader)->broker_epoch;
  req.version = version;
  auto& item = req.partitions.emplace_back();
  item.topic_name = topic;
  item.topic_id = t->topic_id;
  item.partition = partition;
  item.leader_epoch = p.leader_epoch;
  item.partition_epoch = p.partition_epoch;
  for (int32_t id : isr) item.new_isr.push_back({id, version >= 3 && img.broker(id) ? img.broker(id)->broker_epoch : -1});
  return req;
}

// The one answer of a one-partition request.
alter_partition_answer alter_one(const image& img, const alter_partition_request& req, std::vector<record>& out) {
  auto res = plan_alter_partition(img, req, out);
  EXPECT_EQ(res.error, error_code::none);
  EXPECT_EQ(res.partitions.size(), 1u);
  return res.partitions.empty() ? alter_partition_answer{} : res.partitions.front();
}

// A follower of partition 0 of `topic`.
int32_t follower_of(const image& img, const std::string& topic) {
  auto& p = img.topic(topic)->partitions[0];
  for (int32_t r : p.replicas)
    if (r != p.leader) return r;
  return -1;
}

TEST(ClusterControl, AlterPartitionShrinksAndExpandsTheIsr) {
  image img = with_topic(cluster_of(3), "t", 1, 3);
  const auto before = img.topic("t")->partitions[0];
  ASSERT_EQ(before.isr.size(), 3u);
  const int32_t leader = before.leader;

  // Shrink to the leader alone: one PartitionChangeRecord with the new ISR;
  // the partition epoch moves on, the leader and its epoch stay.
  std::vector<record> out;
  auto stale_request = isr_change(img, "t", 0, {leader});
  auto a = alter_one(img, stale_request, out);
  ASSERT_EQ(a.error, error_code::none);
  ASSERT_EQ(out.size(), 1u);
  auto& change = std::get<protocol::partition_change_record>(out[0]);
  EXPECT_EQ(change.isr, std::optional<std::vector<int32_t>>(std::vector<int32_t>{leader}));
  EXPECT_EQ(change.leader, -2);
  EXPECT_EQ(change.replicas, std::nullopt);
  img = commit(img, out);
  const auto shrunk = img.topic("t")->partitions[0];
  EXPECT_EQ(shrunk.isr, std::vector<int32_t>{leader});
  EXPECT_EQ(shrunk.partition_epoch, before.partition_epoch + 1);
  EXPECT_EQ(shrunk.leader_epoch, before.leader_epoch);
  // The answer is the partition as the image now has it.
  EXPECT_EQ(a.partition, shrunk);

  // The same request again names the old partition epoch: refused.
  out.clear();
  EXPECT_EQ(alter_one(img, stale_request, out).error, error_code::invalid_update_version);
  EXPECT_TRUE(out.empty());

  // The ISR as it is: nothing to write, the current state in the answer.
  a = alter_one(img, isr_change(img, "t", 0, {leader}), out);
  EXPECT_EQ(a.error, error_code::none);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(a.partition.partition_epoch, shrunk.partition_epoch);

  // The followers caught up: the ISR grows back.
  a = alter_one(img, isr_change(img, "t", 0, before.isr), out);
  ASSERT_EQ(a.error, error_code::none);
  ASSERT_EQ(out.size(), 1u);
  img = commit(img, out);
  EXPECT_EQ(img.topic("t")->partitions[0].isr, before.isr);
  EXPECT_EQ(img.topic("t")->partitions[0].partition_epoch, before.partition_epoch + 2);
  EXPECT_EQ(a.partition, img.topic("t")->partitions[0]);
  EXPECT_EQ(a.partition.leader_epoch, before.leader_epoch);
  EXPECT_FALSE(leadership_violation(img).has_value());
}

TEST(ClusterControl, AlterPartitionRefusesStaleSendersAndEpochs) {
  image img = with_topic(cluster_of(3), "t", 1, 3);
  // A new leader epoch (a re-election of the same leader), so that an older one exists.
  protocol::partition_change_record reelect;
  reelect.topic_id = img.topic("t")->topic_id;
  reelect.partition_id = 0;
  reelect.leader = img.topic("t")->partitions[0].leader;
  img = commit(img, {reelect});
  const auto p = img.topic("t")->partitions[0];
  ASSERT_GT(p.leader_epoch, 0);
  std::vector<record> out;

  // The sender's broker epoch is not its registration's, or it has none:
  // the whole request fails.
  auto req = isr_change(img, "t", 0, p.isr);
  req.broker_epoch -= 1;
  auto res = plan_alter_partition(img, req, out);
  EXPECT_EQ(res.error, error_code::stale_broker_epoch);
  EXPECT_TRUE(res.partitions.empty());
  req.broker_id = 9;
  EXPECT_EQ(plan_alter_partition(img, req, out).error, error_code::stale_broker_epoch);

  // A follower, with its own valid registration, is not the leader.
  req = isr_change(img, "t", 0, p.isr);
  const int32_t follower = follower_of(img, "t");
  req.broker_id = follower;
  req.broker_epoch = img.broker(follower)->broker_epoch;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::invalid_request);

  // An older leader epoch: a deposed leader.
  req = isr_change(img, "t", 0, p.isr);
  req.partitions[0].leader_epoch -= 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::fenced_leader_epoch);
  // Epochs newer than this controller knows: it is probably not the active one any more.
  req = isr_change(img, "t", 0, p.isr);
  req.partitions[0].leader_epoch += 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::not_controller);
  req = isr_change(img, "t", 0, p.isr);
  req.partitions[0].partition_epoch += 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::not_controller);
  // An older partition epoch.
  req = isr_change(img, "t", 0, p.isr);
  req.partitions[0].partition_epoch -= 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::invalid_update_version);

  // Unknown topics and partitions: by name up to v1, by id from v2.
  req = isr_change(img, "t", 0, p.isr, 1);
  req.partitions[0].topic_name = "nope";
  EXPECT_EQ(alter_one(img, req, out).error, error_code::unknown_topic_or_partition);
  req = isr_change(img, "t", 0, p.isr, 2);
  req.partitions[0].topic_id.data.fill(0xee);
  EXPECT_EQ(alter_one(img, req, out).error, error_code::unknown_topic_id);
  req.partitions[0].topic_id = uuid{};
  EXPECT_EQ(alter_one(img, req, out).error, error_code::unknown_topic_id);
  req = isr_change(img, "t", 0, p.isr, 2);
  req.partitions[0].partition = 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::unknown_topic_or_partition);
  // v1 finds the topic by name even with an id that matches nothing.
  req = isr_change(img, "t", 0, p.isr, 1);
  req.partitions[0].topic_id.data.fill(0xee);
  EXPECT_EQ(alter_one(img, req, out).error, error_code::none);
  EXPECT_TRUE(out.empty());
}

TEST(ClusterControl, AlterPartitionRefusesInvalidAndIneligibleIsrs) {
  image img = with_topic(cluster_of(5), "t", 1, 3);
  const auto p = img.topic("t")->partitions[0];
  const int32_t leader = p.leader;
  const int32_t follower = follower_of(img, "t");
  int32_t outsider = -1;
  for (int32_t id = 1; id <= 5; ++id)
    if (std::count(p.replicas.begin(), p.replicas.end(), id) == 0) outsider = id;
  std::vector<record> out;

  // Not a replica of the partition, twice the same, negative, or without the
  // leader: INVALID_REQUEST, as Kafka's Replicas.validateIsr decides.
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, outsider}), out).error, error_code::invalid_request);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, follower, follower}), out).error,
            error_code::invalid_request);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, -1}), out).error, error_code::invalid_request);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {follower}), out).error, error_code::invalid_request);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {}), out).error, error_code::invalid_request);

  // v3: a member whose broker epoch is not its registration's (it restarted
  // since the leader saw it catch up); -1 means "not known" and passes.
  auto req = isr_change(img, "t", 0, p.isr);
  for (auto& m : req.partitions[0].new_isr)
    if (m.broker_id == follower) m.broker_epoch += 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::ineligible_replica);
  for (auto& m : req.partitions[0].new_isr) m.broker_epoch = -1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::none);
  EXPECT_TRUE(out.empty());

  // The follower leaves the ISR, then is fenced: it may not come back, and
  // neither may a broker in controlled shutdown. v0-1 hear
  // OPERATION_NOT_ATTEMPTED.
  int32_t other = -1;
  for (int32_t r : p.replicas)
    if (r != leader && r != follower) other = r;
  ASSERT_EQ(alter_one(img, isr_change(img, "t", 0, {leader}), out).error, error_code::none);
  img = commit(img, out);
  out.clear();
  ASSERT_TRUE(plan_fence_broker(img, follower, out).ok());
  auto* o = img.broker(other);
  plan_heartbeat(img, {other, o->broker_epoch, img.last_offset, false, true}, out);
  img = commit(img, out);
  ASSERT_TRUE(img.broker(other)->in_controlled_shutdown);
  out.clear();
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, follower}), out).error, error_code::ineligible_replica);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, other}, 2), out).error, error_code::ineligible_replica);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, follower}, 1), out).error,
            error_code::operation_not_attempted);
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader, other}, 0), out).error,
            error_code::operation_not_attempted);
  EXPECT_TRUE(out.empty());
}

TEST(ClusterControl, AlterPartitionEndsTheRecoveryAfterAnUncleanElection) {
  image img = with_topic(cluster_of(3), "t", 1, 3);
  const auto p = img.topic("t")->partitions[0];
  // As an unclean election leaves it: the leader alone in the ISR, recovering.
  protocol::partition_change_record unclean;
  unclean.topic_id = img.topic("t")->topic_id;
  unclean.partition_id = 0;
  unclean.leader = p.leader;
  unclean.isr = std::vector<int32_t>{p.leader};
  unclean.leader_recovery_state = 1;
  img = commit(img, {unclean});
  std::vector<record> out;
  // Still recovering, the ISR may not grow.
  auto req = isr_change(img, "t", 0, p.isr);
  req.partitions[0].leader_recovery_state = 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::invalid_request);
  req.partitions[0].leader_recovery_state = 7;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::invalid_request);
  // Recovered: said with the ISR as it is, only the state changes.
  auto a = alter_one(img, isr_change(img, "t", 0, {p.leader}), out);
  ASSERT_EQ(a.error, error_code::none);
  ASSERT_EQ(out.size(), 1u);
  auto& change = std::get<protocol::partition_change_record>(out[0]);
  EXPECT_EQ(change.leader_recovery_state, 0);
  EXPECT_EQ(change.isr, std::nullopt);
  img = commit(img, out);
  EXPECT_EQ(img.topic("t")->partitions[0].leader_recovery_state, 0);
  EXPECT_EQ(a.partition.leader_recovery_state, 0);
  // And a recovered partition never goes back to recovering.
  out.clear();
  req = isr_change(img, "t", 0, {p.leader});
  req.partitions[0].leader_recovery_state = 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::invalid_request);
}

TEST(ClusterControl, AlterPartitionGrowingTheIsrCompletesAReassignment) {
  image img = with_topic(cluster_of(4), "t", 1, 2);
  const auto before = img.topic("t")->partitions[0];
  const int32_t leader = before.leader;
  std::vector<int32_t> newcomers;
  for (int32_t id = 1; id <= 4; ++id)
    if (std::count(before.replicas.begin(), before.replicas.end(), id) == 0) newcomers.push_back(id);
  ASSERT_EQ(newcomers.size(), 2u);

  // Add one replica and keep the leader.
  std::vector<int32_t> target = before.replicas;
  target.push_back(newcomers[0]);
  std::vector<record> out;
  ASSERT_TRUE(plan_alter_reassignment(img, "t", 0, target, out).ok());
  img = commit(img, out);
  out.clear();
  const int32_t epoch_before = img.topic("t")->partitions[0].partition_epoch;
  // The new replica caught up: one record grows the ISR and completes the move.
  std::vector<int32_t> isr = img.topic("t")->partitions[0].isr;
  isr.push_back(newcomers[0]);
  auto a = alter_one(img, isr_change(img, "t", 0, isr), out);
  ASSERT_EQ(a.error, error_code::none);
  ASSERT_EQ(out.size(), 1u);
  img = commit(img, out);
  auto& done = img.topic("t")->partitions[0];
  EXPECT_EQ(done.replicas, target);
  EXPECT_TRUE(done.adding_replicas.empty());
  EXPECT_TRUE(done.removing_replicas.empty());
  EXPECT_EQ(done.isr, isr);
  EXPECT_EQ(done.leader, leader);
  EXPECT_EQ(done.partition_epoch, epoch_before + 1);
  EXPECT_TRUE(list_reassignments(img).empty());
  EXPECT_EQ(a.partition, done);

  // Move away from the leader entirely: when the ISR completes the move, the
  // leadership goes to a target replica and the old leader hears
  // NEW_LEADER_ELECTED (FENCED_LEADER_EPOCH before v2), the move done all the same.
  for (int16_t version : {int16_t{2}, int16_t{1}}) {
    image moving = img;
    // The broker that is not a replica yet, and a follower.
    std::vector<int32_t> away = {newcomers[1], newcomers[0]};
    out.clear();
    ASSERT_TRUE(plan_alter_reassignment(moving, "t", 0, away, out).ok());
    moving = commit(moving, out);
    out.clear();
    std::vector<int32_t> all = moving.topic("t")->partitions[0].isr;
    for (int32_t r : away)
      if (std::count(all.begin(), all.end(), r) == 0) all.push_back(r);
    a = alter_one(moving, isr_change(moving, "t", 0, all, version), out);
    EXPECT_EQ(a.error, version >= 2 ? error_code::new_leader_elected : error_code::fenced_leader_epoch);
    ASSERT_EQ(out.size(), 1u);
    moving = commit(moving, out);
    auto& moved = moving.topic("t")->partitions[0];
    EXPECT_EQ(moved.replicas, away);
    EXPECT_NE(moved.leader, leader);
    EXPECT_TRUE(std::count(away.begin(), away.end(), moved.leader));
    EXPECT_FALSE(leadership_violation(moving).has_value());
  }
}

TEST(ClusterControl, AlterPartitionAnswersEachPartitionOnTheStateTheOnesBeforeLeft) {
  image img = with_topic(cluster_of(3), "t", 3, 3);
  auto& parts = img.topic("t")->partitions;
  int32_t leader = parts[0].leader;
  auto req = isr_change(img, "t", 0, {leader});
  auto item = req.partitions[0];
  // The same partition twice: the second names the epoch the first replaced.
  req.partitions.push_back(item);
  // A partition this broker does not lead, and an unknown one: their errors
  // do not stop the others.
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].leader == leader) continue;
    auto other = item;
    other.partition = static_cast<int32_t>(i);
    other.leader_epoch = parts[i].leader_epoch;
    other.partition_epoch = parts[i].partition_epoch;
    req.partitions.push_back(other);
    break;
  }
  ASSERT_EQ(req.partitions.size(), 3u);
  auto unknown = item;
  unknown.partition = 7;
  req.partitions.push_back(unknown);
  std::vector<record> out;
  auto res = plan_alter_partition(img, req, out);
  ASSERT_EQ(res.partitions.size(), 4u);
  EXPECT_EQ(res.partitions[0].error, error_code::none);
  EXPECT_EQ(res.partitions[1].error, error_code::invalid_update_version);
  EXPECT_EQ(res.partitions[2].error, error_code::invalid_request);
  EXPECT_EQ(res.partitions[3].error, error_code::unknown_topic_or_partition);
  EXPECT_EQ(out.size(), 1u);
}

// ---- unclean leader election

constexpr bool kUncleanOn = true;  // the static unclean.leader.election.enable

// Sets a dynamic config (a topic's override, or a broker's: "" for the
// whole cluster) as an AlterConfigs would commit it.
image with_config(const image& img, int8_t resource_type, const std::string& resource, const std::string& key,
                  std::optional<std::string> value) {
  protocol::config_record c;
  c.resource_type = resource_type;
  c.resource_name = resource;
  c.name = key;
  c.value = std::move(value);
  return commit(img, {c});
}

// Topic "t": one partition on brokers 1-3 whose followers fell out of sync,
// so its leader is its whole ISR.
image leader_alone_in_isr() {
  image img = with_topic(cluster_of(3), "t", 1, 3);
  const int32_t leader = img.topic("t")->partitions[0].leader;
  std::vector<record> out;
  EXPECT_EQ(alter_one(img, isr_change(img, "t", 0, {leader}), out).error, error_code::none);
  return commit(img, out);
}

// The out-of-sync replicas of partition 0 of "t", in replica order.
std::vector<int32_t> out_of_sync(const image& img) {
  auto& p = img.topic("t")->partitions[0];
  std::vector<int32_t> r;
  for (int32_t id : p.replicas)
    if (std::find(p.isr.begin(), p.isr.end(), id) == p.isr.end()) r.push_back(id);
  return r;
}

// Checks that partition 0 of "t" is led by `leader`, elected uncleanly
// where the ISR was `previous_isr` and the leader epoch `previous_epoch`.
void expect_unclean_leader(const image& img, const std::vector<unclean_election>& reported, int32_t leader,
                           const std::vector<int32_t>& previous_isr, int32_t previous_epoch) {
  auto& p = img.topic("t")->partitions[0];
  EXPECT_EQ(p.leader, leader);
  EXPECT_EQ(p.isr, std::vector<int32_t>{leader});
  EXPECT_EQ(p.leader_recovery_state, 1);
  EXPECT_EQ(p.leader_epoch, previous_epoch + 1);
  EXPECT_EQ(reported, (std::vector<unclean_election>{{"t", 0, leader, previous_isr}}));
  auto why = leadership_violation(img);
  EXPECT_FALSE(why.has_value()) << *why;
}

TEST(ClusterControl, UncleanElectionFollowsTheTopicThenTheClusterThenTheStaticConfig) {
  image img = with_topic(cluster_of(1), "t", 1, 1);
  const std::string key = "unclean.leader.election.enable";
  EXPECT_FALSE(unclean_leader_election_enabled(img, "t", false));
  EXPECT_TRUE(unclean_leader_election_enabled(img, "t", true));
  image cluster_on = with_config(img, broker_resource, "", key, "true");
  EXPECT_TRUE(unclean_leader_election_enabled(cluster_on, "t", false));
  image cluster_off = with_config(img, broker_resource, "", key, "false");
  EXPECT_FALSE(unclean_leader_election_enabled(cluster_off, "t", true));
  // One broker's own dynamic config is not the cluster's.
  EXPECT_FALSE(unclean_leader_election_enabled(with_config(img, broker_resource, "1", key, "true"), "t", false));
  EXPECT_FALSE(unclean_leader_election_enabled(with_config(cluster_on, topic_resource, "t", key, "false"), "t", true));
  EXPECT_TRUE(unclean_leader_election_enabled(with_config(cluster_off, topic_resource, "t", key, "true"), "t", false));
  // Removing the override falls back again.
  image removed = with_config(img, topic_resource, "t", key, "true");
  removed = with_config(removed, topic_resource, "t", key, std::nullopt);
  EXPECT_FALSE(unclean_leader_election_enabled(removed, "t", false));
}

TEST(ClusterControl, FencedLastIsrMemberLeavesThePartitionLeaderlessWithUncleanElectionOff) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  std::vector<record> out;
  auto d = plan_fence_broker(img, before.leader, out);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d.unclean_elections.empty());
  img = commit(img, out);
  auto& p = img.topic("t")->partitions[0];
  EXPECT_EQ(p.leader, -1);
  EXPECT_EQ(p.isr, std::vector<int32_t>{before.leader});
  EXPECT_EQ(p.leader_recovery_state, 0);
  // Nothing changes later either: the periodic check finds nobody in sync.
  out.clear();
  EXPECT_TRUE(plan_elect_leaderless(img, out, false).unclean_elections.empty());
  EXPECT_TRUE(out.empty());
}

TEST(ClusterControl, FencedLastIsrMemberHandsOverToAnOutOfSyncReplicaWithUncleanElectionOn) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  const auto followers = out_of_sync(img);
  ASSERT_EQ(followers.size(), 2u);
  const int32_t next = followers[0], after_that = followers[1];
  std::vector<record> out;
  auto d = plan_fence_broker(img, before.leader, out, kUncleanOn);
  ASSERT_TRUE(d.ok());
  img = commit(img, out);
  expect_unclean_leader(img, d.unclean_elections, next, {before.leader}, before.leader_epoch);
  // The first usable one: with that one fenced too, the next replica leads.
  out.clear();
  d = plan_fence_broker(img, next, out, kUncleanOn);
  img = commit(img, out);
  EXPECT_EQ(img.topic("t")->partitions[0].leader, after_that);
  EXPECT_EQ(img.topic("t")->partitions[0].leader_recovery_state, 1);  // still recovering
  EXPECT_EQ(d.unclean_elections.size(), 1u);
  EXPECT_FALSE(leadership_violation(img).has_value());
}

TEST(ClusterControl, TopicOverrideOfUncleanElectionBeatsTheBrokerConfigs) {
  const std::string key = "unclean.leader.election.enable";
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  // Off for the topic, on for the cluster and in server.properties: leaderless.
  image off = with_config(with_config(img, broker_resource, "", key, "true"), topic_resource, "t", key, "false");
  std::vector<record> out;
  EXPECT_TRUE(plan_fence_broker(off, before.leader, out, kUncleanOn).unclean_elections.empty());
  EXPECT_EQ(commit(off, out).topic("t")->partitions[0].leader, -1);
  // On for the topic, off for the cluster: elected.
  image on = with_config(with_config(img, broker_resource, "", key, "false"), topic_resource, "t", key, "true");
  out.clear();
  auto d = plan_fence_broker(on, before.leader, out);
  on = commit(on, out);
  expect_unclean_leader(on, d.unclean_elections, out_of_sync(img).front(), {before.leader}, before.leader_epoch);
  // No override, on for the cluster, off in server.properties: elected.
  image cluster = with_config(img, broker_resource, "", key, "true");
  out.clear();
  d = plan_fence_broker(cluster, before.leader, out);
  EXPECT_EQ(d.unclean_elections.size(), 1u);
}

TEST(ClusterControl, ControlledShutdownUnregistrationAndRestartOfTheLastIsrMemberElectUncleanly) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  const int32_t next = out_of_sync(img).front();
  auto* b = img.broker(before.leader);

  std::vector<record> out;
  auto hb = plan_heartbeat(img, {before.leader, b->broker_epoch, img.last_offset, false, true}, out, kUncleanOn);
  EXPECT_TRUE(hb.should_shut_down);
  expect_unclean_leader(commit(img, out), hb.unclean_elections, next, {before.leader}, before.leader_epoch);

  out.clear();
  hb = plan_heartbeat(img, {before.leader, b->broker_epoch, img.last_offset, true, false}, out, kUncleanOn);
  expect_unclean_leader(commit(img, out), hb.unclean_elections, next, {before.leader}, before.leader_epoch);

  out.clear();
  auto d = plan_unregister_broker(img, before.leader, out, kUncleanOn);
  ASSERT_TRUE(d.ok());
  image gone = commit(img, out);
  EXPECT_EQ(gone.broker(before.leader), nullptr);
  expect_unclean_leader(gone, d.unclean_elections, next, {before.leader}, before.leader_epoch);

  // A new incarnation after an unclean shutdown: the old one's leadership goes.
  out.clear();
  auto reg = plan_register_broker(img, registration(before.leader, std::nullopt, 9), "cluster-1", img.last_offset + 1,
                                  [](int32_t) { return false; }, out, kUncleanOn);
  ASSERT_EQ(reg.error, error_code::none);
  expect_unclean_leader(commit(img, out), reg.unclean_elections, next, {before.leader}, before.leader_epoch);

  // And with unclean election off, none of them elects anybody.
  out.clear();
  hb = plan_heartbeat(img, {before.leader, b->broker_epoch, img.last_offset, false, true}, out);
  EXPECT_TRUE(hb.unclean_elections.empty());
  EXPECT_EQ(commit(img, out).topic("t")->partitions[0].leader, -1);
  out.clear();
  EXPECT_TRUE(plan_unregister_broker(img, before.leader, out).unclean_elections.empty());
  EXPECT_EQ(commit(img, out).topic("t")->partitions[0].leader, -1);
}

TEST(ClusterControl, ReturningOutOfSyncReplicaLeadsALeaderlessPartitionOnlyWithUncleanElectionOn) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  // Every replica goes: the followers first, then the leader, leaving the
  // partition leaderless.
  std::vector<record> out;
  for (int32_t r : out_of_sync(img)) plan_fence_broker(img, r, out);
  img = commit(img, out);
  out.clear();
  plan_fence_broker(img, before.leader, out, kUncleanOn);  // nobody usable to elect
  img = commit(img, out);
  ASSERT_EQ(img.topic("t")->partitions[0].leader, -1);
  const auto leaderless = img.topic("t")->partitions[0];
  const int32_t returning = out_of_sync(img).back();
  auto unfence = [&](bool unclean) {
    std::vector<record> o;
    auto hb = plan_heartbeat(img, {returning, img.broker(returning)->broker_epoch, img.last_offset, false, false}, o,
                             unclean);
    EXPECT_FALSE(hb.is_fenced);
    return std::make_pair(commit(img, o), hb.unclean_elections);
  };
  // Off: it is unfenced, and the partition waits for its ISR.
  auto [off, none] = unfence(false);
  EXPECT_FALSE(off.broker(returning)->fenced);
  EXPECT_EQ(off.topic("t")->partitions[0].leader, -1);
  EXPECT_TRUE(none.empty());
  // On: it leads.
  auto [on, elected] = unfence(kUncleanOn);
  expect_unclean_leader(on, elected, returning, {before.leader}, leaderless.leader_epoch);
}

TEST(ClusterControl, SwitchingUncleanElectionOnElectsForPartitionsAlreadyLeaderless) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  std::vector<record> out;
  plan_fence_broker(img, before.leader, out);
  img = commit(img, out);
  const auto leaderless = img.topic("t")->partitions[0];
  ASSERT_EQ(leaderless.leader, -1);
  const int32_t next = out_of_sync(img).front();
  // The periodic check with the config still off: nothing.
  out.clear();
  plan_elect_leaderless(img, out, false);
  EXPECT_TRUE(out.empty());
  // Switched on for the topic: the next check elects.
  img = with_config(img, topic_resource, "t", "unclean.leader.election.enable", "true");
  auto d = plan_elect_leaderless(img, out, false);
  ASSERT_EQ(out.size(), 1u);
  img = commit(img, out);
  expect_unclean_leader(img, d.unclean_elections, next, {before.leader}, leaderless.leader_epoch);
}

TEST(ClusterControl, ElectLeadersUncleanNeedsNoConfigAndIsReported) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  const int32_t next = out_of_sync(img).front();
  std::vector<record> out;
  plan_fence_broker(img, before.leader, out);
  img = commit(img, out);
  const auto leaderless = img.topic("t")->partitions[0];
  out.clear();
  auto d = plan_elect_leader(img, "t", 0, election_type::unclean, out);
  ASSERT_TRUE(d.ok());
  img = commit(img, out);
  expect_unclean_leader(img, d.unclean_elections, next, {before.leader}, leaderless.leader_epoch);
}

TEST(ClusterControl, UncleanLeaderSaysItRecoveredAndGrowsTheIsrThroughAlterPartition) {
  image img = leader_alone_in_isr();
  const auto before = img.topic("t")->partitions[0];
  std::vector<record> out;
  plan_fence_broker(img, before.leader, out, kUncleanOn);
  img = commit(img, out);
  const auto elected = img.topic("t")->partitions[0];
  ASSERT_EQ(elected.leader_recovery_state, 1);
  int32_t other = -1;  // the replica neither fenced nor leading
  for (int32_t r : elected.replicas)
    if (r != before.leader && r != elected.leader) other = r;
  ASSERT_TRUE(img.is_usable(other));
  // While recovering it may not grow the ISR.
  out.clear();
  auto req = isr_change(img, "t", 0, {elected.leader, other});
  req.partitions[0].leader_recovery_state = 1;
  EXPECT_EQ(alter_one(img, req, out).error, error_code::invalid_request);
  EXPECT_TRUE(out.empty());
  // Recovered, with the follower caught up: one change does both.
  req.partitions[0].leader_recovery_state = 0;
  auto a = alter_one(img, req, out);
  ASSERT_EQ(a.error, error_code::none);
  ASSERT_EQ(out.size(), 1u);
  auto& change = std::get<protocol::partition_change_record>(out[0]);
  EXPECT_EQ(change.leader_recovery_state, 0);
  EXPECT_EQ(change.leader, -2);
  img = commit(img, out);
  auto& p = img.topic("t")->partitions[0];
  EXPECT_EQ(p.leader, elected.leader);
  EXPECT_EQ(p.isr, (std::vector<int32_t>{elected.leader, other}));
  EXPECT_EQ(p.leader_recovery_state, 0);
  EXPECT_EQ(p.leader_epoch, elected.leader_epoch);
  EXPECT_EQ(p.partition_epoch, elected.partition_epoch + 1);
  EXPECT_EQ(a.partition, p);
  EXPECT_FALSE(leadership_violation(img).has_value());
  // Its leadership now moves cleanly, to the in-sync follower.
  out.clear();
  auto d = plan_fence_broker(img, elected.leader, out, kUncleanOn);
  EXPECT_TRUE(d.unclean_elections.empty());
  img = commit(img, out);
  EXPECT_EQ(img.topic("t")->partitions[0].leader, other);
  EXPECT_EQ(img.topic("t")->partitions[0].leader_recovery_state, 0);
}

// ---- producer ids

TEST(ProducerIds, BlocksFollowEachOtherThroughTheLog) {
  image img = cluster_of(3);
  EXPECT_EQ(img.next_producer_id, 0);
  std::vector<record> out;
  auto a = plan_allocate_producer_ids(img, 1, img.broker(1)->broker_epoch, out);
  ASSERT_EQ(a.error, error_code::none) << a.message;
  EXPECT_EQ(a.producer_id_start, 0);
  EXPECT_EQ(a.producer_id_len, producer_id_block_size);
  ASSERT_EQ(out.size(), 1u);
  auto* r = std::get_if<protocol::producer_ids_record>(&out[0]);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->broker_id, 1);
  EXPECT_EQ(r->broker_epoch, img.broker(1)->broker_epoch);
  EXPECT_EQ(r->next_producer_id, 1000);
  img = commit(img, out);
  EXPECT_EQ(img.next_producer_id, 1000);

  // The next broker gets the next block, and so does the same one asking again.
  out.clear();
  auto b = plan_allocate_producer_ids(img, 2, img.broker(2)->broker_epoch, out);
  ASSERT_EQ(b.error, error_code::none);
  EXPECT_EQ(b.producer_id_start, 1000);
  img = commit(img, out);
  out.clear();
  auto c = plan_allocate_producer_ids(img, 1, img.broker(1)->broker_epoch, out);
  EXPECT_EQ(c.producer_id_start, 2000);
  img = commit(img, out);
  EXPECT_EQ(img.next_producer_id, 3000);

  // A fenced broker still gets one: Kafka checks only the registration.
  out.clear();
  plan_fence_broker(img, 3, out);
  img = commit(img, out);
  out.clear();
  auto d = plan_allocate_producer_ids(img, 3, img.broker(3)->broker_epoch, out);
  EXPECT_EQ(d.error, error_code::none);
  EXPECT_EQ(d.producer_id_start, 3000);
}

TEST(ProducerIds, StaleOrUnknownBrokerEpochGetsNothing) {
  image img = cluster_of(2);
  std::vector<record> out;
  auto stale = plan_allocate_producer_ids(img, 1, img.broker(1)->broker_epoch - 1, out);
  EXPECT_EQ(stale.error, error_code::stale_broker_epoch);
  auto unknown = plan_allocate_producer_ids(img, 9, 0, out);
  EXPECT_EQ(unknown.error, error_code::stale_broker_epoch);
  auto none = plan_allocate_producer_ids(img, 1, -1, out);
  EXPECT_EQ(none.error, error_code::stale_broker_epoch);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(img.next_producer_id, 0);
}

TEST(ProducerIds, ExhaustedRangeIsAnError) {
  image img = cluster_of(1);
  img.next_producer_id = std::numeric_limits<int64_t>::max() - producer_id_block_size + 1;
  std::vector<record> out;
  auto r = plan_allocate_producer_ids(img, 1, img.broker(1)->broker_epoch, out);
  EXPECT_EQ(r.error, error_code::unknown_server_error);
  EXPECT_TRUE(out.empty());
  // The last whole block is still given.
  img.next_producer_id -= 1;
  r = plan_allocate_producer_ids(img, 1, img.broker(1)->broker_epoch, out);
  EXPECT_EQ(r.error, error_code::none);
  EXPECT_EQ(r.producer_id_start + r.producer_id_len, std::numeric_limits<int64_t>::max());
}

TEST(ProducerIds, ReplayNeverMovesBackAndRoundTrips) {
  image img;
  protocol::producer_ids_record r;
  r.broker_id = 1;
  r.broker_epoch = 5;
  r.next_producer_id = 2000;
  img = apply(img, {r}, 0);
  EXPECT_EQ(img.next_producer_id, 2000);
  r.next_producer_id = 1000;
  img = apply(img, {r}, 1);
  EXPECT_EQ(img.next_producer_id, 2000);
  auto back = decode_record(encode_record(record(r)));
  ASSERT_TRUE(back.ok()) << back.err().message;
  auto* got = std::get_if<protocol::producer_ids_record>(&back.value());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->broker_id, 1);
  EXPECT_EQ(got->broker_epoch, 5);
  EXPECT_EQ(got->next_producer_id, 1000);
  EXPECT_STREQ(record_name(back.value()), "ProducerIdsRecord");
  // An empty image writes none into a snapshot.
  for (auto& rec : image_records(image{})) EXPECT_EQ(std::get_if<protocol::producer_ids_record>(&rec), nullptr);
}

TEST(ClusterControl, ImageRecordsRebuildTheImage) {
  image img = with_topic(with_topic(cluster_of(3, {"a", "b"}), "t", 4, 3), "u", 2, 1);
  std::vector<record> out;
  plan_fence_broker(img, 3, out);
  img = commit(img, out);
  img.broker_configs["1"]["log.retention.ms"] = "5";
  img.features["metadata.version"] = 21;
  img.next_producer_id = 3000;
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
  EXPECT_EQ(rebuilt.next_producer_id, 3000);
  ASSERT_EQ(rebuilt.topics.size(), img.topics.size());
  for (auto& [name, t] : img.topics) {
    auto* r = rebuilt.topic(name);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->topic_id, t->topic_id);
    EXPECT_EQ(r->partitions, t->partitions);
    EXPECT_EQ(r->configs, t->configs);
  }
}

// Random registrations, heartbeats, fencing, shutdowns, topics, elections,
// reassignments, ISR changes and unclean election switched on and off: after
// each, nobody fenced leads and every leader is a replica in its ISR.
TEST(ClusterControl, RandomDecisionsKeepTheLeadershipInvariant) {
  size_t unclean_elections = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    const bool unclean = seed % 2 == 0;  // the static config
    image img = cluster_of(5, {"a", "b", "c"});
    std::map<int32_t, uint8_t> inc;
    int topics = 0;
    for (int step = 0; step < 300; ++step) {
      std::vector<record> out;
      int32_t id = 1 + static_cast<int32_t>(rng() % 5);
      auto* b = img.broker(id);
      switch (rng() % 11) {
        case 0: unclean_elections += plan_fence_broker(img, id, out, unclean).unclean_elections.size(); break;
        case 1:
          if (b)
            unclean_elections += plan_heartbeat(img, {id, b->broker_epoch, img.last_offset, false, false}, out, unclean)
                                     .unclean_elections.size();
          break;
        case 2:
          if (b)
            unclean_elections += plan_heartbeat(img, {id, b->broker_epoch, img.last_offset, false, true}, out, unclean)
                                     .unclean_elections.size();
          break;
        case 3: {
          auto res = plan_register_broker(img, registration(id, std::string(1, static_cast<char>('a' + id % 3)), ++inc[id]),
                                          "cluster-1", img.last_offset + 1, [](int32_t) { return false; }, out,
                                          unclean);
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
        case 8:
          // A leader asks for an ISR of some of its replicas (itself always).
          for (auto& [name, t] : img.topics) {
            auto& p = t->partitions[rng() % t->partitions.size()];
            if (p.leader < 0) break;
            std::vector<int32_t> isr;
            for (int32_t r : p.replicas)
              if (r == p.leader || rng() % 2) isr.push_back(r);
            plan_alter_partition(img, isr_change(img, name, p.partition, isr), out);
            break;
          }
          break;
        case 9: unclean_elections += plan_elect_leaderless(img, out, unclean).unclean_elections.size(); break;
        case 10:
          if (!img.topics.empty()) {
            auto it = std::next(img.topics.begin(), static_cast<long>(rng() % img.topics.size()));
            img = with_config(img, topic_resource, it->first, "unclean.leader.election.enable",
                              rng() % 2 ? "true" : "false");
          }
          break;
      }
      img = commit(img, out);
      auto why = leadership_violation(img);
      ASSERT_FALSE(why.has_value()) << "seed " << seed << " step " << step << ": " << *why;
    }
  }
  EXPECT_GT(unclean_elections, 0u);  // the sequences did reach them
}

}  // namespace
}  // namespace gregor::metadata
