// The group coordinator state machine driven as plain function calls with a
// fake clock: every state transition, the timers, the error codes, the
// records it writes and rebuilding from them.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/group_coordinator.h"
#include "protocol/wire.h"

namespace gregor::coordinator {
namespace {

using protocol::error_code;
using join_req = protocol::join_group_request;

int16_t ec(error_code e) { return static_cast<int16_t>(e); }

bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

// An OffsetFetch answer for one partition: (offset, error).
std::pair<int64_t, int16_t> fetched(int64_t offset, int16_t error) { return {offset, error}; }

// A ConsumerProtocolSubscription v0 listing `topics`.
bytes subscription(const std::vector<std::string>& topics) {
  iobuf out;
  protocol::wire_writer w(out);
  w.write_int16(0);
  w.write_array_length(topics.size(), false);
  for (auto& t : topics) w.write_string(t, false);
  w.write_int32(-1);  // user data: null
  return std::get<bytes>(out.chunks().front());
}

struct harness {
  explicit harness(group_config c = defaults()) : cfg(c), sm(cfg, [this] { return "uuid" + std::to_string(++uuids); }) {
    sm.set_partition_count(cfg.offsets_topic_num_partitions);
  }

  static group_config defaults() {
    group_config c;
    c.group_initial_rebalance_delay_ms = 0;
    c.group_min_session_timeout_ms = 1000;
    c.offsets_topic_num_partitions = 4;
    return c;
  }

  group_config cfg;
  int uuids = 0;
  group_coordinator sm;
  uint64_t next_rid = 1;
  int64_t now = 1'000'000;
  std::map<uint64_t, response> replies;
  std::vector<write_request> writes;
  std::vector<write_request> all_writes;  // every write ever made, in order (the log)

  void absorb(output o) {
    for (auto& r : o.replies) {
      ASSERT_FALSE(replies.count(r.request)) << "request " << r.request << " answered twice";
      replies[r.request] = std::move(r.body);
    }
    for (auto& w : o.writes) {
      writes.push_back(w);
      all_writes.push_back(w);
    }
  }
  // Completes the pending writes (and those they cause), each at the next
  // offsets of its partition's log.
  void complete_writes(error_code e = error_code::none) {
    while (!writes.empty()) {
      auto w = writes.front();
      writes.erase(writes.begin());
      int64_t base = -1;
      if (e == error_code::none) {
        base = log_end[w.partition];
        log_end[w.partition] += static_cast<int64_t>(w.records.size());
        base_offsets[w.id] = base;
      }
      absorb(sm.write_completed(w.id, e, now, base));
    }
  }
  std::map<int32_t, int64_t> log_end;
  std::map<uint64_t, int64_t> base_offsets;  // write id -> where it went
  void advance(int64_t ms) {
    // Tick in steps, as the driver does.
    int64_t end = now + ms;
    while (now < end) {
      now = std::min(end, now + 100);
      absorb(sm.tick(now));
    }
  }

  template <class T>
  std::optional<T> reply(uint64_t rid) {
    auto it = replies.find(rid);
    if (it == replies.end()) return std::nullopt;
    return std::get<T>(it->second);
  }
  bool answered(uint64_t rid) const { return replies.count(rid) != 0; }

  uint64_t join(const std::string& group_id, const std::string& member_id, int16_t version = 5,
                std::vector<std::pair<std::string, std::vector<std::string>>> protocols = {{"range", {"t"}}},
                std::optional<std::string> instance = std::nullopt, int32_t session_ms = 10000,
                int32_t rebalance_ms = 20000, std::string protocol_type = "consumer") {
    join_req r;
    r.group_id = group_id;
    r.member_id = member_id;
    r.session_timeout_ms = session_ms;
    r.rebalance_timeout_ms = rebalance_ms;
    r.group_instance_id = instance;
    r.protocol_type = protocol_type;
    for (auto& [name, topics] : protocols) {
      auto& p = r.protocols.emplace_back();
      p.name = name;
      p.metadata = subscription(topics);
    }
    uint64_t rid = next_rid++;
    absorb(sm.join_group(rid, version, r, client_info{"client", "/127.0.0.1"}, now));
    return rid;
  }

  // Join of a new dynamic member with v4+ (two round trips); returns the JoinGroup rid.
  uint64_t join_new(const std::string& group_id, std::string& member_id_out, int16_t version = 5,
                    std::vector<std::pair<std::string, std::vector<std::string>>> protocols = {{"range", {"t"}}}) {
    uint64_t first = join(group_id, "", version, protocols);
    auto r = reply<protocol::join_group_response>(first);
    EXPECT_TRUE(r);
    EXPECT_EQ(r->error_code, ec(error_code::member_id_required));
    member_id_out = r->member_id;
    return join(group_id, member_id_out, version, protocols);
  }

  uint64_t sync(const std::string& group_id, const std::string& member_id, int32_t generation,
                std::map<std::string, std::string> assignment = {}, int16_t version = 3,
                std::optional<std::string> instance = std::nullopt) {
    protocol::sync_group_request r;
    r.group_id = group_id;
    r.member_id = member_id;
    r.generation_id = generation;
    r.group_instance_id = instance;
    for (auto& [m, a] : assignment) {
      auto& x = r.assignments.emplace_back();
      x.member_id = m;
      x.assignment = to_bytes(a);
    }
    uint64_t rid = next_rid++;
    absorb(sm.sync_group(rid, version, r, now));
    return rid;
  }

  int16_t heartbeat(const std::string& group_id, const std::string& member_id, int32_t generation,
                    std::optional<std::string> instance = std::nullopt) {
    protocol::heartbeat_request r;
    r.group_id = group_id;
    r.member_id = member_id;
    r.generation_id = generation;
    r.group_instance_id = instance;
    uint64_t rid = next_rid++;
    absorb(sm.heartbeat(rid, 3, r, now));
    return reply<protocol::heartbeat_response>(rid)->error_code;
  }

  protocol::leave_group_response leave(const std::string& group_id, std::vector<std::string> members,
                                       int16_t version = 3) {
    protocol::leave_group_request r;
    r.group_id = group_id;
    if (version < 3) r.member_id = members.at(0);
    for (auto& m : members) r.members.emplace_back().member_id = m;
    uint64_t rid = next_rid++;
    absorb(sm.leave_group(rid, version, r, now));
    return *reply<protocol::leave_group_response>(rid);
  }

  uint64_t commit(const std::string& group_id, const std::string& member_id, int32_t generation,
                  std::vector<std::tuple<std::string, int32_t, int64_t>> offsets, int16_t version = 7) {
    protocol::offset_commit_request r;
    r.group_id = group_id;
    r.member_id = member_id;
    r.generation_id_or_member_epoch = generation;
    for (auto& [t, p, o] : offsets) {
      protocol::offset_commit_request::offset_commit_request_topic* topic = nullptr;
      for (auto& x : r.topics)
        if (x.name == t) topic = &x;
      if (!topic) {
        topic = &r.topics.emplace_back();
        topic->name = t;
      }
      auto& pp = topic->partitions.emplace_back();
      pp.partition_index = p;
      pp.committed_offset = o;
      pp.committed_metadata = "md";
    }
    uint64_t rid = next_rid++;
    absorb(sm.offset_commit(rid, version, r, [](const std::string& t, int32_t p) { return t != "missing" && p < 8; },
                            now));
    return rid;
  }

