// The Raft core as plain function calls: each rule on its own, then whole
// clusters of cores in memory with lost, duplicated and late messages,
// partitions, crashes and snapshots, checked for Raft's safety properties
// after every event and for liveness once the faults stop.
//
// RAFT_SEED=<n> runs one seed of the randomized test (with a trace);
// RAFT_SEEDS=<n> runs that many.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>

#include "raft/core.h"

namespace gregor::raft {
namespace {

using kind = log_op::kind;

core_config config_for(int32_t id, std::vector<int32_t> voters) {
  core_config c;
  c.node_id = id;
  c.voters = std::move(voters);
  return c;
}

std::function<uint64_t()> fixed_random(uint64_t v = 0) {
  return [v] { return v; };
}

template <class T>
const T* find_request(const ready& r, int32_t to) {
  for (auto& o : r.requests)
    if (o.to == to)
      if (auto* m = std::get_if<T>(&o.msg)) return m;
  return nullptr;
}

template <class T>
const T* find_response(const ready& r) {
  for (auto& o : r.responses)
    if (auto* m = std::get_if<T>(&o.msg)) return m;
  return nullptr;
}

uint64_t request_id(const ready& r, int32_t to) {
  for (auto& o : r.requests)
    if (o.to == to) return o.id;
  return 0;
}

// ---- single rules

TEST(RaftCore, QuorumOfOneElectsItselfAndCommitsOnAppend) {
  core c(config_for(1, {1}), {}, {}, 0, fixed_random());
  c.tick(0);
  EXPECT_EQ(c.current_role(), role::leader);
  EXPECT_EQ(c.epoch(), 1);
  auto r = c.take_ready();
  ASSERT_TRUE(r.persist.has_value());
  EXPECT_EQ(r.persist->epoch, 1);
  EXPECT_EQ(r.persist->voted_id, 1);
  EXPECT_EQ(r.persist->leader_id, 1);
  ASSERT_EQ(r.log.size(), 1u);
  EXPECT_EQ(r.log[0].what, kind::append_leader_change);
  EXPECT_TRUE(r.high_watermark_changed);
  EXPECT_EQ(c.high_watermark(), 1);
  auto last = c.propose({bytes{1}, bytes{2}}, 1);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 2);
  EXPECT_EQ(c.high_watermark(), 3);
  // Nothing to wait for: it never asks for a tick in the past (a driver
  // would spin).
  c.tick(100'000);
  EXPECT_GT(c.next_deadline_ms(), 100'000);
}

TEST(RaftCore, PreVoteThenVoteThenLeaderWithBeginQuorumEpoch) {
  core c(config_for(1, {1, 2, 3}), {}, {}, 0, fixed_random());
  c.tick(5000);  // past the election timeout
  EXPECT_EQ(c.current_role(), role::prospective);
  EXPECT_EQ(c.epoch(), 0);  // a pre-vote bumps nothing
  auto r = c.take_ready();
  EXPECT_FALSE(r.persist.has_value() && r.persist->epoch != 0);
  auto* pv = find_request<vote_request>(r, 2);
  ASSERT_NE(pv, nullptr);
  EXPECT_TRUE(pv->pre_vote);
  EXPECT_EQ(pv->candidate_epoch, 1);
  c.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 0, true}, 5001);
  EXPECT_EQ(c.current_role(), role::candidate);
  EXPECT_EQ(c.epoch(), 1);
  r = c.take_ready();
  ASSERT_TRUE(r.persist.has_value());
  EXPECT_EQ(r.persist->voted_id, 1);
  auto* v = find_request<vote_request>(r, 3);
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(v->pre_vote);
  c.handle_response(3, request_id(r, 3), vote_response{error_code::none, -1, 1, true}, 5002);
  EXPECT_EQ(c.current_role(), role::leader);
  r = c.take_ready();
  EXPECT_NE(find_request<begin_epoch_request>(r, 2), nullptr);
  EXPECT_NE(find_request<begin_epoch_request>(r, 3), nullptr);
  EXPECT_EQ(c.high_watermark(), -1);  // nobody else has the LeaderChange record yet
}

TEST(RaftCore, VotesOncePerEpochAndOnlyForUpToDateLogs) {
  log_shape shape;
  shape.log_end_offset = 10;
  shape.epochs = {{1, 0}, {2, 5}};
  core c(config_for(2, {1, 2, 3}), {2, -1, -1}, shape, 0, fixed_random());
  // Behind: last epoch 1 < 2.
  c.handle_request(1, 7, vote_request{3, 1, {20, 1}, false}, 1);
  auto r = c.take_ready();
  ASSERT_NE(find_response<vote_response>(r), nullptr);
  EXPECT_FALSE(find_response<vote_response>(r)->vote_granted);
  EXPECT_EQ(c.epoch(), 3);  // but the higher epoch is taken
  // Up to date: granted, persisted first.
  c.handle_request(3, 8, vote_request{3, 3, {10, 2}, false}, 2);
  r = c.take_ready();
  ASSERT_TRUE(r.persist.has_value());
  EXPECT_EQ(r.persist->voted_id, 3);
  EXPECT_TRUE(find_response<vote_response>(r)->vote_granted);
  // Nobody else in this epoch.
  c.handle_request(1, 9, vote_request{3, 1, {12, 2}, false}, 3);
  r = c.take_ready();
  EXPECT_FALSE(find_response<vote_response>(r)->vote_granted);
  // The same candidate again: yes.
  c.handle_request(3, 10, vote_request{3, 3, {10, 2}, false}, 3);
  r = c.take_ready();
  EXPECT_TRUE(find_response<vote_response>(r)->vote_granted);
}

TEST(RaftCore, FollowerOfALiveLeaderRefusesPreVotes) {
  core c(config_for(2, {1, 2, 3}), {4, -1, 1}, {}, 0, fixed_random());
  EXPECT_EQ(c.current_role(), role::follower);
  c.take_ready();
  // A partitioned node comes back asking for a pre-vote in epoch 5: the
  // leader of epoch 4 was heard from recently, so no.
  c.handle_request(3, 1, vote_request{5, 3, {100, 4}, true}, 100);
  auto r = c.take_ready();
  EXPECT_FALSE(find_response<vote_response>(r)->vote_granted);
  EXPECT_EQ(find_response<vote_response>(r)->leader_id, 1);
  EXPECT_EQ(c.epoch(), 4);
  EXPECT_FALSE(r.persist.has_value());
  // Once the leader has been silent for the fetch timeout, yes.
  c.handle_request(3, 2, vote_request{5, 3, {100, 4}, true}, 100 + 2001);
  r = c.take_ready();
  EXPECT_TRUE(find_response<vote_response>(r)->vote_granted);
}

TEST(RaftCore, ProspectiveLearnsTheLeaderFromPreVoteAnswers) {
  core c(config_for(3, {1, 2, 3}), {4, -1, -1}, {}, 0, fixed_random());
  c.tick(5000);
  ASSERT_EQ(c.current_role(), role::prospective);
  auto r = c.take_ready();
  c.handle_response(1, request_id(r, 1), vote_response{error_code::none, 2, 4, false}, 5001);
  EXPECT_EQ(c.current_role(), role::follower);
  EXPECT_EQ(c.leader_id(), 2);
  EXPECT_EQ(c.epoch(), 4);
  r = c.take_ready();
  EXPECT_NE(find_request<fetch_request>(r, 2), nullptr);
}

// A leader of epoch 1 with its LeaderChange record at offset 0 and two
// followers that have not fetched yet.
core leader_of_three() {
  core c(config_for(1, {1, 2, 3}), {1, 1, -1}, {}, 0, fixed_random());
  // Make it leader: pre-vote and vote granted by 2.
  c.tick(5000);
  auto r = c.take_ready();
  c.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 1, true}, 5000);
  r = c.take_ready();
  c.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 2, true}, 5000);
  EXPECT_EQ(c.current_role(), role::leader);
  c.take_ready();
  return c;
}

