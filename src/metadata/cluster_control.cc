#include "metadata/cluster_control.h"

#include <algorithm>
#include <limits>
#include <set>

namespace gregor::metadata {

using protocol::error_code;

namespace {

bool contains(const std::vector<int32_t>& v, int32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::vector<int32_t> without(std::vector<int32_t> v, int32_t x) {
  v.erase(std::remove(v.begin(), v.end(), x), v.end());
  return v;
}

protocol::partition_change_record change_of(const topic_state& t, const partition_state& p) {
  protocol::partition_change_record c;
  c.topic_id = t.topic_id;
  c.partition_id = p.partition;
  return c;
}

// The first replica, in replica order, that is in the ISR and passes `ok`.
int32_t pick_leader(const partition_state& p, const std::function<bool(int32_t)>& ok) {
  for (int32_t r : p.replicas)
    if (contains(p.isr, r) && ok(r)) return r;
  return -1;
}

struct election_result {
  int32_t leader = -1;  // -1: nobody may lead
  bool unclean = false;
};

// The leader `p` gets once its ISR is `isr`: the first usable ISR member in
// replica order; else, if `unclean_ok`, the first usable replica, out of
// sync (Kafka's PartitionChangeBuilder.electAnyLeader).
election_result elect(const partition_state& p, const std::vector<int32_t>& isr,
                      const std::function<bool(int32_t)>& usable, bool unclean_ok) {
  partition_state next = p;
  next.isr = isr;
  if (int32_t leader = pick_leader(next, usable); leader >= 0) return {leader, false};
  if (unclean_ok)
    for (int32_t r : p.replicas)
      if (usable(r)) return {r, true};
  return {};
}

// Makes `c` give `p` the leader `e` elected. One from outside the ISR becomes
// the whole ISR and leads RECOVERING until it says it has recovered
// (KIP-704); it is added to `unclean`.
void set_leader(protocol::partition_change_record& c, const topic_state& t, const partition_state& p,
                const election_result& e, std::vector<unclean_election>& unclean) {
  c.leader = e.leader;
  if (!e.unclean) return;
  c.isr = std::vector<int32_t>{e.leader};
  if (p.leader_recovery_state != 1) c.leader_recovery_state = 1;
  unclean.push_back({t.name, p.partition, e.leader, p.isr});
}

// Takes broker `gone` out of every partition's leadership and (where others
// remain) ISR: what fencing, a controlled shutdown and a re-registration
// after an unclean shutdown all do. A partition no in-sync replica can lead
// gets an out-of-sync one where its topic allows unclean election, else no
// leader until an ISR member returns.
void move_away_from(const image& img, int32_t gone, bool unclean_default, std::vector<record>& out,
                    std::vector<unclean_election>& unclean) {
  auto usable = [&](int32_t b) { return b != gone && img.is_usable(b); };
  for (auto& [name, t] : img.topics) {
    const bool unclean_ok = unclean_leader_election_enabled(img, name, unclean_default);
    for (auto& p : t->partitions) {
      bool leads = p.leader == gone;
      bool in_isr = contains(p.isr, gone);
      if (!leads && !in_isr) continue;
      auto c = change_of(*t, p);
      std::vector<int32_t> isr = p.isr;
      if (in_isr && isr.size() > 1) isr = without(isr, gone);
      if (isr != p.isr) c.isr = isr;
      if (leads || p.leader < 0) {
        auto e = elect(p, isr, usable, unclean_ok);
        if (e.leader >= 0) set_leader(c, *t, p, e, unclean);
        else if (leads) c.leader = -1;
      }
      if (c.isr || c.leader != -2) out.push_back(c);
    }
  }
}

// Leaderless partitions that `concerns` picks get a leader if one is usable:
// an ISR member, or where the topic allows unclean election, any replica.
void elect_leaderless(const image& img, const std::function<bool(int32_t)>& usable, bool unclean_default,
                      const std::function<bool(const partition_state&)>& concerns, std::vector<record>& out,
                      std::vector<unclean_election>& unclean) {
  for (auto& [name, t] : img.topics) {
    const bool unclean_ok = unclean_leader_election_enabled(img, name, unclean_default);
    for (auto& p : t->partitions) {
      if (p.leader >= 0 || !concerns(p)) continue;
      auto e = elect(p, p.isr, usable, unclean_ok);
      if (e.leader < 0) continue;
      auto c = change_of(*t, p);
      set_leader(c, *t, p, e, unclean);
      out.push_back(c);
    }
  }
}

// Broker `back` is being unfenced: the leaderless partitions it is a replica
// of get a leader, `back` itself if it is in their ISR.
void elect_for_returning(const image& img, int32_t back, bool unclean_default, std::vector<record>& out,
                         std::vector<unclean_election>& unclean) {
  elect_leaderless(
      img, [&](int32_t b) { return b == back || img.is_usable(b); }, unclean_default,
      [&](const partition_state& p) { return contains(p.replicas, back); }, out, unclean);
}

}  // namespace

// ---- registration and heartbeats

registration_result plan_register_broker(const image& img, const registration_request& req,
                                         const std::string& cluster_id, int64_t next_offset,
                                         const std::function<bool(int32_t)>& session_alive,
                                         std::vector<record>& out, bool unclean_leader_election_enable) {
  if (req.cluster_id != cluster_id)
    return {error_code::inconsistent_cluster_id,
            "Expected cluster ID " + cluster_id + ", but got cluster ID " + req.cluster_id, -1};
  if (req.broker_id < 0) return {error_code::invalid_request, "Invalid broker id " + std::to_string(req.broker_id), -1};
  const size_t first = out.size();
  std::vector<unclean_election> unclean;
  if (auto* existing = img.broker(req.broker_id)) {
    if (existing->incarnation_id == req.incarnation_id) return {error_code::none, {}, existing->broker_epoch};
    // The old incarnation is known to be gone after a controlled shutdown,
    // or when the new one names its epoch; otherwise its session must end first.
    bool known_gone = existing->in_controlled_shutdown || req.previous_broker_epoch == existing->broker_epoch;
    if (!known_gone && session_alive && session_alive(req.broker_id))
      return {error_code::duplicate_broker_registration,
              "Another broker is registered with that broker id (" + std::to_string(req.broker_id) + ").", -1};
    // The previous incarnation is gone: its leaderships move before the new
    // one (fenced until it catches up) appears.
    move_away_from(img, req.broker_id, unclean_leader_election_enable, out, unclean);
  }
  protocol::register_broker_record r;
  r.broker_id = req.broker_id;
  r.incarnation_id = req.incarnation_id;
  r.broker_epoch = next_offset + static_cast<int64_t>(out.size() - first);
  for (auto& l : req.listeners) {
    protocol::register_broker_record::broker_endpoint e;
    e.name = l.name;
    e.host = l.host;
    e.port = static_cast<uint16_t>(l.port);
    e.security_protocol = l.security_protocol;
    r.end_points.push_back(e);
  }
  r.rack = req.rack;
  r.fenced = true;
  r.in_controlled_shutdown = false;
  int64_t epoch = r.broker_epoch;
  out.push_back(r);
  return {error_code::none, {}, epoch, std::move(unclean)};
}

heartbeat_result plan_heartbeat(const image& img, const heartbeat_request& req, std::vector<record>& out,
                                bool unclean_leader_election_enable) {
  heartbeat_result res;
  auto* b = img.broker(req.broker_id);
  if (!b) {
    res.error = error_code::broker_id_not_registered;
    return res;
  }
  if (b->broker_epoch != req.broker_epoch) {
    res.error = error_code::stale_broker_epoch;
    return res;
  }
  res.is_caught_up = req.current_metadata_offset >= b->broker_epoch;
  res.is_fenced = b->fenced;
  if (req.want_shut_down) {
    // Controlled shutdown: mark it, move its leaderships, and let it go once
    // it leads nothing.
    if (!b->in_controlled_shutdown) {
      protocol::broker_registration_change_record c;
      c.broker_id = b->node_id;
      c.broker_epoch = b->broker_epoch;
      c.in_controlled_shutdown = 1;
      out.push_back(c);
    }
    move_away_from(img, b->node_id, unclean_leader_election_enable, out, res.unclean_elections);
    // It leads nothing once these records commit, and it stops serving: fence
    // it now rather than leave it listed until its session runs out (Kafka
    // fences a broker when its controlled shutdown completes).
    if (!b->fenced) {
      protocol::fence_broker_record f;
      f.id = b->node_id;
      f.epoch = b->broker_epoch;
      out.push_back(f);
    }
    res.should_shut_down = true;
    res.is_fenced = true;
    return res;
  }
  if (req.want_fence) {
    if (!b->fenced) {
      protocol::fence_broker_record f;
      f.id = b->node_id;
      f.epoch = b->broker_epoch;
      out.push_back(f);
      move_away_from(img, b->node_id, unclean_leader_election_enable, out, res.unclean_elections);
    }
    res.is_fenced = true;
    return res;
  }
  if (b->fenced && res.is_caught_up) {
    protocol::unfence_broker_record u;
    u.id = b->node_id;
    u.epoch = b->broker_epoch;
    out.push_back(u);
    elect_for_returning(img, b->node_id, unclean_leader_election_enable, out, res.unclean_elections);
    res.is_fenced = false;
  }
  return res;
}

std::vector<int32_t> expired_sessions(const image& img, const std::map<int32_t, int64_t>& last_heartbeat_ms,
                                      int64_t now_ms, int64_t session_timeout_ms) {
  std::vector<int32_t> out;
  for (auto& [id, b] : img.brokers) {
    if (b.fenced) continue;
    auto it = last_heartbeat_ms.find(id);
    if (it == last_heartbeat_ms.end() || now_ms - it->second > session_timeout_ms) out.push_back(id);
  }
  return out;
}

decision plan_fence_broker(const image& img, int32_t broker_id, std::vector<record>& out,
                           bool unclean_leader_election_enable) {
  auto* b = img.broker(broker_id);
  if (!b) return {error_code::broker_id_not_registered, "Broker " + std::to_string(broker_id) + " is not registered"};
  if (b->fenced) return {};
  protocol::fence_broker_record f;
  f.id = broker_id;
  f.epoch = b->broker_epoch;
  out.push_back(f);
  decision d;
  move_away_from(img, broker_id, unclean_leader_election_enable, out, d.unclean_elections);
  return d;
}

decision plan_unregister_broker(const image& img, int32_t broker_id, std::vector<record>& out,
                                bool unclean_leader_election_enable) {
  auto* b = img.broker(broker_id);
  if (!b) return {error_code::broker_id_not_registered, "Broker " + std::to_string(broker_id) + " is not registered"};
  decision d;
  move_away_from(img, broker_id, unclean_leader_election_enable, out, d.unclean_elections);
  protocol::unregister_broker_record u;
  u.broker_id = broker_id;
  u.broker_epoch = b->broker_epoch;
  out.push_back(u);
  return d;
}

// ---- placement

placement place_replicas(const image& img, int32_t count, int32_t rf, uint64_t start_index) {
  placement out;
  std::map<std::string, std::vector<int32_t>> by_rack;  // "" = no rack
  size_t usable = 0;
  for (auto& [id, b] : img.brokers) {
    if (!b.usable()) continue;
    by_rack[b.rack.value_or("")].push_back(id);
    ++usable;
  }
  if (rf <= 0) {
    out.outcome = {error_code::invalid_replication_factor, "Replication factor must be larger than 0."};
    return out;
  }
  if (static_cast<size_t>(rf) > usable) {
    out.outcome = {error_code::invalid_replication_factor,
                   "Unable to replicate the partition " + std::to_string(rf) +
                       " time(s): The target replication factor of " + std::to_string(rf) +
                       " cannot be reached because only " + std::to_string(usable) + " broker(s) are registered."};
    return out;
  }
  // One broker of each rack in turn: consecutive brokers of this list are in
  // different racks whenever there are several.
  std::vector<int32_t> striped;
  for (size_t i = 0; striped.size() < usable; ++i)
    for (auto& [_, ids] : by_rack)
      if (i < ids.size()) striped.push_back(ids[i]);
  auto rack_of = [&](int32_t id) { return img.broker(id)->rack.value_or(""); };
  const size_t n = striped.size();
  for (int32_t p = 0; p < count; ++p) {
    std::vector<int32_t> replicas;
    std::set<std::string> racks;
    size_t first = (start_index + static_cast<size_t>(p)) % n;
    replicas.push_back(striped[first]);
    racks.insert(rack_of(striped[first]));
    // Followers: shifted by how many times the leaders have gone round, so
    // the same brokers are not always paired; other racks first.
    size_t shift = 1 + (static_cast<size_t>(p) / n) % std::max<size_t>(n - 1, 1);
    for (int pass = 0; pass < 2 && replicas.size() < static_cast<size_t>(rf); ++pass) {
      for (size_t k = 0; k < n && replicas.size() < static_cast<size_t>(rf); ++k) {
        int32_t cand = striped[(first + shift + k) % n];
        if (contains(replicas, cand)) continue;
        if (pass == 0 && racks.count(rack_of(cand)) && racks.size() < by_rack.size()) continue;
        replicas.push_back(cand);
        racks.insert(rack_of(cand));
      }
    }
    out.replicas.push_back(std::move(replicas));
  }
  return out;
}

// ---- elections

decision plan_elect_leader(const image& img, const std::string& topic, int32_t partition, election_type type,
                           std::vector<record>& out) {
  auto* t = img.topic(topic);
  if (!t || partition < 0 || static_cast<size_t>(partition) >= t->partitions.size())
    return {error_code::unknown_topic_or_partition, "The partition does not exist."};
  auto& p = t->partitions[static_cast<size_t>(partition)];
  auto c = change_of(*t, p);
  const std::string where = topic + "-" + std::to_string(partition);
  if (type == election_type::preferred) {
    int32_t preferred = p.replicas.empty() ? -1 : p.replicas.front();
    if (preferred == p.leader) return {error_code::election_not_needed, "Leader election not needed for topic partition."};
    if (preferred < 0 || !contains(p.isr, preferred) || !img.is_usable(preferred))
      return {error_code::preferred_leader_not_available,
              "Failed to elect leader for partition " + where +
                  " under strategy PreferredReplicaPartitionLeaderElectionStrategy"};
    c.leader = preferred;
    out.push_back(c);
    return {};
  }
  if (p.leader >= 0) return {error_code::election_not_needed, "Leader election not needed for topic partition."};
  auto e = elect(p, p.isr, [&](int32_t b) { return img.is_usable(b); }, true);
  if (e.leader < 0)
    return {error_code::eligible_leaders_not_available,
            "Failed to elect leader for partition " + where + " under strategy UncleanLeaderElectionStrategy"};
  decision d;
  set_leader(c, *t, p, e, d.unclean_elections);
  out.push_back(c);
  return d;
}

bool unclean_leader_election_enabled(const image& img, const std::string& topic, bool static_default) {
  static const std::string key = "unclean.leader.election.enable";
  if (auto* t = img.topic(topic))
    if (auto it = t->configs.find(key); it != t->configs.end()) return it->second == "true";
  if (auto cluster = img.broker_configs.find(""); cluster != img.broker_configs.end())
    if (auto it = cluster->second.find(key); it != cluster->second.end()) return it->second == "true";
  return static_default;
}

decision plan_elect_leaderless(const image& img, std::vector<record>& out, bool unclean_leader_election_enable) {
  decision d;
  elect_leaderless(
      img, [&](int32_t b) { return img.is_usable(b); }, unclean_leader_election_enable,
      [](const partition_state&) { return true; }, out, d.unclean_elections);
  return d;
}

std::vector<std::pair<std::string, int32_t>> unbalanced_partitions(const image& img, int32_t imbalance_percentage) {
  // Per preferred broker: the partitions it should lead and those it does not.
  std::map<int32_t, std::vector<std::pair<std::string, int32_t>>> not_led;
  std::map<int32_t, size_t> preferred_count;
  for (auto& [name, t] : img.topics) {
    for (auto& p : t->partitions) {
      if (p.replicas.empty()) continue;
      int32_t preferred = p.replicas.front();
      ++preferred_count[preferred];
      if (p.leader != preferred) not_led[preferred].push_back({name, p.partition});
    }
  }
  std::vector<std::pair<std::string, int32_t>> out;
  for (auto& [broker, parts] : not_led) {
    if (!img.is_usable(broker)) continue;
    double ratio = static_cast<double>(parts.size()) / static_cast<double>(preferred_count[broker]);
    if (ratio * 100.0 <= imbalance_percentage) continue;
    for (auto& tp : parts) {
      auto& p = img.topic(tp.first)->partitions[static_cast<size_t>(tp.second)];
      if (contains(p.isr, broker)) out.push_back(tp);
    }
  }
  return out;
}

// ---- reassignments

namespace {
// A partition settles on `replicas` (a reassignment completes or is
// cancelled): the ISR keeps only them, and a leader outside them hands over.
protocol::partition_change_record settled(const image& img, const topic_state& t, const partition_state& p,
                                          const std::vector<int32_t>& replicas) {
  auto c = change_of(t, p);
  std::vector<int32_t> isr;
  for (int32_t r : p.isr)
    if (contains(replicas, r)) isr.push_back(r);
  if (isr.empty()) isr = {replicas.front()};
  c.replicas = replicas;
  c.adding_replicas = std::vector<int32_t>{};
  c.removing_replicas = std::vector<int32_t>{};
  c.isr = isr;
  partition_state next = p;
  next.replicas = replicas;
  next.isr = isr;
  if (!contains(replicas, p.leader) || !contains(isr, p.leader)) {
    c.leader = pick_leader(next, [&](int32_t b) { return img.is_usable(b); });
  } else if (replicas != p.replicas) {
    c.leader = p.leader;  // replicas removed: a new leader epoch, as Kafka starts one
  }
  return c;
}

// The change that completes `p`'s reassignment, once every target replica
// is in its ISR (Kafka's rule), or nullopt.
std::optional<protocol::partition_change_record> completed_reassignment(const image& img, const topic_state& t,
                                                                        const partition_state& p) {
  if (p.adding_replicas.empty()) return std::nullopt;
  std::vector<int32_t> target;
  for (int32_t r : p.replicas)
    if (!contains(p.removing_replicas, r)) target.push_back(r);
  for (int32_t r : target)
    if (!contains(p.isr, r)) return std::nullopt;
  return settled(img, t, p, target);
}
}  // namespace

decision plan_alter_reassignment(const image& img, const std::string& topic, int32_t partition,
                                 const std::optional<std::vector<int32_t>>& target, std::vector<record>& out) {
  auto* t = img.topic(topic);
  if (!t || partition < 0 || static_cast<size_t>(partition) >= t->partitions.size())
    return {error_code::unknown_topic_or_partition, "The partition does not exist."};
  auto& p = t->partitions[static_cast<size_t>(partition)];
  bool ongoing = !p.adding_replicas.empty() || !p.removing_replicas.empty();
  // The replicas before any reassignment in progress.
  std::vector<int32_t> original;
  for (int32_t r : p.replicas)
    if (!contains(p.adding_replicas, r)) original.push_back(r);
  if (!target) {
    if (!ongoing)
      return {error_code::no_reassignment_in_progress,
              "No ongoing reassignment for " + topic + "-" + std::to_string(partition)};
    out.push_back(settled(img, *t, p, original));
    return {};
  }
  if (target->empty())
    return {error_code::invalid_replica_assignment, "The manual partition assignment includes an empty replica list."};
  std::set<int32_t> seen;
  for (int32_t r : *target) {
    if (!seen.insert(r).second)
      return {error_code::invalid_replica_assignment, "The manual partition assignment includes a duplicate replica."};
    if (!img.broker(r))
      return {error_code::invalid_replica_assignment, "The manual partition assignment includes broker " +
                                                          std::to_string(r) + ", but no such broker is registered."};
  }
  // Against every current replica (a move in progress may be redirected):
  // new ones, and ones still catching up from an earlier move, are added;
  // the rest leave once the added ones are in sync.
  std::vector<int32_t> adding, removing;
  for (int32_t r : *target)
    if (!contains(p.replicas, r) || contains(p.adding_replicas, r)) adding.push_back(r);
  for (int32_t r : p.replicas)
    if (!contains(*target, r)) removing.push_back(r);
  if (adding.empty()) {
    // Only removals or a new order: nothing to wait for.
    out.push_back(settled(img, *t, p, *target));
    return {};
  }
  auto c = change_of(*t, p);
  std::vector<int32_t> merged = *target;
  for (int32_t r : removing) merged.push_back(r);
  c.replicas = merged;
  c.adding_replicas = adding;
  c.removing_replicas = removing;
  out.push_back(c);
  return {};
}

void plan_complete_reassignments(const image& img, std::vector<record>& out) {
  for (auto& [name, t] : img.topics)
    for (auto& p : t->partitions)
      if (auto c = completed_reassignment(img, *t, p)) out.push_back(*c);
}

std::vector<ongoing_reassignment> list_reassignments(const image& img) {
  std::vector<ongoing_reassignment> out;
  for (auto& [name, t] : img.topics)
    for (auto& p : t->partitions)
      if (!p.adding_replicas.empty() || !p.removing_replicas.empty())
        out.push_back({name, p.partition, p.replicas, p.adding_replicas, p.removing_replicas});
  return out;
}

// ---- ISR changes (AlterPartition)

namespace {

// Each ISR member is a distinct, non-negative replica of the partition
// (Kafka's Replicas.validateIsr).
bool isr_within_replicas(const std::vector<int32_t>& replicas, const std::vector<int32_t>& isr) {
  std::set<int32_t> seen;
  for (int32_t r : isr)
    if (r < 0 || !contains(replicas, r) || !seen.insert(r).second) return false;
  return true;
}

// A member that may not join an ISR: unregistered, fenced, shutting down, or
// (v3) a broker epoch other than its registration's, i.e. a replica that
// restarted since the leader saw it catch up (KIP-903).
bool ineligible(const image& img, const isr_member& m) {
  auto* b = img.broker(m.broker_id);
  return !b || b->in_controlled_shutdown || b->fenced || (m.broker_epoch != -1 && m.broker_epoch != b->broker_epoch);
}

// One partition's request, checked in the order Kafka's controller checks it
// (ReplicationControlManager.validateAlterPartitionData); when valid, the
// record that makes the change (none if nothing changes) goes to `out`.
error_code plan_one_isr_change(const image& img, const alter_partition_request& req, const topic_state& t,
                               const alter_partition_item& item, std::vector<record>& out) {
  if (item.partition < 0 || static_cast<size_t>(item.partition) >= t.partitions.size())
    return error_code::unknown_topic_or_partition;
  auto& p = t.partitions[static_cast<size_t>(item.partition)];
  // The leader knows a newer partition than this controller does: this node
  // is probably no longer the active controller, so the leader should look
  // for the new one.
  if (item.leader_epoch > p.leader_epoch || item.partition_epoch > p.partition_epoch) return error_code::not_controller;
  if (item.leader_epoch < p.leader_epoch) return error_code::fenced_leader_epoch;
  if (req.broker_id != p.leader) return error_code::invalid_request;
  // Another change (a fencing, a reassignment, an earlier AlterPartition)
  // came first: the leader must build its request on the newer state.
  if (item.partition_epoch < p.partition_epoch) return error_code::invalid_update_version;
  std::vector<int32_t> isr;
  for (auto& m : item.new_isr) isr.push_back(m.broker_id);
  if (!isr_within_replicas(p.replicas, isr) || !contains(isr, p.leader)) return error_code::invalid_request;
  // After an unclean election the leader alone is the ISR until it says it
  // has recovered, and a recovered partition never goes back (KIP-704).
  const int8_t recovery = item.leader_recovery_state;
  if (recovery != 0 && recovery != 1) return error_code::invalid_request;
  if (recovery == 1 && (isr.size() > 1 || p.leader_recovery_state == 0)) return error_code::invalid_request;
  for (auto& m : item.new_isr)
    if (ineligible(img, m)) return req.version >= 2 ? error_code::ineligible_replica : error_code::operation_not_attempted;

  auto c = change_of(t, p);
  partition_state next = p;
  next.isr = isr;
  // A grown ISR may complete a reassignment: then one record does both, as
  // Kafka's PartitionChangeBuilder does.
  if (auto done = completed_reassignment(img, t, next)) {
    c = *done;
  } else if (isr != p.isr) {
    c.isr = isr;
  }
  if (recovery != p.leader_recovery_state) c.leader_recovery_state = recovery;
  if (c.isr || c.leader != -2 || c.leader_recovery_state >= 0) out.push_back(c);
  return error_code::none;
}

}  // namespace

alter_partition_result plan_alter_partition(const image& img, const alter_partition_request& req,
                                            std::vector<record>& out) {
  alter_partition_result res;
  // A leader that restarted since it registered (or is gone) speaks for a
  // replica state it no longer has.
  auto* sender = img.broker(req.broker_id);
  if (!sender || sender->broker_epoch != req.broker_epoch) {
    res.error = error_code::stale_broker_epoch;
    return res;
  }
  // Each partition on the image as the ones before it left it; copied only
  // once something changes.
  std::optional<image> changed;
  for (auto& item : req.partitions) {
    const image& current = changed ? *changed : img;
    auto& a = res.partitions.emplace_back();
    const topic_state* t = req.version >= 2 ? (item.topic_id == uuid{} ? nullptr : current.topic_by_id(item.topic_id))
                                            : current.topic(item.topic_name);
    if (!t) {
      a.error = req.version >= 2 ? error_code::unknown_topic_id : error_code::unknown_topic_or_partition;
      continue;
    }
    const std::string name = t->name;
    std::vector<record> one;
    a.error = plan_one_isr_change(current, req, *t, item, one);
    if (a.error != error_code::none) continue;
    if (!one.empty()) {
      changed = apply(current, one, current.last_offset + 1);
      for (auto& r : one) out.push_back(std::move(r));
    }
    auto& p = (changed ? *changed : img).topic(name)->partitions[static_cast<size_t>(item.partition)];
    // Completing a reassignment may move the leadership away from the
    // sender: it must learn the new leader from the metadata before it asks
    // again (v0-1 have no NEW_LEADER_ELECTED).
    if (p.leader != req.broker_id) {
      a.error = req.version >= 2 ? error_code::new_leader_elected : error_code::fenced_leader_epoch;
      continue;
    }
    a.partition = p;
  }
  return res;
}

producer_ids_result plan_allocate_producer_ids(const image& img, int32_t broker_id, int64_t broker_epoch,
                                               std::vector<record>& out) {
  producer_ids_result res;
  auto* b = img.broker(broker_id);
  if (!b) {
    res.error = error_code::stale_broker_epoch;
    res.message = "no broker registration found for broker id " + std::to_string(broker_id);
    return res;
  }
  if (b->broker_epoch != broker_epoch) {
    res.error = error_code::stale_broker_epoch;
    res.message = "expected broker epoch " + std::to_string(b->broker_epoch) + ", but got broker epoch " +
                  std::to_string(broker_epoch);
    return res;
  }
  const int64_t start = img.next_producer_id;
  if (start > std::numeric_limits<int64_t>::max() - producer_id_block_size) {
    res.error = error_code::unknown_server_error;
    res.message = "all producer ids are used up";
    return res;
  }
  protocol::producer_ids_record r;
  r.broker_id = broker_id;
  r.broker_epoch = broker_epoch;
  r.next_producer_id = start + producer_id_block_size;
  out.push_back(r);
  res.producer_id_start = start;
  res.producer_id_len = producer_id_block_size;
  return res;
}

std::optional<std::string> leadership_violation(const image& img) {
  for (auto& [name, t] : img.topics) {
    for (auto& p : t->partitions) {
      if (p.leader < 0) continue;
      const std::string where = name + "-" + std::to_string(p.partition);
      auto* b = img.broker(p.leader);
      if (!b) return where + " is led by unregistered broker " + std::to_string(p.leader);
      if (b->fenced) return where + " is led by fenced broker " + std::to_string(p.leader);
      if (!contains(p.replicas, p.leader)) return where + " is led by " + std::to_string(p.leader) + ", not a replica";
      if (!contains(p.isr, p.leader)) return where + " is led by " + std::to_string(p.leader) + ", not in the ISR";
    }
  }
  return std::nullopt;
}

}  // namespace gregor::metadata