  // Committed offset of one partition (-1 if none), via OffsetFetch v5.
  int64_t committed(const std::string& group_id, const std::string& topic, int32_t partition,
                    int16_t* error = nullptr) {
    protocol::offset_fetch_request r;
    r.group_id = group_id;
    auto& t = r.topics.emplace();
    auto& tt = t.emplace_back();
    tt.name = topic;
    tt.partition_indexes = {partition};
    uint64_t rid = next_rid++;
    absorb(sm.offset_fetch(rid, 5, r, now));
    auto resp = *reply<protocol::offset_fetch_response>(rid);
    if (error) *error = resp.error_code;
    if (resp.topics.empty()) return -1;
    return resp.topics.at(0).partitions.at(0).committed_offset;
  }

  uint64_t txn_commit(const std::string& group_id, int64_t producer_id,
                      std::vector<std::tuple<std::string, int32_t, int64_t>> offsets, int16_t version = 3,
                      int32_t generation = -1, const std::string& member_id = "",
                      std::optional<std::string> instance = std::nullopt, std::string metadata = "md") {
    protocol::txn_offset_commit_request r;
    r.transactional_id = "tx";
    r.group_id = group_id;
    r.producer_id = producer_id;
    r.producer_epoch = 3;
    r.generation_id = generation;
    r.member_id = member_id;
    r.group_instance_id = instance;
    for (auto& [t, p, o] : offsets) {
      if (r.topics.empty() || r.topics.back().name != t) r.topics.emplace_back().name = t;
      auto& pp = r.topics.back().partitions.emplace_back();
      pp.partition_index = p;
      pp.committed_offset = o;
      pp.committed_metadata = metadata;
    }
    uint64_t rid = next_rid++;
    absorb(sm.txn_offset_commit(rid, version, r,
                                [](const std::string& t, int32_t p) { return t != "missing" && p < 8; }, now));
    return rid;
  }
  // The error of every partition of a TxnOffsetCommit reply (they must agree).
  int16_t txn_error(uint64_t rid) {
    auto r = reply<protocol::txn_offset_commit_response>(rid);
    EXPECT_TRUE(r);
    if (!r) return -1;
    std::set<int16_t> errors;
    for (auto& t : r->topics)
      for (auto& p : t.partitions) errors.insert(p.error_code);
    EXPECT_EQ(errors.size(), 1u);
    return errors.empty() ? -1 : *errors.begin();
  }
  // OffsetFetch v7 with require_stable: (offset, partition error).
  std::pair<int64_t, int16_t> stable(const std::string& group_id, const std::string& topic, int32_t partition,
                                     bool require_stable = true, int16_t version = 7) {
    protocol::offset_fetch_request r;
    r.group_id = group_id;
    r.require_stable = require_stable;
    auto& tt = r.topics.emplace().emplace_back();
    tt.name = topic;
    tt.partition_indexes = {partition};
    uint64_t rid = next_rid++;
    absorb(sm.offset_fetch(rid, version, r, now));
    auto resp = *reply<protocol::offset_fetch_response>(rid);
    auto& p = resp.topics.at(0).partitions.at(0);
    return {p.committed_offset, p.error_code};
  }
  void marker(const std::string& group_id, int64_t producer_id, bool committed) {
    absorb(sm.on_txn_marker(partition_for_group(group_id, cfg.offsets_topic_num_partitions), producer_id, committed,
                            now));
  }