TEST(RaftCore, HighWatermarkNeedsAMajorityInTheCurrentEpoch) {
  core c = leader_of_three();
  const int32_t e = c.epoch();
  EXPECT_EQ(c.epoch_start_offset(), 0);
  c.propose({bytes{7}}, 5001);  // offset 1
  c.take_ready();
  // Follower 2 fetches from 0: it gets records, the HW does not move yet.
  c.handle_request(2, 1, fetch_request{2, e, 0, 0, 500}, 5002);
  auto r = c.take_ready();
  auto* f = find_response<fetch_response>(r);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->read_from, 0);
  EXPECT_EQ(c.high_watermark(), -1);
  // It has them now: with the leader, a majority holds offsets 0 and 1.
  c.handle_request(2, 2, fetch_request{2, e, 2, e, 500}, 5003);
  EXPECT_EQ(c.high_watermark(), 2);
  r = c.take_ready();
  EXPECT_TRUE(r.high_watermark_changed);
  ASSERT_NE(find_response<fetch_response>(r), nullptr);  // answered at once: a new HW for it
  EXPECT_EQ(find_response<fetch_response>(r)->high_watermark, 2);
  // Caught up with nothing new: parked until the max wait.
  c.handle_request(2, 3, fetch_request{2, e, 2, e, 500}, 5004);
  r = c.take_ready();
  EXPECT_EQ(find_response<fetch_response>(r), nullptr);
  EXPECT_EQ(c.next_deadline_ms(), 5004 + 500);
  // New data completes it early.
  c.propose({bytes{8}}, 5100);
  r = c.take_ready();
  ASSERT_NE(find_response<fetch_response>(r), nullptr);
  EXPECT_EQ(find_response<fetch_response>(r)->read_from, 2);
}

TEST(RaftCore, EntriesOfEarlierEpochsCommitOnlyWithOneOfTheCurrentEpoch) {
  // Raft's figure 8: a majority holding records of an earlier epoch does not
  // commit them; they commit once a record of the leader's own epoch does.
  log_shape old;
  old.log_end_offset = 5;
  old.epochs = {{1, 0}};
  core c(config_for(1, {1, 2, 3}), {2, 1, -1}, old, 0, fixed_random());
  c.tick(5000);
  auto r = c.take_ready();
  c.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 2, true}, 5000);
  r = c.take_ready();
  c.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 3, true}, 5000);
  ASSERT_EQ(c.current_role(), role::leader);
  ASSERT_EQ(c.epoch_start_offset(), 5);
  c.take_ready();
  c.handle_request(2, 1, fetch_request{2, c.epoch(), 5, 1, 0}, 5001);
  EXPECT_EQ(c.high_watermark(), -1);
  c.handle_request(2, 2, fetch_request{2, c.epoch(), 6, c.epoch(), 0}, 5002);
  EXPECT_EQ(c.high_watermark(), 6);
}

TEST(RaftCore, FetchErrorsByEpoch) {
  core c = leader_of_three();
  const int32_t e = c.epoch();
  c.handle_request(2, 1, fetch_request{2, e - 1, 0, 0, 0}, 5001);
  auto r = c.take_ready();
  EXPECT_EQ(find_response<fetch_response>(r)->error, error_code::fenced_leader_epoch);
  c.handle_request(2, 2, fetch_request{2, e + 1, 0, 0, 0}, 5001);
  r = c.take_ready();
  EXPECT_EQ(find_response<fetch_response>(r)->error, error_code::unknown_leader_epoch);
  core f(config_for(2, {1, 2, 3}), {e, -1, 1}, {}, 0, fixed_random());
  f.take_ready();
  f.handle_request(3, 3, fetch_request{3, e, 0, 0, 0}, 1);
  r = f.take_ready();
  auto* resp = find_response<fetch_response>(r);
  EXPECT_EQ(resp->error, error_code::not_leader_or_follower);
  EXPECT_EQ(resp->leader_id, 1);
}

TEST(RaftCore, DivergingFollowerTruncatesToTheLeadersEpochEnd) {
  // Leader's log: epoch 1 at [0, 5), epoch 3 at [5, 8).
  log_shape leader_log;
  leader_log.log_end_offset = 8;
  leader_log.epochs = {{1, 0}, {3, 5}};
  core l(config_for(1, {1, 2, 3}), {3, 1, -1}, leader_log, 0, fixed_random());
  l.tick(5000);
  auto r = l.take_ready();
  l.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 3, true}, 5000);
  r = l.take_ready();
  l.handle_response(2, request_id(r, 2), vote_response{error_code::none, -1, 4, true}, 5000);
  ASSERT_EQ(l.current_role(), role::leader);
  l.take_ready();
  // The follower wrote epoch 2 at [5, 9): it diverges at offset 5.
  l.handle_request(3, 1, fetch_request{3, l.epoch(), 9, 2, 0}, 5001);
  auto lr = l.take_ready();
  auto* resp = find_response<fetch_response>(lr);
  ASSERT_TRUE(resp->diverging_epoch.has_value());
  EXPECT_EQ(resp->diverging_epoch->epoch, 1);
  EXPECT_EQ(resp->diverging_epoch->offset, 5);

  log_shape follower_log;
  follower_log.log_end_offset = 9;
  follower_log.epochs = {{1, 0}, {2, 5}};
  core f(config_for(3, {1, 2, 3}), {l.epoch(), -1, 1}, follower_log, 0, fixed_random());
  r = f.take_ready();
  f.handle_response(1, request_id(r, 1), *resp, 10);
  r = f.take_ready();
  ASSERT_FALSE(r.log.empty());
  EXPECT_EQ(r.log[0].what, kind::truncate_to);
  EXPECT_EQ(r.log[0].offset, 5);
  EXPECT_EQ(f.log_end_offset(), 5);
  auto* next = find_request<fetch_request>(r, 1);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->fetch_offset, 5);
  EXPECT_EQ(next->last_fetched_epoch, 1);
}