  group_state state(const std::string& group_id) const {
    auto* g = sm.find(group_id);
    return g ? g->state : group_state::dead;
  }
};

// ---------------------------------------------------------------- hashing

TEST(coordinator_hash, java_string_hash_and_partition) {
  EXPECT_EQ(java_string_hash(""), 0);
  EXPECT_EQ(java_string_hash("test-group"), 627841412);
  EXPECT_EQ(java_string_hash("g1"), 3242);
  EXPECT_EQ(java_string_hash("caf\xc3\xa9"), 3045921);              // U+00E9: one UTF-16 unit
  EXPECT_EQ(java_string_hash("\xf0\x9f\x98\x80x"), 54959989);       // U+1F600: a surrogate pair
  EXPECT_EQ(java_string_hash("polygenelubricants"), INT32_MIN);     // abs(MIN) is taken as 0
  EXPECT_EQ(partition_for_group("test-group", 50), 12);
  EXPECT_EQ(partition_for_group("g1", 50), 42);
  EXPECT_EQ(partition_for_group("polygenelubricants", 50), 0);
}

TEST(coordinator_hash, subscription_topics) {
  auto t = subscription_topics(subscription({"a", "b"}));
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (std::set<std::string>{"a", "b"}));
  EXPECT_FALSE(subscription_topics(to_bytes("x")));
}

// ---------------------------------------------------------------- one member

TEST(coordinator, single_member_life_cycle) {
  harness h;
  std::string m;
  uint64_t j = h.join_new("g", m);
  EXPECT_EQ(m.rfind("client-uuid", 0), 0u);  // clientId-UUID, as Kafka names members
  auto jr = h.reply<protocol::join_group_response>(j);
  ASSERT_TRUE(jr) << "with no initial delay the first member completes the join at once";
  EXPECT_EQ(jr->error_code, 0);
  EXPECT_EQ(jr->generation_id, 1);
  EXPECT_EQ(jr->leader, m);
  EXPECT_EQ(jr->member_id, m);
  EXPECT_EQ(jr->protocol_name, "range");
  ASSERT_EQ(jr->members.size(), 1u);
  EXPECT_EQ(jr->members[0].metadata, subscription({"t"}));
  EXPECT_EQ(h.state("g"), group_state::completing_rebalance);

  uint64_t s = h.sync("g", m, 1, {{m, "A"}});
  EXPECT_FALSE(h.answered(s)) << "the leader's SyncGroup waits for the group record";
  ASSERT_EQ(h.writes.size(), 1u);
  EXPECT_EQ(h.writes[0].partition, partition_for_group("g", 4));
  h.complete_writes();
  auto sr = h.reply<protocol::sync_group_response>(s);
  ASSERT_TRUE(sr);
  EXPECT_EQ(sr->error_code, 0);
  EXPECT_EQ(sr->assignment, to_bytes("A"));
  EXPECT_EQ(sr->protocol_name, "range");
  EXPECT_EQ(h.state("g"), group_state::stable);
  EXPECT_EQ(h.heartbeat("g", m, 1), 0);

  // A SyncGroup in Stable returns the current assignment at once.
  uint64_t s2 = h.sync("g", m, 1);
  EXPECT_EQ(h.reply<protocol::sync_group_response>(s2)->assignment, to_bytes("A"));

  auto lr = h.leave("g", {m});
  EXPECT_EQ(lr.error_code, 0);
  ASSERT_EQ(lr.members.size(), 1u);
  EXPECT_EQ(lr.members[0].error_code, 0);
  EXPECT_EQ(h.state("g"), group_state::empty);
  EXPECT_EQ(h.sm.find("g")->generation, 2);
  ASSERT_EQ(h.writes.size(), 1u) << "an empty group's metadata is written";
  h.complete_writes();
}

TEST(coordinator, old_clients_get_a_member_id_without_a_round_trip) {
  harness h;
  uint64_t j = h.join("g", "", 3);
  auto jr = h.reply<protocol::join_group_response>(j);
  ASSERT_TRUE(jr);
  EXPECT_EQ(jr->error_code, 0);
  EXPECT_FALSE(jr->member_id.empty());
  EXPECT_EQ(jr->generation_id, 1);
}

// ---------------------------------------------------------------- errors

TEST(coordinator, join_errors) {
  harness h;
  auto err = [&](uint64_t rid) { return h.reply<protocol::join_group_response>(rid)->error_code; };
  EXPECT_EQ(err(h.join("", "")), ec(error_code::invalid_group_id));
  EXPECT_EQ(err(h.join("g", "", 5, {{"range", {"t"}}}, std::nullopt, 10)), ec(error_code::invalid_session_timeout));
  EXPECT_EQ(err(h.join("g", "", 5, {{"range", {"t"}}}, std::nullopt, 2'000'000)),
            ec(error_code::invalid_session_timeout));
  EXPECT_EQ(err(h.join("nope", "someone")), ec(error_code::unknown_member_id));
  EXPECT_EQ(err(h.join("g", "", 5, {}, std::nullopt)), ec(error_code::inconsistent_group_protocol));

  std::string m;
  h.join_new("g", m);
  h.sync("g", m, 1, {{m, "A"}});
  h.complete_writes();
  // Another protocol type, or no protocol in common.
  EXPECT_EQ(err(h.join("g", "", 5, {{"range", {"t"}}}, std::nullopt, 10000, 20000, "connect")),
            ec(error_code::inconsistent_group_protocol));
  EXPECT_EQ(err(h.join("g", "", 5, {{"sticky", {"t"}}})), ec(error_code::inconsistent_group_protocol));
  EXPECT_EQ(err(h.join("g", "stranger")), ec(error_code::unknown_member_id));
}

TEST(coordinator, sync_heartbeat_and_leave_errors) {
  harness h;
  std::string m;
  h.join_new("g", m);
  auto serr = [&](uint64_t rid) { return h.reply<protocol::sync_group_response>(rid)->error_code; };
  EXPECT_EQ(serr(h.sync("nope", m, 1)), ec(error_code::unknown_member_id));
  EXPECT_EQ(serr(h.sync("g", "stranger", 1)), ec(error_code::unknown_member_id));
  EXPECT_EQ(serr(h.sync("g", m, 7)), ec(error_code::illegal_generation));
  EXPECT_EQ(h.heartbeat("nope", m, 1), ec(error_code::unknown_member_id));
  EXPECT_EQ(h.heartbeat("g", "stranger", 1), ec(error_code::unknown_member_id));
  EXPECT_EQ(h.heartbeat("g", m, 0), ec(error_code::illegal_generation));
  EXPECT_EQ(h.heartbeat("g", m, 1), 0) << "heartbeats are fine while CompletingRebalance";
  EXPECT_EQ(h.heartbeat("", m, 1), ec(error_code::invalid_group_id));

  // LeaveGroup v0-2: the member's error is the request's.
  EXPECT_EQ(h.leave("g", {"stranger"}, 1).error_code, ec(error_code::unknown_member_id));
  auto lr = h.leave("nope", {"a", "b"});
  EXPECT_EQ(lr.error_code, 0);
  ASSERT_EQ(lr.members.size(), 2u);
  EXPECT_EQ(lr.members[1].error_code, ec(error_code::unknown_member_id));
}

// ---------------------------------------------------------------- rebalances

TEST(coordinator, second_member_triggers_a_rebalance) {
  harness h;
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "A-all"}});
  h.complete_writes();
  ASSERT_EQ(h.state("g"), group_state::stable);

  uint64_t jb = h.join_new("g", b);
  EXPECT_FALSE(h.answered(jb)) << "b waits for a to rejoin";
  EXPECT_EQ(h.state("g"), group_state::preparing_rebalance);
  EXPECT_EQ(h.heartbeat("g", a, 1), ec(error_code::rebalance_in_progress));
  // Commits are still accepted from the current generation while preparing.
  uint64_t c = h.commit("g", a, 1, {{"t", 0, 5}});
  h.complete_writes();
  EXPECT_EQ(h.reply<protocol::offset_commit_response>(c)->topics[0].partitions[0].error_code, 0);

  uint64_t ja = h.join("g", a);
  auto ra = h.reply<protocol::join_group_response>(ja);
  auto rb = h.reply<protocol::join_group_response>(jb);
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(ra->generation_id, 2);
  EXPECT_EQ(rb->generation_id, 2);
  EXPECT_EQ(ra->leader, a);
  EXPECT_EQ(ra->members.size(), 2u) << "the leader gets every member's metadata";
  EXPECT_TRUE(rb->members.empty()) << "followers do not";

  // The follower's SyncGroup waits for the leader's.
  uint64_t sb = h.sync("g", b, 2);
  EXPECT_FALSE(h.answered(sb));
  EXPECT_EQ(h.reply<protocol::sync_group_response>(h.sync("g", a, 1))->error_code, ec(error_code::illegal_generation));
  uint64_t sa = h.sync("g", a, 2, {{a, "A-half"}, {b, "B-half"}});
  EXPECT_FALSE(h.answered(sa));
  h.complete_writes();
  EXPECT_EQ(h.reply<protocol::sync_group_response>(sa)->assignment, to_bytes("A-half"));
  EXPECT_EQ(h.reply<protocol::sync_group_response>(sb)->assignment, to_bytes("B-half"));
  EXPECT_EQ(h.state("g"), group_state::stable);
}

TEST(coordinator, follower_rejoin_in_stable_does_not_rebalance_but_leader_rejoin_does) {
  harness h;
  std::string a, b;
  uint64_t ja = h.join_new("g", a);
  (void)ja;
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);
  h.join("g", a);
  ASSERT_TRUE(h.answered(jb));
  h.sync("g", a, 2, {{a, "x"}, {b, "y"}});
  h.sync("g", b, 2);
  h.complete_writes();
  ASSERT_EQ(h.state("g"), group_state::stable);

  uint64_t again = h.join("g", b);
  auto r = h.reply<protocol::join_group_response>(again);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->generation_id, 2);
  EXPECT_EQ(h.state("g"), group_state::stable);

  h.join("g", a);  // the leader noticed a metadata change
  EXPECT_EQ(h.state("g"), group_state::preparing_rebalance);
}

TEST(coordinator, protocol_selection_by_votes_among_common_protocols) {
  harness h;
  std::string a, b, c;
  h.join_new("g", a, 5, {{"range", {"t"}}, {"roundrobin", {"t"}}});
  h.sync("g", a, 1, {});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b, 5, {{"roundrobin", {"t"}}, {"range", {"t"}}});
  uint64_t jc = h.join_new("g", c, 5, {{"roundrobin", {"t"}}});
  (void)jb;
  h.join("g", a, 5, {{"range", {"t"}}, {"roundrobin", {"t"}}});
  auto r = h.reply<protocol::join_group_response>(jc);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->protocol_name, "roundrobin");
}

TEST(coordinator, changed_metadata_during_completing_rebalance_restarts_it) {
  harness h;
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);
  h.join("g", a);
  ASSERT_TRUE(h.answered(jb));
  ASSERT_EQ(h.state("g"), group_state::completing_rebalance);
  uint64_t sb = h.sync("g", b, 2);
  // b rejoins with the same metadata: the same answer again, no rebalance.
  uint64_t jb2 = h.join("g", b);
  EXPECT_EQ(h.reply<protocol::join_group_response>(jb2)->generation_id, 2);
  // a rejoins with a different subscription: rebalance, b's parked sync is told so.
  h.join("g", a, 5, {{"range", {"t", "u"}}});
  EXPECT_EQ(h.state("g"), group_state::preparing_rebalance);
  EXPECT_EQ(h.reply<protocol::sync_group_response>(sb)->error_code, ec(error_code::rebalance_in_progress));
}