TEST(RaftCore, FollowerBelowTheLogStartDownloadsTheSnapshot) {
  core l = leader_of_three();
  const int32_t e = l.epoch();
  for (int i = 0; i < 9; ++i) l.propose({bytes{static_cast<uint8_t>(i)}}, 5001);  // offsets 1..9
  l.handle_request(2, 1, fetch_request{2, e, 10, e, 0}, 5002);
  EXPECT_EQ(l.high_watermark(), 10);
  l.snapshot_written({8, e});
  auto r = l.take_ready();
  bool deleted = false;
  for (auto& op : r.log) deleted = deleted || (op.what == kind::delete_before && op.snapshot.offset == 8);
  EXPECT_TRUE(deleted);
  EXPECT_EQ(l.log_start_offset(), 8);
  l.handle_request(3, 2, fetch_request{3, e, 0, 0, 0}, 5003);
  auto lr = l.take_ready();
  auto* resp = find_response<fetch_response>(lr);
  ASSERT_TRUE(resp->snapshot_id.has_value());
  EXPECT_EQ(resp->snapshot_id->offset, 8);

  core f(config_for(3, {1, 2, 3}), {e, -1, 1}, {}, 0, fixed_random());
  r = f.take_ready();
  f.handle_response(1, request_id(r, 1), *resp, 10);
  r = f.take_ready();
  auto* fs = find_request<fetch_snapshot_request>(r, 1);
  ASSERT_NE(fs, nullptr);
  EXPECT_EQ(fs->position, 0);
  // The leader answers with what to read; the driver fills the chunk.
  l.handle_request(3, 3, *fs, 5004);
  auto lr2 = l.take_ready();
  auto* sresp = find_response<fetch_snapshot_response>(lr2);
  ASSERT_EQ(sresp->error, error_code::none);
  EXPECT_GT(sresp->read_max_bytes, 0);
  fetch_snapshot_response chunk = *sresp;
  chunk.snapshot_size = 6;
  chunk.chunk = std::make_shared<const bytes>(bytes{1, 2, 3, 4, 5, 6});
  f.handle_response(1, request_id(r, 1), chunk, 11);
  r = f.take_ready();
  ASSERT_GE(r.log.size(), 2u);
  EXPECT_EQ(r.log[0].what, kind::write_snapshot_chunk);
  EXPECT_EQ(r.log[1].what, kind::install_snapshot);
  EXPECT_EQ(f.log_start_offset(), 8);
  EXPECT_EQ(f.log_end_offset(), 8);
  EXPECT_EQ(f.high_watermark(), 8);
  auto* again = find_request<fetch_request>(r, 1);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->fetch_offset, 8);
}

TEST(RaftCore, LeaderCutOffFromTheMajorityResigns) {
  core l = leader_of_three();
  l.tick(5000 + 3000 - 1);
  EXPECT_EQ(l.current_role(), role::leader);
  l.tick(5000 + 3001);
  EXPECT_EQ(l.current_role(), role::resigned);
  auto r = l.take_ready();
  EXPECT_NE(find_request<end_epoch_request>(r, 2), nullptr);
  EXPECT_FALSE(l.propose({bytes{1}}, 9000).has_value());
}

TEST(RaftCore, EndQuorumEpochStartsAnElectionAtOnceForTheFirstSuccessor) {
  core f(config_for(2, {1, 2, 3}), {4, -1, 1}, {}, 0, fixed_random());
  f.take_ready();
  f.handle_request(1, 1, end_epoch_request{1, 4, {2, 3}}, 10);
  f.take_ready();
  f.tick(10);
  EXPECT_EQ(f.current_role(), role::prospective);
}

TEST(RaftCore, ObserverFindsTheLeaderThroughAnyVoter) {
  core o(config_for(9, {1, 2, 3}), {}, {}, 0, fixed_random(1));
  EXPECT_FALSE(o.is_voter());
  auto r = o.take_ready();
  ASSERT_EQ(r.requests.size(), 1u);
  int32_t asked = r.requests[0].to;
  fetch_response not_me;
  not_me.error = error_code::not_leader_or_follower;
  not_me.leader_id = 1;
  not_me.leader_epoch = 3;
  o.handle_response(asked, r.requests[0].id, not_me, 1);
  EXPECT_EQ(o.current_role(), role::follower);
  EXPECT_EQ(o.leader_id(), 1);
  r = o.take_ready();
  EXPECT_NE(find_request<fetch_request>(r, 1), nullptr);
  // It never stands for election.
  o.tick(100'000);
  EXPECT_NE(o.current_role(), role::prospective);
}

// ---- whole clusters in memory

struct entry {
  int64_t offset;
  int32_t epoch;
  std::string value;
  bool operator==(const entry&) const = default;
};

bytes encode_entries(const std::vector<entry>& es) {
  bytes out;
  for (auto& e : es) {
    std::string line = std::to_string(e.offset) + " " + std::to_string(e.epoch) + " " + e.value + "\n";
    out.insert(out.end(), line.begin(), line.end());
  }
  return out;
}

std::vector<entry> decode_entries(const bytes& b) {
  std::vector<entry> out;
  std::string s(b.begin(), b.end());
  size_t at = 0;
  while (at < s.size()) {
    size_t nl = s.find('\n', at);
    std::string line = s.substr(at, nl - at);
    at = nl + 1;
    auto sp1 = line.find(' ');
    auto sp2 = line.find(' ', sp1 + 1);
    out.push_back({std::stoll(line.substr(0, sp1)), std::stoi(line.substr(sp1 + 1, sp2 - sp1 - 1)), line.substr(sp2 + 1)});
  }
  return out;
}

class cluster_sim {
 public:
  cluster_sim(uint64_t seed, int voters, int observers, bool trace)
      : rng_(seed), seed_(seed), trace_(trace) {
    for (int i = 1; i <= voters; ++i) voter_ids_.push_back(i);
    for (int i = 1; i <= voters + observers; ++i) {
      nodes_[i].id = i;
      start(i);
    }
  }

  // ---- faults and workload
  void run(int64_t ms, bool faults) {
    const int64_t end = now_ + ms;
    int64_t next_fault = now_ + 200;
    int64_t next_proposal = now_ + 10;
    while (now_ < end) {
      if (faults && now_ >= next_fault) {
        inject_fault();
        next_fault = now_ + 100 + static_cast<int64_t>(rng_() % 1500);
      }
      if (now_ >= next_proposal) {
        propose_somewhere();
        next_proposal = now_ + 5 + static_cast<int64_t>(rng_() % 40);
      }
      step_until(std::min({end, next_proposal, faults ? next_fault : end}));
    }
  }

  void heal() {
    cuts_.clear();
    drop_ = dup_ = 0;
    for (auto& [id, n] : nodes_)
      if (!n.up) start(id);
  }

  // After healing: a leader, and a record proposed to it commits on every
  // node (proposed again if a leader change dropped it before it committed).
  void expect_live() {
    const int64_t give_up = now_ + 30'000;
    for (int attempt = 0; now_ < give_up; ++attempt) {
      if (!run_until([&] { return leader() >= 0; }, give_up - now_)) break;
      int32_t l = leader();
      std::string value = "final-" + std::to_string(attempt);
      auto off = nodes_[l].c->propose({to_bytes(value)}, now_);
      ASSERT_TRUE(off.has_value());
      apply(l);
      const int64_t target = *off + 1;
      bool everywhere = run_until(
          [&] {
            for (auto& [id, x] : nodes_)
              if (!x.up || x.c->high_watermark() < target) return false;
            return true;
          },
          std::min<int64_t>(5'000, give_up - now_));
      if (everywhere) {
        for (auto& [id, x] : nodes_) {
          auto e = entry_at(x, *off);
          if (e && e->value == value) return;  // committed, not replaced
        }
      }
    }
    dump();
    FAIL() << "no record committed on every node within 30 s of healing (seed " << seed_ << ")";
  }

  size_t committed() const { return committed_.size(); }
  int max_epoch() const { return max_epoch_; }

 private:
  struct node {
    int32_t id = 0;
    bool up = false;
    std::unique_ptr<core> c;
    election_state persisted;
    std::vector<entry> log;          // from log_start on
    int64_t log_start = 0;
    std::optional<offset_and_epoch> snapshot;
    std::vector<entry> snapshot_entries;  // what the snapshot holds
    std::vector<entry> downloading;
    int64_t hw_seen = -1;  // for monotonicity while up
  };
  struct message {
    int32_t from, to;
    bool is_request;
    uint64_t id;  // request id (from's) or token
    std::variant<request, response> body;
    uint64_t to_incarnation;
  };
  struct event {
    int64_t at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  static bytes to_bytes(const std::string& s) { return bytes(s.begin(), s.end()); }

  void start(int32_t id) {
    auto& n = nodes_[id];
    n.up = true;
    ++incarnation_[id];
    n.hw_seen = -1;
    checked_[id] = 0;  // a restarted node is checked again from the start
    log_shape shape;
    shape.log_start_offset = n.log_start;
    shape.log_end_offset = n.log_start + static_cast<int64_t>(n.log.size());
    shape.latest_snapshot = n.snapshot;
    if (n.snapshot) shape.epochs.push_back({n.snapshot->epoch, std::max<int64_t>(n.snapshot->offset - 1, 0)});
    for (auto& e : n.log)
      if (shape.epochs.empty() || shape.epochs.back().epoch < e.epoch) shape.epochs.push_back({e.epoch, e.offset});
    core_config cfg = config_for(id, voter_ids_);
    cfg.fetch_max_bytes = 16;  // entries per fetch, in this test's units
    n.c = std::make_unique<core>(cfg, n.persisted, shape, now_, [this] { return rng_(); });
    apply(id);
    schedule_tick(id);
  }

  void crash(int32_t id) {
    auto& n = nodes_[id];
    if (!n.up) return;
    n.up = false;
    n.c.reset();
    ++incarnation_[id];
    n.downloading.clear();
    trace("crash " + std::to_string(id));
  }

  void schedule_tick(int32_t id) {
    uint64_t inc = incarnation_[id];
    at(now_ + 10, [this, id, inc] {
      if (incarnation_[id] != inc) return;
      nodes_[id].c->tick(now_);
      apply(id);
      // After a tick every deadline lies ahead (a driver would spin otherwise).
      ASSERT_GT(nodes_[id].c->next_deadline_ms(), now_) << "node " << id << " (seed " << seed_ << ")";
      schedule_tick(id);
    });
  }

  void at(int64_t t, std::function<void()> fn) { events_.push(event{t, seq_++, std::move(fn)}); }

  void step_until(int64_t t) {
    while (!events_.empty() && events_.top().at <= t) {
      auto ev = events_.top();
      events_.pop();
      now_ = std::max(now_, ev.at);
      ev.fn();
      check();
    }
    now_ = std::max(now_, t);
  }

  void dump() {
    if (!trace_) return;
    std::string line = "state:";
    for (auto& [id, n] : nodes_) {
      if (!n.up) {
        line += " " + std::to_string(id) + "=down";
        continue;
      }
      line += " " + std::to_string(id) + "=" + role_name(n.c->current_role()) + "/e" + std::to_string(n.c->epoch()) +
              "/l" + std::to_string(n.c->leader_id()) + "/v" + std::to_string(n.c->voted_id()) + "/end" +
              std::to_string(n.c->log_end_offset()) + "/hw" + std::to_string(n.c->high_watermark());
    }
    trace(line);
  }

  bool run_until(const std::function<bool()>& pred, int64_t max_ms) {
    const int64_t end = now_ + max_ms;
    int64_t next_dump = now_;
    while (now_ < end) {
      if (pred()) return true;
      if (now_ >= next_dump) {
        dump();
        next_dump = now_ + 1000;
      }
      step_until(now_ + 10);
      if (::testing::Test::HasFatalFailure()) return false;
    }
    return pred();
  }

  int32_t leader() {
    for (auto& [id, n] : nodes_)
      if (n.up && n.c->is_leader()) return id;
    return -1;
  }

  void propose_somewhere() {
    int32_t l = leader();
    if (l < 0) return;
    auto v = "v" + std::to_string(next_value_++);
    if (nodes_[l].c->propose({to_bytes(v)}, now_)) apply(l);
  }

  void inject_fault() {
    int n = static_cast<int>(nodes_.size());
    switch (rng_() % 10) {
      case 0:
      case 1: crash(1 + static_cast<int32_t>(rng_() % n)); break;
      case 2:
      case 3:
        for (auto& [id, x] : nodes_)
          if (!x.up) {
            start(id);
            break;
          }
        break;
      case 4: {
        int32_t a = 1 + static_cast<int32_t>(rng_() % n), b = 1 + static_cast<int32_t>(rng_() % n);
        if (a != b) {
          cuts_.insert({a, b});
          cuts_.insert({b, a});
        }
        break;
      }
      case 5: cuts_.clear(); break;
      case 6: drop_ = (rng_() % 4) * 0.1; break;
      case 7: dup_ = (rng_() % 3) * 0.1; break;
      case 8: {  // isolate one node
        int32_t a = 1 + static_cast<int32_t>(rng_() % n);
        for (auto& [id, _] : nodes_)
          if (id != a) {
            cuts_.insert({a, id});
            cuts_.insert({id, a});
          }
        break;
      }
      case 9: take_snapshot(1 + static_cast<int32_t>(rng_() % n)); break;
    }
  }

  void take_snapshot(int32_t id) {
    auto& n = nodes_[id];
    if (!n.up) return;
    int64_t hw = n.c->high_watermark();
    int64_t end = n.log_start + static_cast<int64_t>(n.log.size());
    int64_t at_offset = std::min(hw, end);
    if (at_offset <= n.log_start || (n.snapshot && at_offset <= n.snapshot->offset)) return;
    offset_and_epoch sid{at_offset, n.c->epoch_at(at_offset - 1)};
    n.c->snapshot_written(sid);
    // The snapshot holds everything below at_offset.
    auto held = n.snapshot_entries;
    for (auto& e : n.log)
      if (e.offset < at_offset) held.push_back(e);
    n.snapshot_entries = held;
    n.snapshot = sid;
    apply(id);
  }

  // Applies what the core asks for: persist, log, then send.
  void apply(int32_t id) {
    auto& n = nodes_[id];
    ready r = n.c->take_ready();
    if (r.persist) n.persisted = *r.persist;
    for (auto& op : r.log) apply_log(n, op);
    for (auto& req : r.requests) deliver(message{id, req.to, true, req.id, req.msg, 0});
    for (auto& resp : r.responses) {
      response body = resp.msg;
      fill(n, body);
      auto it = tokens_.find(resp.token);
      if (it == tokens_.end()) continue;
      auto [to, rid] = it->second;
      tokens_.erase(it);
      deliver(message{id, to, false, rid, body, 0});
    }
    // A request whose answer never comes fails at its timeout.
    for (auto& req : r.requests) {
      uint64_t inc = incarnation_[id];
      at(now_ + 2000, [this, id, inc, to = req.to, rid = req.id] {
        if (incarnation_[id] != inc) return;
        nodes_[id].c->handle_request_failure(to, rid, now_);
        apply(id);
      });
    }
  }

  void apply_log(node& n, const log_op& op) {
    int64_t end = n.log_start + static_cast<int64_t>(n.log.size());
    switch (op.what) {
      case kind::append_records:
        ASSERT_EQ(op.offset, end);
        for (size_t i = 0; i < op.records.size(); ++i)
          n.log.push_back({op.offset + static_cast<int64_t>(i), op.epoch,
                           std::string(op.records[i].begin(), op.records[i].end())});
        break;
      case kind::append_leader_change:
        ASSERT_EQ(op.offset, end);
        n.log.push_back({op.offset, op.epoch, "leader-change-" + std::to_string(op.leader_id)});
        break;
      case kind::append_batches: {
        auto es = decode_entries(*op.data);
        ASSERT_FALSE(es.empty());
        ASSERT_EQ(es.front().offset, end);
        for (auto& e : es) n.log.push_back(e);
        break;
      }
      case kind::truncate_to:
        while (!n.log.empty() && n.log.back().offset >= op.offset) n.log.pop_back();
        break;
      case kind::write_snapshot_chunk: {
        if (op.offset == 0) n.downloading.clear();
        auto es = decode_entries(*op.data);
        n.downloading.insert(n.downloading.end(), es.begin(), es.end());
        break;
      }
      case kind::install_snapshot:
        n.snapshot = op.snapshot;
        n.snapshot_entries = n.downloading;
        n.downloading.clear();
        n.log.clear();
        n.log_start = op.snapshot.offset;
        break;
      case kind::delete_before:
        while (!n.log.empty() && n.log.front().offset < op.snapshot.offset) n.log.erase(n.log.begin());
        n.log_start = std::max(n.log_start, std::min(op.snapshot.offset, end));
        break;
    }
  }

  // The driver's part of a leader's answers: records and snapshot chunks.
  void fill(node& n, response& body) {
    if (auto* f = std::get_if<fetch_response>(&body); f && f->read_from >= 0) {
      std::vector<entry> es;
      for (auto& e : n.log)
        if (e.offset >= f->read_from && es.size() < static_cast<size_t>(f->read_max_bytes)) es.push_back(e);
      for (auto& e : es) f->batches.push_back({e.offset, e.offset, e.epoch});
      f->records = std::make_shared<const bytes>(encode_entries(es));
    }
    if (auto* s = std::get_if<fetch_snapshot_response>(&body); s && s->error == error_code::none && s->read_max_bytes > 0) {
      // One entry per chunk unit: position counts bytes of the encoding.
      bytes all = encode_entries(n.snapshot_entries);
      s->snapshot_size = static_cast<int64_t>(all.size());
      if (s->position > s->snapshot_size) {
        s->error = error_code::position_out_of_range;
        return;
      }
      // Chunks end on line boundaries so that each one decodes on its own.
      size_t from = static_cast<size_t>(s->position);
      size_t to = std::min(all.size(), from + 64);
      while (to < all.size() && all[to - 1] != '\n') ++to;
      s->chunk = std::make_shared<const bytes>(all.begin() + static_cast<std::ptrdiff_t>(from),
                                               all.begin() + static_cast<std::ptrdiff_t>(to));
    }
  }

  void deliver(message m) {
    if (cuts_.count({m.from, m.to})) return;
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng_) < drop_) return;
    int copies = u(rng_) < dup_ ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      int64_t delay = 1 + static_cast<int64_t>(rng_() % 15);
      uint64_t inc = incarnation_[m.to];
      at(now_ + delay, [this, m, inc] {
        if (incarnation_[m.to] != inc || !nodes_[m.to].up) return;
        auto& n = nodes_[m.to];
        if (m.is_request) {
          uint64_t token = next_token_++;
          tokens_[token] = {m.from, m.id};
          n.c->handle_request(m.from, token, std::get<request>(m.body), now_);
        } else {
          n.c->handle_response(m.from, m.id, std::get<response>(m.body), now_);
        }
        apply(m.to);
      });
    }
  }

  std::optional<entry> entry_at(const node& n, int64_t offset) const {
    if (offset >= n.log_start) {
      size_t i = static_cast<size_t>(offset - n.log_start);
      if (i < n.log.size()) return n.log[i];
      return std::nullopt;
    }
    for (auto& e : n.snapshot_entries)
      if (e.offset == offset) return e;
    return std::nullopt;
  }

  // Raft's safety properties, after every event.
  void check() {
    for (auto& [id, n] : nodes_) {
      if (!n.up) continue;
      auto& c = *n.c;
      max_epoch_ = std::max(max_epoch_, c.epoch());
      // Election safety: one leader per epoch, ever.
      if (c.is_leader()) {
        auto [it, fresh] = leaders_.emplace(c.epoch(), id);
        ASSERT_EQ(it->second, id) << "two leaders in epoch " << c.epoch() << " (seed " << seed_ << ")";
      }
      // The log matches the core's idea of it.
      ASSERT_EQ(n.log_start + static_cast<int64_t>(n.log.size()), c.log_end_offset()) << "node " << id;
      // The high watermark never goes back while the node runs.
      int64_t hw = c.high_watermark();
      ASSERT_GE(hw, n.hw_seen) << "node " << id << " HW went back (seed " << seed_ << ")";
      n.hw_seen = hw;
      // Committed entries never change, and every node holds them alike.
      int64_t upto = std::min(hw, c.log_end_offset());
      int64_t from = std::min<int64_t>(checked_[id], static_cast<int64_t>(committed_.size()));
      for (int64_t o = std::max<int64_t>(from, 0); o < upto; ++o) {
        auto e = entry_at(n, o);
        if (!e) continue;  // compacted into a snapshot we do not hold entries of
        if (o < static_cast<int64_t>(committed_.size())) {
          ASSERT_EQ(committed_[static_cast<size_t>(o)], *e)
              << "node " << id << " has a different committed entry at " << o << " (seed " << seed_ << ")";
        } else {
          ASSERT_EQ(o, static_cast<int64_t>(committed_.size())) << "gap in the committed log (seed " << seed_ << ")";
          committed_.push_back(*e);
        }
      }
      checked_[id] = std::max(checked_[id], upto);
      // A new leader holds every committed entry (leader completeness).
      if (c.is_leader() && completeness_checked_[id] != c.epoch()) {
        completeness_checked_[id] = c.epoch();
        for (int64_t o = std::max<int64_t>(n.log_start, 0); o < static_cast<int64_t>(committed_.size()); ++o) {
          auto e = entry_at(n, o);
          ASSERT_TRUE(e.has_value()) << "leader " << id << " lacks committed offset " << o << " (seed " << seed_ << ")";
          ASSERT_EQ(*e, committed_[static_cast<size_t>(o)]) << "leader " << id << " at " << o << " (seed " << seed_ << ")";
        }
      }
    }
  }

  void trace(const std::string& what) {
    if (trace_) std::fprintf(stderr, "[%lld] %s\n", static_cast<long long>(now_), what.c_str());
  }

  std::mt19937_64 rng_;
  uint64_t seed_;
  bool trace_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  std::vector<int32_t> voter_ids_;
  std::map<int32_t, node> nodes_;
  std::map<int32_t, uint64_t> incarnation_;
  std::priority_queue<event, std::vector<event>, std::greater<>> events_;
  std::set<std::pair<int32_t, int32_t>> cuts_;
  double drop_ = 0, dup_ = 0;
  uint64_t next_token_ = 1;
  std::map<uint64_t, std::pair<int32_t, uint64_t>> tokens_;
  int next_value_ = 0;
  std::map<int32_t, int32_t> leaders_;
  std::vector<entry> committed_;
  std::map<int32_t, int64_t> checked_;
  std::map<int32_t, int32_t> completeness_checked_;
  int max_epoch_ = 0;
};

void run_seed(uint64_t seed, bool trace) {
  int voters = seed % 2 ? 3 : 5;
  int observers = static_cast<int>(seed % 3);
  cluster_sim sim(seed, voters, observers, trace);
  sim.run(20'000, true);
  if (::testing::Test::HasFatalFailure()) return;
  sim.heal();
  sim.expect_live();
  EXPECT_GT(sim.committed(), 0u) << "seed " << seed;
}

TEST(RaftCluster, RandomFaultsKeepRaftSafeAndLive) {
  if (const char* one = std::getenv("RAFT_SEED")) {
    uint64_t seed = std::strtoull(one, nullptr, 10);
    SCOPED_TRACE("RAFT_SEED=" + std::to_string(seed));
    run_seed(seed, true);
    return;
  }
  uint64_t seeds = 150;
  if (const char* n = std::getenv("RAFT_SEEDS")) seeds = std::strtoull(n, nullptr, 10);
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("replay with RAFT_SEED=" + std::to_string(seed));
    run_seed(seed, false);
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace gregor::raft