// ---------------------------------------------------------------- timers

TEST(coordinator, session_timeout_removes_a_member_and_rebalances) {
  harness h;
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);
  h.join("g", a);
  ASSERT_TRUE(h.answered(jb));
  h.sync("g", a, 2, {{a, "x"}, {b, "y"}});
  h.sync("g", b, 2);
  h.complete_writes();
  ASSERT_EQ(h.state("g"), group_state::stable);

  // a keeps heartbeating, b goes silent (crashed).
  for (int i = 0; i < 9; ++i) {
    h.advance(1000);
    EXPECT_EQ(h.heartbeat("g", a, 2), 0);
  }
  EXPECT_TRUE(h.sm.find("g")->has_member(b));
  h.advance(1200);
  EXPECT_FALSE(h.sm.find("g")->has_member(b)) << "b's 10 s session expired";
  EXPECT_EQ(h.state("g"), group_state::preparing_rebalance);
  EXPECT_EQ(h.heartbeat("g", a, 2), ec(error_code::rebalance_in_progress));
  uint64_t ja = h.join("g", a);
  auto r = h.reply<protocol::join_group_response>(ja);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->generation_id, 3);
  EXPECT_EQ(r->members.size(), 1u);
}

TEST(coordinator, member_that_does_not_rejoin_is_dropped_after_the_rebalance_timeout) {
  harness h;
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);
  EXPECT_FALSE(h.answered(jb));
  // a keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
  for (int i = 0; i < 19; ++i) {
    h.advance(1000);
    EXPECT_EQ(h.heartbeat("g", a, 1), ec(error_code::rebalance_in_progress));
    EXPECT_FALSE(h.answered(jb));
  }
  h.advance(1100);  // a's rebalance timeout is 20 s
  auto r = h.reply<protocol::join_group_response>(jb);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->generation_id, 2);
  EXPECT_EQ(r->leader, b);
  EXPECT_FALSE(h.sm.find("g")->has_member(a));
  EXPECT_EQ(h.heartbeat("g", a, 1), ec(error_code::unknown_member_id));
}

TEST(coordinator, pending_sync_expiry_removes_silent_members) {
  harness h;
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);
  h.join("g", a);
  ASSERT_TRUE(h.answered(jb));
  uint64_t sa = h.sync("g", a, 2, {{a, "x"}, {b, "y"}});
  h.complete_writes();
  ASSERT_TRUE(h.answered(sa));
  ASSERT_EQ(h.state("g"), group_state::stable);
  // b never sends SyncGroup; a heartbeats.
  for (int i = 0; i < 21; ++i) {
    h.advance(1000);
    h.heartbeat("g", a, 2);
  }
  EXPECT_FALSE(h.sm.find("g")->has_member(b));
  EXPECT_NE(h.state("g"), group_state::stable);
}

TEST(coordinator, initial_rebalance_delay_gathers_members) {
  auto cfg = harness::defaults();
  cfg.group_initial_rebalance_delay_ms = 3000;
  harness h(cfg);
  std::string a, b, c;
  uint64_t ja = h.join_new("g", a);
  h.advance(2000);
  uint64_t jb = h.join_new("g", b);
  EXPECT_FALSE(h.answered(ja));
  h.advance(1100);
  EXPECT_FALSE(h.answered(ja)) << "a new member in the delay extends it";
  uint64_t jc = h.join_new("g", c);
  h.advance(3100);
  EXPECT_FALSE(h.answered(ja));
  h.advance(3100);
  for (auto rid : {ja, jb, jc}) {
    auto r = h.reply<protocol::join_group_response>(rid);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->generation_id, 1);
  }
  EXPECT_EQ(h.sm.find("g")->members.size(), 3u);
}

TEST(coordinator, pending_member_expires_and_unblocks_the_join) {
  harness h;
  std::string a;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  // b asks for an id, never comes back; a rejoins (as leader) and waits for b.
  uint64_t first = h.join("g", "");
  ASSERT_EQ(h.reply<protocol::join_group_response>(first)->error_code, ec(error_code::member_id_required));
  uint64_t ja = h.join("g", a);
  EXPECT_FALSE(h.answered(ja));
  h.advance(10100);  // b's session timeout
  ASSERT_TRUE(h.answered(ja));
  EXPECT_EQ(h.reply<protocol::join_group_response>(ja)->generation_id, 2);
}

TEST(coordinator, new_member_that_never_completes_is_dropped) {
  auto cfg = harness::defaults();
  cfg.new_member_join_timeout_ms = 5000;
  harness h(cfg);
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);  // a never rejoins, but heartbeats
  for (int i = 0; i < 5; ++i) {
    h.advance(1000);
    h.heartbeat("g", a, 1);
  }
  h.advance(200);
  auto r = h.reply<protocol::join_group_response>(jb);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error_code, ec(error_code::unknown_member_id));
}

// ---------------------------------------------------------------- static membership

TEST(coordinator, static_member_rejoins_without_rebalance_and_fences_the_old_id) {
  harness h;
  auto join_static = [&](const std::string& inst, const std::string& id) {
    return h.join("g", id, 5, {{"range", {"t"}}}, inst);
  };
  uint64_t j1 = join_static("i1", "");
  auto r1 = h.reply<protocol::join_group_response>(j1);
  ASSERT_TRUE(r1) << "static members get no MEMBER_ID_REQUIRED";
  std::string a = r1->member_id;
  EXPECT_EQ(a.rfind("i1-", 0), 0u);
  h.sync("g", a, 1, {{a, "A"}}, 3, "i1");
  h.complete_writes();
  uint64_t j2 = join_static("i2", "");
  std::string b = r1->member_id;
  h.join("g", a, 5, {{"range", {"t"}}}, "i1");
  b = h.reply<protocol::join_group_response>(j2)->member_id;
  h.sync("g", a, 2, {{a, "A"}, {b, "B"}}, 3, "i1");
  h.sync("g", b, 2, {}, 3, "i2");
  h.complete_writes();
  ASSERT_EQ(h.state("g"), group_state::stable);

  // i2 restarts: it joins with no member id, gets a new one, same generation.
  uint64_t j3 = join_static("i2", "");
  EXPECT_FALSE(h.answered(j3)) << "answered once the new member id is persisted";
  h.complete_writes();
  auto r3 = h.reply<protocol::join_group_response>(j3);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->error_code, 0);
  EXPECT_EQ(r3->generation_id, 2);
  EXPECT_NE(r3->member_id, b);
  EXPECT_EQ(h.state("g"), group_state::stable);
  uint64_t s3 = h.sync("g", r3->member_id, 2, {}, 3, "i2");
  EXPECT_EQ(h.reply<protocol::sync_group_response>(s3)->assignment, to_bytes("B")) << "it keeps its assignment";
  EXPECT_EQ(h.heartbeat("g", b, 2, "i2"), ec(error_code::fenced_instance_id)) << "the old id is fenced";

  // The leader restarting: v5 is told the old leader id, so it does not assign.
  uint64_t j4 = join_static("i1", "");
  h.complete_writes();
  auto r4 = h.reply<protocol::join_group_response>(j4);
  ASSERT_TRUE(r4);
  EXPECT_EQ(r4->leader, a);
  EXPECT_NE(r4->member_id, a);
  EXPECT_EQ(h.state("g"), group_state::stable);

  // Administrative removal by instance id (LeaveGroup v3, empty member id).
  protocol::leave_group_request lr;
  lr.group_id = "g";
  auto& mi = lr.members.emplace_back();
  mi.group_instance_id = "i2";
  uint64_t rid = h.next_rid++;
  h.absorb(h.sm.leave_group(rid, 3, lr, h.now));
  EXPECT_EQ(h.reply<protocol::leave_group_response>(rid)->members.at(0).error_code, 0);
  EXPECT_EQ(h.state("g"), group_state::preparing_rebalance);
}

// ---------------------------------------------------------------- offsets

TEST(coordinator, standalone_commit_and_fetch) {
  harness h;
  EXPECT_EQ(h.committed("solo", "t", 0), -1) << "no commit: -1";
  uint64_t c = h.commit("solo", "", -1, {{"t", 0, 42}, {"t", 1, 7}, {"missing", 0, 1}});
  EXPECT_FALSE(h.answered(c)) << "answered when the offsets are in the log";
  EXPECT_EQ(h.committed("solo", "t", 0), -1);
  h.complete_writes();
  auto r = h.reply<protocol::offset_commit_response>(c);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(r->topics[1].partitions[0].error_code, ec(error_code::unknown_topic_or_partition));
  EXPECT_EQ(h.committed("solo", "t", 0), 42);
  EXPECT_EQ(h.committed("solo", "t", 1), 7);
  EXPECT_EQ(h.state("solo"), group_state::empty);

  // All offsets (null topics, v2+).
  protocol::offset_fetch_request all;
  all.group_id = "solo";
  uint64_t rid = h.next_rid++;
  h.absorb(h.sm.offset_fetch(rid, 7, all, h.now));
  auto ar = *h.reply<protocol::offset_fetch_response>(rid);
  ASSERT_EQ(ar.topics.size(), 1u);
  EXPECT_EQ(ar.topics[0].partitions.size(), 2u);
  EXPECT_EQ(ar.topics[0].partitions[1].metadata, "md");

  // v8: several groups at once.
  protocol::offset_fetch_request v8;
  auto& g1 = v8.groups.emplace_back();
  g1.group_id = "solo";
  auto& g2 = v8.groups.emplace_back();
  g2.group_id = "other";
  g2.topics.emplace().emplace_back().name = "t";
  g2.topics->back().partition_indexes = {3};
  rid = h.next_rid++;
  h.absorb(h.sm.offset_fetch(rid, 8, v8, h.now));
  auto r8 = *h.reply<protocol::offset_fetch_response>(rid);
  ASSERT_EQ(r8.groups.size(), 2u);
  EXPECT_EQ(r8.groups[0].topics.at(0).partitions.size(), 2u);
  EXPECT_EQ(r8.groups[1].topics.at(0).partitions.at(0).committed_offset, -1);
}

TEST(coordinator, commit_validation) {
  harness h;
  auto err = [&](uint64_t rid) { return h.reply<protocol::offset_commit_response>(rid)->topics[0].partitions[0].error_code; };
  EXPECT_EQ(err(h.commit("nope", "m", 3, {{"t", 0, 1}})), ec(error_code::illegal_generation));
  std::string a;
  h.join_new("g", a);
  EXPECT_EQ(err(h.commit("g", a, 1, {{"t", 0, 1}})), ec(error_code::rebalance_in_progress));
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  EXPECT_EQ(err(h.commit("g", "", -1, {{"t", 0, 1}})), ec(error_code::unknown_member_id))
      << "only members commit to a non-empty group";
  EXPECT_EQ(err(h.commit("g", "stranger", 1, {{"t", 0, 1}})), ec(error_code::unknown_member_id));
  EXPECT_EQ(err(h.commit("g", a, 5, {{"t", 0, 1}})), ec(error_code::illegal_generation));
  uint64_t ok = h.commit("g", a, 1, {{"t", 0, 1}});
  h.complete_writes();
  EXPECT_EQ(err(ok), 0);

  // A failed append is reported in Kafka's terms and nothing is applied.
  uint64_t bad = h.commit("g", a, 1, {{"t", 0, 99}});
  h.complete_writes(error_code::unknown_topic_or_partition);
  EXPECT_EQ(err(bad), ec(error_code::coordinator_not_available));
  EXPECT_EQ(h.committed("g", "t", 0), 1);

  auto cfg = harness::defaults();
  cfg.offset_metadata_max_bytes = 1;
  harness small(cfg);
  EXPECT_EQ(small.reply<protocol::offset_commit_response>(small.commit("s", "", -1, {{"t", 0, 1}}))
                ->topics[0]
                .partitions[0]
                .error_code,
            ec(error_code::offset_metadata_too_large));
}

// ---------------------------------------------------------------- loading

TEST(coordinator, rebuilds_groups_and_offsets_from_its_records) {
  harness h;
  std::string a, b;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  uint64_t jb = h.join_new("g", b);
  h.join("g", a);
  ASSERT_TRUE(h.answered(jb));
  h.sync("g", a, 2, {{a, "A"}, {b, "B"}});
  h.sync("g", b, 2);
  h.complete_writes();
  h.commit("g", a, 2, {{"t", 0, 10}, {"t", 1, 20}});
  h.commit("g", a, 2, {{"t", 0, 11}});
  h.commit("solo", "", -1, {{"t", 3, 3}});
  h.complete_writes();
  // "gone" is created, emptied and deleted: its tombstones must win.
  h.commit("gone", "", -1, {{"t", 0, 1}});
  h.complete_writes();
  protocol::delete_groups_request dg;
  dg.groups_names = {"gone"};
  uint64_t rid = h.next_rid++;
  h.absorb(h.sm.delete_groups(rid, 1, dg, h.now));
  h.complete_writes();

  harness fresh;
  for (int32_t p = 0; p < 4; ++p) fresh.sm.begin_load(p);
  // While loading: COORDINATOR_LOAD_IN_PROGRESS (heartbeats pass blindly, syncs say rejoin).
  int16_t e = 0;
  fresh.committed("g", "t", 0, &e);
  EXPECT_EQ(e, ec(error_code::coordinator_load_in_progress));
  EXPECT_EQ(fresh.heartbeat("g", a, 2), 0);
  EXPECT_EQ(fresh.reply<protocol::sync_group_response>(fresh.sync("g", a, 2))->error_code,
            ec(error_code::rebalance_in_progress));
  EXPECT_EQ(fresh.reply<protocol::join_group_response>(fresh.join("g", ""))->error_code,
            ec(error_code::coordinator_load_in_progress));

  for (auto& w : h.all_writes)
    for (auto& r : w.records) {
      std::optional<bytes_view> v;
      if (r.value) v = bytes_view(*r.value);
      fresh.sm.replay(w.partition, r.key, v);
    }
  for (int32_t p = 0; p < 4; ++p) fresh.absorb(fresh.sm.end_load(p, fresh.now));

  auto* g = fresh.sm.find("g");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->state, group_state::stable);
  EXPECT_EQ(g->generation, 2);
  EXPECT_EQ(g->leader, a);
  EXPECT_EQ(g->protocol_name, "range");
  ASSERT_EQ(g->members.size(), 2u);
  EXPECT_EQ(g->members.at(b).assignment, to_bytes("B"));
  EXPECT_EQ(fresh.committed("g", "t", 0), 11);
  EXPECT_EQ(fresh.committed("g", "t", 1), 20);
  EXPECT_EQ(fresh.committed("solo", "t", 3), 3);
  EXPECT_FALSE(fresh.sm.find("gone"));
  // Loaded members carry on with the same generation.
  EXPECT_EQ(fresh.heartbeat("g", b, 2), 0);
  uint64_t s = fresh.sync("g", b, 2);
  EXPECT_EQ(fresh.reply<protocol::sync_group_response>(s)->assignment, to_bytes("B"));
  // ... and expire if they are gone.
  fresh.advance(10'100);
  EXPECT_FALSE(fresh.sm.find("g")->has_member(a));
}

// ---------------------------------------------------------------- transactional offsets

TEST(coordinator_txn, offsets_are_pending_until_the_commit_marker) {
  harness h;
  h.commit("g", "", -1, {{"t", 0, 5}});
  h.complete_writes();
  uint64_t rid = h.txn_commit("g", 7, {{"t", 0, 10}, {"t", 1, 20}});
  EXPECT_FALSE(h.answered(rid)) << "answered once the batch is in the log";
  ASSERT_EQ(h.writes.size(), 1u);
  EXPECT_EQ(h.writes[0].producer_id, 7);
  EXPECT_EQ(h.writes[0].producer_epoch, 3);
  EXPECT_EQ(h.writes[0].partition, partition_for_group("g", 4));
  EXPECT_EQ(h.writes[0].records.size(), 2u);
  // Not yet appended: already unstable.
  EXPECT_EQ(h.stable("g", "t", 0).second, ec(error_code::unstable_offset_commit));
  h.complete_writes();
  EXPECT_EQ(h.txn_error(rid), 0);

  // Invisible: the last committed offset, or UNSTABLE_OFFSET_COMMIT with require_stable.
  EXPECT_EQ(h.committed("g", "t", 0), 5);
  EXPECT_EQ(h.committed("g", "t", 1), -1);
  EXPECT_EQ(h.stable("g", "t", 0), fetched(-1, ec(error_code::unstable_offset_commit)));
  EXPECT_EQ(h.stable("g", "t", 0, false), fetched(5, 0));
  EXPECT_EQ(h.stable("g", "t", 2), fetched(-1, 0)) << "other partitions are stable";
  // A marker of another producer, or in another partition, changes nothing.
  h.marker("g", 8, true);
  h.absorb(h.sm.on_txn_marker((partition_for_group("g", 4) + 1) % 4, 7, true, h.now));
  EXPECT_EQ(h.committed("g", "t", 0), 5);

  h.marker("g", 7, true);
  EXPECT_TRUE(h.writes.empty()) << "the marker is the record: nothing more is written";
  EXPECT_EQ(h.committed("g", "t", 0), 10);
  EXPECT_EQ(h.committed("g", "t", 1), 20);
  EXPECT_EQ(h.stable("g", "t", 0), fetched(10, 0));
  EXPECT_FALSE(h.sm.find("g")->has_pending_txn_offsets());
}

TEST(coordinator_txn, abort_marker_drops_the_pending_offsets) {
  harness h;
  h.commit("g", "", -1, {{"t", 0, 5}});
  h.complete_writes();
  h.txn_commit("g", 7, {{"t", 0, 10}});
  h.complete_writes();
  h.marker("g", 7, false);
  EXPECT_EQ(h.committed("g", "t", 0), 5);
  EXPECT_EQ(h.stable("g", "t", 0).second, 0);
  // A later marker of the same producer finds nothing.
  h.marker("g", 7, true);
  EXPECT_EQ(h.committed("g", "t", 0), 5);
}

TEST(coordinator_txn, a_failed_write_leaves_nothing_pending) {
  harness h;
  uint64_t rid = h.txn_commit("g", 7, {{"t", 0, 10}});
  h.complete_writes(error_code::not_leader_or_follower);
  EXPECT_EQ(h.txn_error(rid), ec(error_code::not_coordinator));
  EXPECT_EQ(h.stable("g", "t", 0).second, 0);
  h.marker("g", 7, true);
  EXPECT_EQ(h.committed("g", "t", 0), -1);
}

TEST(coordinator_txn, commit_applies_only_over_offsets_written_before) {
  harness h;
  // Transactional offset first in the log, then a plain commit: the plain one stays.
  h.txn_commit("g", 7, {{"t", 0, 10}});
  h.complete_writes();
  h.commit("g", "", -1, {{"t", 0, 15}});
  h.complete_writes();
  h.marker("g", 7, true);
  EXPECT_EQ(h.committed("g", "t", 0), 15);
  // Plain commit first, then the transaction's: the transaction's wins.
  h.commit("g", "", -1, {{"t", 1, 15}});
  h.complete_writes();
  h.txn_commit("g", 9, {{"t", 1, 30}});
  h.complete_writes();
  h.marker("g", 9, true);
  EXPECT_EQ(h.committed("g", "t", 1), 30);
  // A plain commit written after a committed transaction's offset replaces it.
  h.commit("g", "", -1, {{"t", 1, 31}});
  h.complete_writes();
  EXPECT_EQ(h.committed("g", "t", 1), 31);
}

TEST(coordinator_txn, validation) {
  harness h;
  std::string m;
  h.join_new("g", m);
  h.sync("g", m, 1, {{m, "A"}});
  h.complete_writes();
  // v3 fields, as OffsetCommit.
  EXPECT_EQ(h.txn_error(h.txn_commit("g", 7, {{"t", 0, 1}}, 3, 1, "nobody")), ec(error_code::unknown_member_id));
  EXPECT_EQ(h.txn_error(h.txn_commit("g", 7, {{"t", 0, 1}}, 3, 2, m)), ec(error_code::illegal_generation));
  uint64_t ok = h.txn_commit("g", 7, {{"t", 0, 1}}, 3, 1, m);
  h.complete_writes();
  EXPECT_EQ(h.txn_error(ok), 0);
  // Older versions carry no member: a group with members accepts them (Kafka does).
  uint64_t v2 = h.txn_commit("g", 7, {{"t", 0, 2}}, 2, 99, "ignored");
  h.complete_writes();
  EXPECT_EQ(h.txn_error(v2), 0);
  // A static member replaced by a newer id is fenced.
  h.join("st", "", 5, {{"range", {"t"}}}, "inst");
  ASSERT_TRUE(h.sm.find("st")->static_members.count("inst"));
  EXPECT_EQ(h.txn_error(h.txn_commit("st", 7, {{"t", 0, 1}}, 3, -1, "other", "inst")),
            ec(error_code::fenced_instance_id));
  // Per partition: unknown topics and too large metadata.
  uint64_t mixed = h.txn_commit("solo", 7, {{"missing", 0, 1}});
  EXPECT_EQ(h.txn_error(mixed), ec(error_code::unknown_topic_or_partition));
  std::string big(h.cfg.offset_metadata_max_bytes + 1, 'x');
  EXPECT_EQ(h.txn_error(h.txn_commit("solo", 7, {{"t", 0, 1}}, 3, -1, "", std::nullopt, big)),
            ec(error_code::offset_metadata_too_large));
  EXPECT_TRUE(h.writes.empty());
  // The group id, the partition's leadership and its load.
  EXPECT_EQ(h.txn_error(h.txn_commit("", 7, {{"t", 0, 1}})), ec(error_code::invalid_group_id));
  int32_t p = partition_for_group("solo", 4);
  h.sm.set_owned(p, false);
  EXPECT_EQ(h.txn_error(h.txn_commit("solo", 7, {{"t", 0, 1}})), ec(error_code::not_coordinator));
  h.sm.set_owned(p, true);
  h.sm.begin_load(p);
  EXPECT_EQ(h.txn_error(h.txn_commit("solo", 7, {{"t", 0, 1}})), ec(error_code::coordinator_load_in_progress));
}

// OffsetDelete and DeleteGroups remove transactional offsets not committed
// yet as well: a COMMIT marker arriving afterwards must not bring them back,
// live or when the partition is loaded again.
TEST(coordinator_txn, deleted_offsets_do_not_come_back_with_a_commit_marker) {
  harness h;
  h.commit("g", "", -1, {{"t", 0, 5}});
  h.complete_writes();
  h.txn_commit("g", 7, {{"t", 0, 10}, {"t", 1, 20}});
  h.txn_commit("d", 7, {{"t", 2, 30}});
  h.complete_writes();
  size_t before = h.all_writes.size();

  protocol::offset_delete_request r;
  r.group_id = "g";
  auto& rt = r.topics.emplace_back();
  rt.name = "t";
  rt.partitions.emplace_back().partition_index = 1;  // only pending
  uint64_t rid = h.next_rid++;
  h.absorb(h.sm.offset_delete(rid, 0, r, h.now));
  h.complete_writes();
  EXPECT_EQ(h.reply<protocol::offset_delete_response>(rid)->topics[0].partitions[0].error_code, 0);
  ASSERT_EQ(h.all_writes.size(), before + 1) << "a tombstone for the pending-only offset";

  protocol::delete_groups_request dg;
  dg.groups_names = {"d"};
  rid = h.next_rid++;
  h.absorb(h.sm.delete_groups(rid, 1, dg, h.now));
  h.complete_writes();
  EXPECT_EQ(h.reply<protocol::delete_groups_response>(rid)->results[0].error_code, 0);

  h.marker("g", 7, true);
  h.marker("d", 7, true);
  EXPECT_EQ(h.committed("g", "t", 0), 10);
  EXPECT_EQ(h.committed("g", "t", 1), -1);
  EXPECT_EQ(h.committed("d", "t", 2), -1);
  EXPECT_FALSE(h.sm.find("d"));

  // Loading the same log: the tombstone comes before the marker there too.
  int32_t p = partition_for_group("g", 4);
  harness fresh;
  fresh.sm.begin_load(p);
  for (auto& w : h.all_writes) {
    if (w.partition != p) continue;
    for (auto& rec : w.records) {
      std::optional<bytes_view> v;
      if (rec.value) v = bytes_view(*rec.value);
      fresh.sm.replay(p, rec.key, v, h.base_offsets.at(w.id), w.producer_id);
    }
  }
  fresh.sm.replay_marker(p, 7, true);
  fresh.absorb(fresh.sm.end_load(p, fresh.now));
  EXPECT_EQ(fresh.committed("g", "t", 0), 10);
  EXPECT_EQ(fresh.committed("g", "t", 1), -1);
}

TEST(coordinator_txn, loading_applies_committed_drops_aborted_and_keeps_open_transactions) {
  harness h;
  int32_t p = partition_for_group("g", 4);
  struct entry {
    int64_t offset;
    int64_t producer;  // -1: plain
    std::optional<bool> marker;
    std::vector<offsets_record> records;
  };
  std::vector<entry> log;
  size_t seen = 0;
  auto flush = [&] {
    h.complete_writes();
    for (; seen < h.all_writes.size(); ++seen) {
      auto& w = h.all_writes[seen];
      ASSERT_EQ(w.partition, p);
      log.push_back({h.base_offsets.at(w.id), w.producer_id, std::nullopt, w.records});
    }
  };
  auto add_marker = [&](int64_t producer, bool commit) {
    log.push_back({h.log_end[p]++, producer, commit, {}});
    h.marker("g", producer, commit);
  };
  h.commit("g", "", -1, {{"t", 0, 1}, {"t", 1, 1}, {"t", 2, 1}, {"t", 3, 1}});
  flush();
  h.txn_commit("g", 7, {{"t", 0, 10}, {"t", 1, 10}});  // committed
  h.txn_commit("g", 8, {{"t", 2, 20}});                // aborted
  h.txn_commit("g", 9, {{"t", 3, 30}});                // still open
  flush();
  h.commit("g", "", -1, {{"t", 1, 11}});  // plain commit after 7's offsets: it stays
  flush();
  add_marker(7, true);
  add_marker(8, false);
  EXPECT_EQ(h.committed("g", "t", 0), 10);
  EXPECT_EQ(h.committed("g", "t", 1), 11);
  EXPECT_EQ(h.committed("g", "t", 2), 1);
  EXPECT_EQ(h.committed("g", "t", 3), 1);

  auto load = [&](harness& fresh, size_t upto) {
    fresh.sm.begin_load(p);
    for (size_t i = 0; i < upto; ++i) {
      auto& e = log[i];
      if (e.marker) {
        fresh.sm.replay_marker(p, e.producer, *e.marker);
        continue;
      }
      for (auto& r : e.records) {
        std::optional<bytes_view> v;
        if (r.value) v = bytes_view(*r.value);
        fresh.sm.replay(p, r.key, v, e.offset, e.producer);
      }
    }
    fresh.absorb(fresh.sm.end_load(p, fresh.now));
  };
  harness fresh;
  load(fresh, log.size());
  EXPECT_EQ(fresh.committed("g", "t", 0), 10);
  EXPECT_EQ(fresh.committed("g", "t", 1), 11);
  EXPECT_EQ(fresh.committed("g", "t", 2), 1);
  EXPECT_EQ(fresh.committed("g", "t", 3), 1);
  EXPECT_EQ(fresh.stable("g", "t", 3).second, ec(error_code::unstable_offset_commit)) << "9 is still open";
  EXPECT_EQ(fresh.stable("g", "t", 0).second, 0);
  // Its marker, once written, applies as on the original coordinator.
  fresh.marker("g", 9, true);
  EXPECT_EQ(fresh.committed("g", "t", 3), 30);

  // Without the markers every transaction stays pending.
  harness early;
  load(early, log.size() - 2);
  EXPECT_EQ(early.committed("g", "t", 0), 1);
  EXPECT_EQ(early.committed("g", "t", 1), 11);
  EXPECT_EQ(early.stable("g", "t", 0).second, ec(error_code::unstable_offset_commit));
  EXPECT_EQ(early.stable("g", "t", 2).second, ec(error_code::unstable_offset_commit));
  early.marker("g", 8, false);
  early.marker("g", 7, true);
  EXPECT_EQ(early.committed("g", "t", 0), 10);
  EXPECT_EQ(early.committed("g", "t", 1), 11) << "7's offset is older than the plain commit";
  EXPECT_EQ(early.committed("g", "t", 2), 1);

  // A group known only from an open transaction exists after the load.
  harness only_txn;
  only_txn.sm.begin_load(p);
  auto& e9 = log[1].producer == 9 ? log[1] : log[2].producer == 9 ? log[2] : log[3];
  ASSERT_EQ(e9.producer, 9);
  for (auto& r : e9.records) only_txn.sm.replay(p, r.key, bytes_view(*r.value), e9.offset, 9);
  only_txn.absorb(only_txn.sm.end_load(p, only_txn.now));
  ASSERT_TRUE(only_txn.sm.find("g"));
  EXPECT_EQ(only_txn.committed("g", "t", 3), -1);
  only_txn.marker("g", 9, true);
  EXPECT_EQ(only_txn.committed("g", "t", 3), 30);
}

TEST(coordinator_txn, a_marker_during_the_load_applies_to_what_was_read) {
  harness h;
  int32_t p = partition_for_group("g", 4);
  h.txn_commit("g", 7, {{"t", 0, 10}});
  h.complete_writes();
  auto& w = h.all_writes.back();
  harness fresh;
  fresh.sm.begin_load(p);
  for (auto& r : w.records) fresh.sm.replay(p, r.key, bytes_view(*r.value), h.base_offsets.at(w.id), 7);
  fresh.marker("g", 7, true);
  fresh.sm.replay_marker(p, 7, true);  // the load then reads the marker itself: no harm
  fresh.absorb(fresh.sm.end_load(p, fresh.now));
  EXPECT_EQ(fresh.committed("g", "t", 0), 10);
  EXPECT_EQ(fresh.stable("g", "t", 0).second, 0);
}

// ---------------------------------------------------------------- admin

TEST(coordinator, list_describe_and_delete_groups) {
  harness h;
  std::string a;
  h.join_new("active", a);
  h.sync("active", a, 1, {{a, "assign"}});
  h.complete_writes();
  h.commit("idle", "", -1, {{"t", 0, 1}});
  h.complete_writes();

  protocol::list_groups_request lr;
  uint64_t rid = h.next_rid++;
  h.absorb(h.sm.list_groups(rid, 4, lr, h.now));
  auto l = *h.reply<protocol::list_groups_response>(rid);
  ASSERT_EQ(l.groups.size(), 2u);
  EXPECT_EQ(l.groups[0].group_id, "active");
  EXPECT_EQ(l.groups[0].protocol_type, "consumer");
  EXPECT_EQ(l.groups[0].group_state, "Stable");
  EXPECT_EQ(l.groups[1].group_state, "Empty");
  lr.states_filter = {"stable"};
  rid = h.next_rid++;
  h.absorb(h.sm.list_groups(rid, 4, lr, h.now));
  EXPECT_EQ(h.reply<protocol::list_groups_response>(rid)->groups.size(), 1u);

  protocol::describe_groups_request dr;
  dr.groups = {"active", "unknown"};
  rid = h.next_rid++;
  h.absorb(h.sm.describe_groups(rid, 5, dr, h.now));
  auto d = *h.reply<protocol::describe_groups_response>(rid);
  EXPECT_EQ(d.groups[0].group_state, "Stable");
  EXPECT_EQ(d.groups[0].protocol_data, "range");
  ASSERT_EQ(d.groups[0].members.size(), 1u);
  EXPECT_EQ(d.groups[0].members[0].member_assignment, to_bytes("assign"));
  EXPECT_EQ(d.groups[0].members[0].member_metadata, subscription({"t"}));
  EXPECT_EQ(d.groups[0].members[0].client_host, "/127.0.0.1");
  EXPECT_EQ(d.groups[1].error_code, 0);
  EXPECT_EQ(d.groups[1].group_state, "Dead");

  protocol::delete_groups_request del;
  del.groups_names = {"active", "idle", "unknown"};
  rid = h.next_rid++;
  h.absorb(h.sm.delete_groups(rid, 1, del, h.now));
  EXPECT_FALSE(h.answered(rid)) << "answered once the tombstones are written";
  ASSERT_EQ(h.writes.size(), 1u);
  EXPECT_FALSE(h.writes[0].records[0].value) << "a tombstone";
  h.complete_writes();
  auto dg = *h.reply<protocol::delete_groups_response>(rid);
  EXPECT_EQ(dg.results[0].error_code, ec(error_code::non_empty_group));
  EXPECT_EQ(dg.results[1].error_code, 0);
  EXPECT_EQ(dg.results[2].error_code, ec(error_code::group_id_not_found));
  EXPECT_FALSE(h.sm.find("idle"));
  EXPECT_EQ(h.committed("idle", "t", 0), -1);
}

TEST(coordinator, offset_delete) {
  harness h;
  std::string a;
  h.join_new("g", a, 5, {{"range", {"t"}}});
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  h.commit("g", a, 1, {{"t", 0, 1}, {"u", 0, 2}});
  h.complete_writes();
  protocol::offset_delete_request r;
  r.group_id = "g";
  for (auto* t : {"t", "u"}) {
    auto& rt = r.topics.emplace_back();
    rt.name = t;
    rt.partitions.emplace_back().partition_index = 0;
  }
  uint64_t rid = h.next_rid++;
  h.absorb(h.sm.offset_delete(rid, 0, r, h.now));
  h.complete_writes();
  auto resp = *h.reply<protocol::offset_delete_response>(rid);
  EXPECT_EQ(resp.error_code, 0);
  EXPECT_EQ(resp.topics[0].partitions[0].error_code, ec(error_code::group_subscribed_to_topic));
  EXPECT_EQ(resp.topics[1].partitions[0].error_code, 0);
  EXPECT_EQ(h.committed("g", "t", 0), 1);
  EXPECT_EQ(h.committed("g", "u", 0), -1);

  r.group_id = "nope";
  rid = h.next_rid++;
  h.absorb(h.sm.offset_delete(rid, 0, r, h.now));
  EXPECT_EQ(h.reply<protocol::offset_delete_response>(rid)->error_code, ec(error_code::group_id_not_found));
}

TEST(coordinator, offsets_of_empty_groups_expire) {
  auto cfg = harness::defaults();
  cfg.offsets_retention_ms = 60'000;
  cfg.offsets_retention_check_interval_ms = 1000;
  harness h(cfg);
  std::string a;
  h.join_new("g", a);
  h.sync("g", a, 1, {{a, "x"}});
  h.complete_writes();
  h.commit("g", a, 1, {{"t", 0, 5}});
  h.commit("solo", "", -1, {{"t", 0, 6}});
  h.complete_writes();
  // g stays active (heartbeats) past the retention: its offsets stay.
  for (int i = 0; i < 70; ++i) {
    h.advance(1000);
    h.heartbeat("g", a, 1);
  }
  EXPECT_EQ(h.committed("g", "t", 0), 5);
  EXPECT_FALSE(h.sm.find("solo")) << "offsets-only group expired with its offsets";
  h.complete_writes();
  h.leave("g", {a});
  h.complete_writes();
  h.advance(59'000);
  EXPECT_EQ(h.committed("g", "t", 0), 5);
  h.advance(2000);
  EXPECT_EQ(h.committed("g", "t", 0), -1);
  EXPECT_FALSE(h.sm.find("g"));
  ASSERT_FALSE(h.writes.empty());
  bool group_tombstone = false;
  for (auto& w : h.writes)
    for (auto& r : w.records)
      if (!r.value && r.key.size() > 2 && r.key[1] == 2) group_tombstone = true;
  EXPECT_TRUE(group_tombstone);
}

}  // namespace
}  // namespace gregor::coordinator
