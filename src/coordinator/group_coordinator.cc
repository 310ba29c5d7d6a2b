#include "coordinator/group_coordinator.h"

#include <algorithm>
#include <cctype>

#include "base/assert.h"
#include "base/log.h"
#include "coordinator/versioned_record.h"
#include "protocol/wire.h"

namespace gregor::coordinator {

using protocol::error_code;

namespace {

int16_t ec(error_code e) { return static_cast<int16_t>(e); }

constexpr const char* consumer_protocol_type = "consumer";

// Kafka's key versions: 0 and 1 are offset commits, 2 is group metadata.
constexpr int16_t offset_key_version = 1;
constexpr int16_t group_key_version = 2;
// Value versions Kafka 3.x writes: offsets v3 (v1 when an expiry is given),
// group metadata v3 (static membership).
constexpr int16_t group_value_version = 3;

bytes offset_key(const std::string& group_id, const topic_partition& tp) {
  protocol::offset_commit_key k;
  k.group = group_id;
  k.topic = tp.first;
  k.partition = tp.second;
  return encode_versioned(k, offset_key_version);
}

bytes group_key(const std::string& group_id) {
  protocol::group_metadata_key k;
  k.group = group_id;
  return encode_versioned(k, group_key_version);
}

bytes offset_value(const committed_offset& o) {
  protocol::offset_commit_value v;
  v.offset = o.offset;
  v.leader_epoch = o.leader_epoch;
  v.metadata = o.metadata;
  v.commit_timestamp = o.commit_timestamp;
  v.expire_timestamp = o.expire_timestamp.value_or(-1);
  return encode_versioned(v, o.expire_timestamp ? 1 : 3);
}

// Kafka's mapping of append errors to what a committing client sees.
error_code commit_error(error_code e) {
  switch (e) {
    case error_code::none: return e;
    case error_code::unknown_topic_or_partition:
    case error_code::not_enough_replicas:
    case error_code::not_enough_replicas_after_append:
    case error_code::request_timed_out: return error_code::coordinator_not_available;
    case error_code::not_leader_or_follower:
    case error_code::kafka_storage_error: return error_code::not_coordinator;
    case error_code::message_too_large:
    case error_code::record_list_too_large:
    case error_code::invalid_fetch_size: return error_code::invalid_commit_offset_size;
    default: return e;
  }
}

error_code store_group_error(error_code e) {
  switch (e) {
    case error_code::none: return e;
    case error_code::unknown_topic_or_partition:
    case error_code::not_enough_replicas:
    case error_code::not_enough_replicas_after_append:
    case error_code::request_timed_out: return error_code::coordinator_not_available;
    case error_code::not_leader_or_follower:
    case error_code::kafka_storage_error: return error_code::not_coordinator;
    default: return error_code::unknown_server_error;
  }
}

protocol::join_group_response join_error(int16_t version, const std::string& member_id, error_code e) {
  protocol::join_group_response r;
  r.error_code = ec(e);
  r.generation_id = -1;
  r.member_id = member_id;
  r.leader = "";
  if (version < 7) r.protocol_name = "";
  return r;
}

protocol::sync_group_response sync_error(error_code e) {
  protocol::sync_group_response r;
  r.error_code = ec(e);
  return r;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

// ---------------------------------------------------------------- helpers

const char* state_name(group_state s) {
  switch (s) {
    case group_state::empty: return "Empty";
    case group_state::preparing_rebalance: return "PreparingRebalance";
    case group_state::completing_rebalance: return "CompletingRebalance";
    case group_state::stable: return "Stable";
    case group_state::dead: return "Dead";
  }
  return "Unknown";
}

int32_t java_string_hash(std::string_view s) {
  uint32_t h = 0;
  auto add = [&](uint32_t unit) { h = 31 * h + unit; };
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      cp = c;
      n = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      n = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      n = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      n = 4;
    } else {
      add(0xFFFD);  // not UTF-8: Java would decode a replacement character
      ++i;
      continue;
    }
    if (i + n > s.size()) {
      add(0xFFFD);
      break;
    }
    bool bad = false;
    for (size_t k = 1; k < n; ++k) {
      auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) bad = true;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (bad) {
      add(0xFFFD);
      ++i;
      continue;
    }
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      add(0xD800 + (cp >> 10));
      add(0xDC00 + (cp & 0x3FF));
    } else {
      add(cp);
    }
  }
  return static_cast<int32_t>(h);
}

int32_t partition_for_group(std::string_view group_id, int32_t partitions) {
  int32_t h = java_string_hash(group_id);
  int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
  return partitions <= 0 ? 0 : a % partitions;
}

std::optional<std::set<std::string>> subscription_topics(bytes_view b) {
  // ConsumerProtocolSubscription: int16 version, then (all versions) an
  // array of topic names, never flexible.
  protocol::wire_reader r(b);
  int16_t version = r.read_int16();
  if (!r.ok() || version < 0) return std::nullopt;
  int32_t n = r.read_array_length(false, 2);
  if (!r.ok() || n < 0) return std::nullopt;
  std::set<std::string> out;
  for (int32_t i = 0; i < n; ++i) {
    auto s = r.read_string(false);
    if (!r.ok()) return std::nullopt;
    out.insert(std::move(s));
  }
  return out;
}

const bytes* member_state::metadata(const std::string& protocol) const {
  for (auto& [name, md] : protocols)
    if (name == protocol) return &md;
  return nullptr;
}

bool group_coordinator::drop_pending_txn_offsets(group& g, const topic_partition* tp) {
  bool dropped = false;
  for (auto it = g.pending_txn_offsets.begin(); it != g.pending_txn_offsets.end();) {
    dropped |= tp ? it->second.erase(*tp) > 0 : !it->second.empty();
    if (tp && !it->second.empty()) {
      ++it;
      continue;
    }
    if (auto pg = producer_groups_.find(it->first); pg != producer_groups_.end()) {
      pg->second.erase(g.id);
      if (pg->second.empty()) producer_groups_.erase(pg);
    }
    it = g.pending_txn_offsets.erase(it);
  }
  return dropped;
}

bool group::has_pending_offsets(const topic_partition& tp) const {
  if (pending_commits.count(tp)) return true;
  for (auto& [_, offs] : pending_txn_offsets)
    if (offs.count(tp)) return true;
  return false;
}

int32_t group::rebalance_timeout_ms() const {
  int32_t t = 0;
  for (auto& [_, m] : members) t = std::max(t, m.rebalance_timeout_ms);
  return t;
}

// ---------------------------------------------------------------- pending writes

struct group_coordinator::pending_write {
  enum class kind { commit, txn_commit, sync_store, static_join_store, plain, reply_when_done } what = kind::plain;
  std::string group_id;
  int32_t generation = 0;
  uint64_t request = 0;
  int16_t version = 0;
  // sync_store
  std::map<std::string, bytes> assignment;
  // static_join_store: the new member id, and what to put back if the write
  // fails (the old member as it was, under its old id).
  std::string member_id;
  std::string old_leader;
  std::optional<member_state> old_member;
  // commit: the response with each written partition's slot and offset.
  std::shared_ptr<protocol::offset_commit_response> commit_response;
  std::vector<std::tuple<size_t, size_t, topic_partition, committed_offset>> committed;
  // txn_commit: the same, for TxnOffsetCommit, and its producer.
  std::shared_ptr<protocol::txn_offset_commit_response> txn_response;
  int64_t producer_id = -1;
  // reply_when_done: a reply held until all its writes are done.
  struct barrier {
    int outstanding = 0;
    uint64_t request = 0;
    std::optional<response> body;
  };
  std::shared_ptr<barrier> done;
};

struct group_coordinator::join_params {
  uint64_t rid = 0;
  int16_t version = 0;
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t rebalance_timeout_ms = 0;
  int32_t session_timeout_ms = 0;
  std::string protocol_type;
  const std::vector<protocol::join_group_request::join_group_request_protocol>* protocols = nullptr;
  int64_t now = 0;

  std::vector<std::pair<std::string, bytes>> protocol_list() const {
    std::vector<std::pair<std::string, bytes>> out;
    for (auto& p : *protocols) out.emplace_back(p.name, p.metadata);
    return out;
  }
  bool matches(const member_state& m) const {
    if (m.protocols.size() != protocols->size()) return false;
    for (size_t i = 0; i < protocols->size(); ++i)
      if (m.protocols[i].first != (*protocols)[i].name || m.protocols[i].second != (*protocols)[i].metadata)
        return false;
    return true;
  }
};

// ---------------------------------------------------------------- basics

group_coordinator::group_coordinator(group_config config, std::function<std::string()> new_uuid)
    : config_(std::move(config)), new_uuid_(std::move(new_uuid)) {}

const group* group_coordinator::find(const std::string& id) const {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second.get();
}

group* group_coordinator::find_group(const std::string& id) {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second.get();
}

group& group_coordinator::create_group(const std::string& id) {
  auto& slot = groups_[id];
  if (!slot) {
    slot = std::make_unique<group>();
    slot->id = id;
  }
  return *slot;
}

void group_coordinator::remove_group(const std::string& id) { groups_.erase(id); }

std::optional<error_code> group_coordinator::validate_status(const std::string& group_id, bool allow_empty_id) const {
  if (!allow_empty_id && group_id.empty()) return error_code::invalid_group_id;
  if (not_owned_.count(partition_for(group_id))) return error_code::not_coordinator;
  if (loading(partition_for(group_id))) return error_code::coordinator_load_in_progress;
  return std::nullopt;
}

void group_coordinator::transition(group& g, group_state to) {
  auto from = g.state;
  bool valid = false;
  switch (to) {
    case group_state::dead: valid = true; break;
    case group_state::completing_rebalance: valid = from == group_state::preparing_rebalance; break;
    case group_state::stable: valid = from == group_state::completing_rebalance; break;
    case group_state::preparing_rebalance:
      valid = from == group_state::stable || from == group_state::completing_rebalance || from == group_state::empty;
      break;
    case group_state::empty: valid = from == group_state::preparing_rebalance; break;
  }
  GREGOR_ASSERT(valid, "group {}: invalid transition {} -> {}", g.id, state_name(from), state_name(to));
  g.state = to;
}

bool group_coordinator::static_member_fenced(const group& g, const std::optional<std::string>& instance_id,
                                             const std::string& member_id) const {
  if (!instance_id) return false;
  auto it = g.static_members.find(*instance_id);
  return it != g.static_members.end() && it->second != member_id;
}

void group_coordinator::schedule_heartbeat(group&, member_state& m, int64_t now, int64_t timeout_ms) {
  m.heartbeat_deadline = now + timeout_ms;
}

uint64_t group_coordinator::add_write(int32_t partition, std::vector<offsets_record> records, pending_write pw,
                                      output& out) {
  uint64_t id = next_write_id_++;
  pending_writes_[id] = std::make_shared<pending_write>(std::move(pw));
  out.writes.push_back(write_request{id, partition, std::move(records)});
  return id;
}

offsets_record group_coordinator::group_metadata_record(const group& g, const std::map<std::string, bytes>& assignment,
                                                        int64_t now) const {
  protocol::group_metadata_value v;
  v.protocol_type = g.protocol_type.value_or("");
  v.generation = g.generation;
  v.protocol = g.protocol_name;
  v.leader = g.leader;
  v.current_state_timestamp = g.state_timestamp.value_or(now);
  for (auto& [id, m] : g.members) {
    protocol::group_metadata_value::member_metadata mm;
    mm.member_id = id;
    mm.group_instance_id = m.group_instance_id;
    mm.client_id = m.client_id;
    mm.client_host = m.client_host;
    mm.rebalance_timeout = m.rebalance_timeout_ms;
    mm.session_timeout = m.session_timeout_ms;
    if (g.protocol_name)
      if (auto* md = m.metadata(*g.protocol_name)) mm.subscription = *md;
    auto a = assignment.find(id);
    if (a != assignment.end()) mm.assignment = a->second;
    v.members.push_back(std::move(mm));
  }
  return offsets_record{group_key(g.id), encode_versioned(v, group_value_version)};
}

// ---------------------------------------------------------------- JoinGroup

output group_coordinator::join_group(uint64_t rid, int16_t version, const protocol::join_group_request& req,
                                     const client_info& client, int64_t now) {
  output out;
  auto fail = [&](error_code e) {
    out.replies.push_back({rid, join_error(version, req.member_id, e)});
    return out;
  };
  if (auto e = validate_status(req.group_id, false)) return fail(*e);
  if (req.session_timeout_ms < config_.group_min_session_timeout_ms ||
      req.session_timeout_ms > config_.group_max_session_timeout_ms)
    return fail(error_code::invalid_session_timeout);

  bool unknown = req.member_id.empty();
  group* g = find_group(req.group_id);
  if (!g) {
    if (!unknown) return fail(error_code::unknown_member_id);
    g = &create_group(req.group_id);
  }

  join_params p;
  p.rid = rid;
  p.version = version;
  p.member_id = req.member_id;
  p.group_instance_id = version >= 5 ? req.group_instance_id : std::nullopt;
  p.client_id = client.client_id;
  p.client_host = client.client_host;
  p.session_timeout_ms = req.session_timeout_ms;
  p.rebalance_timeout_ms = version == 0 ? req.session_timeout_ms : req.rebalance_timeout_ms;
  p.protocol_type = req.protocol_type;
  p.protocols = &req.protocols;
  p.now = now;

  if (unknown) new_member_join(*g, p, out);
  else current_member_join(*g, p, out);
  maybe_complete_join(*g, now, out);
  return out;
}

bool group_coordinator::supports_protocols(
    const group& g, const std::string& type,
    const std::vector<protocol::join_group_request::join_group_request_protocol>& ps) const {
  if (g.state == group_state::empty) return !type.empty() && !ps.empty();
  if (!g.protocol_type || *g.protocol_type != type) return false;
  for (auto& p : ps) {
    size_t count = 0;
    for (auto& [_, m] : g.members)
      if (m.metadata(p.name)) ++count;
    if (count == g.members.size()) return true;
  }
  return false;
}

void group_coordinator::new_member_join(group& g, const join_params& p, output& out) {
  if (g.state == group_state::dead) {
    out.replies.push_back({p.rid, join_error(p.version, p.member_id, error_code::coordinator_not_available)});
    return;
  }
  if (!supports_protocols(g, p.protocol_type, *p.protocols)) {
    out.replies.push_back({p.rid, join_error(p.version, p.member_id, error_code::inconsistent_group_protocol)});
    return;
  }
  std::string new_id = (p.group_instance_id ? *p.group_instance_id : p.client_id) + "-" + new_uuid_();
  if (p.group_instance_id) {
    static_member_join(g, p, new_id, out);
  } else if (p.version >= 4) {
    // MEMBER_ID_REQUIRED: the member retries with this id; until then it is
    // pending and holds back the completion of the join.
    g.pending_members[new_id] = p.now + p.session_timeout_ms;
    out.replies.push_back({p.rid, join_error(p.version, new_id, error_code::member_id_required)});
  } else {
    add_member_and_rebalance(g, p, new_id, out);
  }
}

// The new member id of a rejoining static member could not be written: as
// Kafka does, the old member comes back as it was (its id, its protocols and
// timeouts), so what the log says and what this coordinator answers agree.
void group_coordinator::revert_static_member(group& g, pending_write& pw, int64_t now) {
  if (!pw.old_member || !g.members.count(pw.member_id)) return;
  const std::string old_id = pw.old_member->member_id;  // a copy: the member is moved below
  g.members.erase(pw.member_id);
  member_state& old = g.members[old_id] = std::move(*pw.old_member);
  old.awaiting_join.reset();
  old.awaiting_sync.reset();
  schedule_heartbeat(g, old, now, old.session_timeout_ms);
  if (old.group_instance_id) g.static_members[*old.group_instance_id] = old_id;
  if (g.is_leader(pw.member_id)) g.leader = old_id;
  if (g.pending_sync.erase(pw.member_id)) g.pending_sync.insert(old_id);
}

void group_coordinator::static_member_join(group& g, const join_params& p, const std::string& new_id, output& out) {
  auto it = g.static_members.find(*p.group_instance_id);
  if (it == g.static_members.end()) {
    add_member_and_rebalance(g, p, new_id, out);
    return;
  }
  // A known static member rejoins with a new member id (it restarted): it
  // takes over the old member's place, fencing whoever still uses the old id.
  std::string old_id = it->second;
  std::string old_leader = g.leader.value_or("");
  auto node = g.members.extract(old_id);
  GREGOR_ASSERT(!node.empty(), "static member {} of group {} is not a member", old_id, g.id);
  member_state& old = node.mapped();
  if (old.awaiting_join) {
    out.replies.push_back({*old.awaiting_join, join_error(old.join_version, old_id, error_code::fenced_instance_id)});
    old.awaiting_join.reset();
    --g.awaiting_join_count;
  }
  if (old.awaiting_sync) {
    out.replies.push_back({*old.awaiting_sync, sync_error(error_code::fenced_instance_id)});
    old.awaiting_sync.reset();
  }
  node.key() = new_id;
  node.mapped().member_id = new_id;
  g.members.insert(std::move(node));
  if (g.is_leader(old_id)) g.leader = new_id;
  g.static_members[*p.group_instance_id] = new_id;
  if (g.pending_sync.erase(old_id)) g.pending_sync.insert(new_id);

  member_state& m = g.members.at(new_id);
  member_state before = m;
  before.member_id = old_id;
  schedule_heartbeat(g, m, p.now, m.session_timeout_ms);
  update_member(g, m, p);

  switch (g.state) {
    case group_state::stable: {
      // Unless the group's protocol would change, persist the new member id
      // and answer without a rebalance.
      std::string next = select_protocol(g);
      if (g.protocol_name && *g.protocol_name == next) {
        std::map<std::string, bytes> assignment;
        for (auto& [id, mm] : g.members) assignment[id] = mm.assignment;
        pending_write pw;
        pw.what = pending_write::kind::static_join_store;
        pw.group_id = g.id;
        pw.generation = g.generation;
        pw.member_id = new_id;
        pw.old_leader = old_leader;
        pw.old_member = std::move(before);
        add_write(partition_for(g.id), {group_metadata_record(g, assignment, p.now)}, std::move(pw), out);
      } else {
        maybe_prepare_rebalance(g, p.now, out);
      }
      break;
    }
    case group_state::completing_rebalance:
      // The leader may already be assigning with the old member id.
      prepare_rebalance(g, p.now, out);
      break;
    case group_state::preparing_rebalance: break;  // it simply joins this rebalance
    case group_state::empty:
    case group_state::dead:
      GREGOR_ASSERT(false, "group {}: static member {} in state {}", g.id, new_id, state_name(g.state));
  }
}

void group_coordinator::current_member_join(group& g, const join_params& p, output& out) {
  auto fail = [&](error_code e) { out.replies.push_back({p.rid, join_error(p.version, p.member_id, e)}); };
  if (g.state == group_state::dead) return fail(error_code::coordinator_not_available);
  if (!supports_protocols(g, p.protocol_type, *p.protocols)) return fail(error_code::inconsistent_group_protocol);
  if (g.pending_members.count(p.member_id)) {
    // A pending member (never a static one) comes back with its id.
    add_member_and_rebalance(g, p, p.member_id, out);
    return;
  }
  bool instance_not_found = p.group_instance_id && !g.static_members.count(*p.group_instance_id);
  if (static_member_fenced(g, p.group_instance_id, p.member_id)) return fail(error_code::fenced_instance_id);
  if (!g.has_member(p.member_id) || instance_not_found) return fail(error_code::unknown_member_id);

  member_state& m = g.members.at(p.member_id);
  switch (g.state) {
    case group_state::preparing_rebalance: update_member_and_rebalance(g, m, p, out); break;
    case group_state::completing_rebalance:
      if (p.matches(m)) {
        // The member lost its JoinGroup response: answer it again.
        out.replies.push_back({p.rid, join_result(g, m, p.version, g.is_leader(m.member_id))});
      } else {
        update_member_and_rebalance(g, m, p, out);
      }
      break;
    case group_state::stable:
      if (g.is_leader(m.member_id) || !p.matches(m)) {
        // The leader rejoining forces a rebalance (it noticed a metadata
        // change, e.g. more partitions); so does changed member metadata.
        update_member_and_rebalance(g, m, p, out);
      } else {
        out.replies.push_back({p.rid, join_result(g, m, p.version, false)});
      }
      break;
    case group_state::empty:
    case group_state::dead: fail(error_code::unknown_member_id); break;
  }
}

void group_coordinator::add_member_and_rebalance(group& g, const join_params& p, const std::string& member_id,
                                                 output& out) {
  member_state m;
  m.member_id = member_id;
  m.group_instance_id = p.group_instance_id;
  m.client_id = p.client_id;
  m.client_host = p.client_host;
  m.rebalance_timeout_ms = p.rebalance_timeout_ms;
  m.session_timeout_ms = p.session_timeout_ms;
  m.protocol_type = p.protocol_type;
  m.protocols = p.protocol_list();
  m.is_new = true;
  m.awaiting_join = p.rid;
  m.join_version = p.version;
  // New members cannot heartbeat yet; a JoinGroup that never completes is
  // dropped after the new-member timeout.
  m.heartbeat_deadline = p.now + config_.new_member_join_timeout_ms;

  if (g.state == group_state::preparing_rebalance && g.generation == 0) g.new_member_added = true;
  if (g.members.empty()) g.protocol_type = p.protocol_type;
  if (!g.leader) g.leader = member_id;
  if (m.group_instance_id) g.static_members[*m.group_instance_id] = member_id;
  g.pending_members.erase(member_id);
  ++g.awaiting_join_count;
  g.members[member_id] = std::move(m);
  maybe_prepare_rebalance(g, p.now, out);
}

void group_coordinator::update_member(group& g, member_state& m, const join_params& p) {
  m.protocols = p.protocol_list();
  m.rebalance_timeout_ms = p.rebalance_timeout_ms;
  m.session_timeout_ms = p.session_timeout_ms;
  // A JoinGroup still parked for this member has been answered by the caller
  // (the client gave up on it and sent this one).
  if (!m.awaiting_join) ++g.awaiting_join_count;
  m.awaiting_join = p.rid;
  m.join_version = p.version;
}

void group_coordinator::update_member_and_rebalance(group& g, member_state& m, const join_params& p, output& out) {
  if (m.awaiting_join)
    out.replies.push_back({*m.awaiting_join, join_error(m.join_version, m.member_id, error_code::rebalance_in_progress)});
  update_member(g, m, p);
  maybe_prepare_rebalance(g, p.now, out);
}

void group_coordinator::maybe_prepare_rebalance(group& g, int64_t now, output& out) {
  if (g.state == group_state::stable || g.state == group_state::completing_rebalance || g.state == group_state::empty)
    prepare_rebalance(g, now, out);
}

void group_coordinator::prepare_rebalance(group& g, int64_t now, output& out) {
  if (g.state == group_state::completing_rebalance)
    reset_and_propagate_assignment_error(g, error_code::rebalance_in_progress, now, out);
  g.pending_sync.clear();
  g.sync_deadline.reset();
  if (g.state == group_state::empty) {
    g.initial_delay = true;
    g.initial_delay_ms = config_.group_initial_rebalance_delay_ms;
    g.initial_remaining_ms = std::max<int64_t>(g.rebalance_timeout_ms() - config_.group_initial_rebalance_delay_ms, 0);
    g.join_deadline = now + config_.group_initial_rebalance_delay_ms;
  } else {
    g.initial_delay = false;
    g.join_deadline = now + g.rebalance_timeout_ms();
  }
  transition(g, group_state::preparing_rebalance);
  log::get("coordinator")->info("preparing to rebalance group {} in state PreparingRebalance with old generation {}",
                                g.id, g.generation);
}

void group_coordinator::maybe_complete_join(group& g, int64_t now, output& out) {
  if (g.state != group_state::preparing_rebalance || !g.join_deadline) return;
  if (g.initial_delay) {
    if (now < *g.join_deadline) return;
    if (g.new_member_added && g.initial_remaining_ms != 0) {
      // Members keep arriving: wait a little longer, within the rebalance timeout.
      g.new_member_added = false;
      int64_t delay = std::min(config_.group_initial_rebalance_delay_ms, g.initial_remaining_ms);
      g.initial_remaining_ms = std::max<int64_t>(g.initial_remaining_ms - g.initial_delay_ms, 0);
      g.initial_delay_ms = delay;
      g.join_deadline = now + delay;
      return;
    }
    complete_join(g, now, out);
    return;
  }
  if (g.all_members_joined() || now >= *g.join_deadline) complete_join(g, now, out);
}

bool group_coordinator::maybe_elect_new_joined_leader(group& g) {
  if (!g.leader) return false;
  auto it = g.members.find(*g.leader);
  if (it != g.members.end() && it->second.awaiting_join) return true;
  for (auto& [id, m] : g.members) {
    if (m.awaiting_join) {
      g.leader = id;
      return true;
    }
  }
  return false;
}

void group_coordinator::complete_join(group& g, int64_t now, output& out) {
  g.join_deadline.reset();
  g.initial_delay = false;
  // Dynamic members that did not rejoin in time are out.
  std::vector<std::string> gone;
  for (auto& [id, m] : g.members)
    if (!m.awaiting_join && !m.group_instance_id) gone.push_back(id);
  for (auto& id : gone) {
    log::get("coordinator")->info("group {}: removing member {} which did not rejoin", g.id, id);
    remove_member(g, id, out);
  }
  if (g.state == group_state::dead) return;
  if (!maybe_elect_new_joined_leader(g) && !g.members.empty()) {
    // Nobody rejoined: wait another rebalance timeout for session timeouts to clear the group.
    g.join_deadline = now + g.rebalance_timeout_ms();
    return;
  }
  init_next_generation(g, now);
  if (g.state == group_state::empty) {
    log::get("coordinator")->info("group {} with generation {} is now empty", g.id, g.generation);
    pending_write pw;
    pw.group_id = g.id;
    add_write(partition_for(g.id), {group_metadata_record(g, {}, now)}, std::move(pw), out);
    return;
  }
  log::get("coordinator")->info("stabilized group {} generation {} ({}) with {} members", g.id, g.generation,
                                g.protocol_name.value_or(""), g.members.size());
  for (auto& [id, m] : g.members) {
    invoke_join(g, m, join_result(g, m, m.join_version, g.is_leader(id)), out);
    schedule_heartbeat(g, m, now, m.session_timeout_ms);
    m.is_new = false;
    g.pending_sync.insert(id);
  }
  g.sync_deadline = now + g.rebalance_timeout_ms();
}

void group_coordinator::init_next_generation(group& g, int64_t now) {
  ++g.generation;
  if (!g.members.empty()) {
    g.protocol_name = select_protocol(g);
    g.subscribed_topics = compute_subscribed_topics(g);
    transition(g, group_state::completing_rebalance);
  } else {
    g.protocol_name.reset();
    g.subscribed_topics = compute_subscribed_topics(g);
    transition(g, group_state::empty);
  }
  g.state_timestamp = now;
  g.pending_sync.clear();
  g.sync_deadline.reset();
}

std::string group_coordinator::select_protocol(const group& g) const {
  if (g.members.empty()) return "";
  // Candidates: protocols every member supports, in the first member's order.
  std::vector<std::string> candidates;
  const member_state& first = g.members.begin()->second;
  for (auto& [name, _] : first.protocols) {
    bool all = true;
    for (auto& [__, m] : g.members)
      if (!m.metadata(name)) all = false;
    if (all && std::find(candidates.begin(), candidates.end(), name) == candidates.end()) candidates.push_back(name);
  }
  if (candidates.empty()) return "";
  // Each member votes for its most preferred candidate.
  std::map<std::string, int> votes;
  for (auto& [_, m] : g.members) {
    for (auto& [name, __] : m.protocols) {
      if (std::find(candidates.begin(), candidates.end(), name) != candidates.end()) {
        ++votes[name];
        break;
      }
    }
  }
  std::string best = candidates.front();
  for (auto& c : candidates)
    if (votes[c] > votes[best]) best = c;
  return best;
}

std::optional<std::set<std::string>> group_coordinator::compute_subscribed_topics(const group& g) const {
  if (!g.protocol_type || *g.protocol_type != consumer_protocol_type) return std::nullopt;
  if (g.members.empty()) return std::set<std::string>{};
  if (!g.protocol_name) return std::nullopt;
  std::set<std::string> all;
  for (auto& [_, m] : g.members) {
    auto* md = m.metadata(*g.protocol_name);
    if (!md) return std::nullopt;
    auto topics = subscription_topics(*md);
    if (!topics) return std::nullopt;
    all.insert(topics->begin(), topics->end());
  }
  return all;
}

protocol::join_group_response group_coordinator::join_result(const group& g, const member_state& m, int16_t version,
                                                             bool with_members) const {
  protocol::join_group_response r;
  r.generation_id = g.generation;
  r.protocol_type = g.protocol_type;
  r.protocol_name = g.protocol_name;
  if (version < 7 && !r.protocol_name) r.protocol_name = "";
  r.leader = g.leader.value_or("");
  r.member_id = m.member_id;
  if (with_members && g.protocol_name) {
    for (auto& [id, mm] : g.members) {
      protocol::join_group_response::join_group_response_member x;
      x.member_id = id;
      x.group_instance_id = mm.group_instance_id;
      if (auto* md = mm.metadata(*g.protocol_name)) x.metadata = *md;
      r.members.push_back(std::move(x));
    }
  }
  return r;
}

void group_coordinator::invoke_join(group& g, member_state& m, protocol::join_group_response resp, output& out) {
  if (!m.awaiting_join) return;
  out.replies.push_back({*m.awaiting_join, std::move(resp)});
  m.awaiting_join.reset();
  --g.awaiting_join_count;
}

void group_coordinator::invoke_sync(member_state& m, protocol::sync_group_response resp, output& out) {
  if (!m.awaiting_sync) return;
  out.replies.push_back({*m.awaiting_sync, std::move(resp)});
  m.awaiting_sync.reset();
}

// ---------------------------------------------------------------- members leaving

void group_coordinator::remove_member(group& g, const std::string& member_id, output& out) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  member_state& m = it->second;
  if (m.awaiting_join) {
    --g.awaiting_join_count;
    m.awaiting_join.reset();
  }
  // Nothing may wait forever on a member that is gone.
  invoke_sync(m, sync_error(error_code::unknown_member_id), out);
  if (m.group_instance_id) {
    auto s = g.static_members.find(*m.group_instance_id);
    if (s != g.static_members.end() && s->second == member_id) g.static_members.erase(s);
  }
  g.members.erase(it);
  g.pending_sync.erase(member_id);
  if (g.is_leader(member_id)) {
    if (g.members.empty()) g.leader.reset();
    else g.leader = g.members.begin()->first;
  }
}

void group_coordinator::remove_member_and_update_group(group& g, const std::string& member_id, int64_t now,
                                                       output& out) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  // A new member may be parked in JoinGroup: tell it to start over.
  invoke_join(g, it->second, join_error(it->second.join_version, "", error_code::unknown_member_id), out);
  remove_member(g, member_id, out);
  switch (g.state) {
    case group_state::dead:
    case group_state::empty: break;
    case group_state::stable:
    case group_state::completing_rebalance: maybe_prepare_rebalance(g, now, out); break;
    case group_state::preparing_rebalance: break;  // completion is checked by the caller
  }
}

void group_coordinator::remove_pending_member_and_update_group(group& g, const std::string& member_id) {
  g.pending_members.erase(member_id);
}

// ---------------------------------------------------------------- SyncGroup

output group_coordinator::sync_group(uint64_t rid, int16_t version, const protocol::sync_group_request& req,
                                     int64_t now) {
  output out;
  auto fail = [&](error_code e) {
    out.replies.push_back({rid, sync_error(e)});
    return out;
  };
  if (auto e = validate_status(req.group_id, false)) {
    // The rebalance state was lost with the load: have the member rejoin.
    return fail(*e == error_code::coordinator_load_in_progress ? error_code::rebalance_in_progress : *e);
  }
  group* g = find_group(req.group_id);
  if (!g) return fail(error_code::unknown_member_id);
  auto instance_id = version >= 3 ? req.group_instance_id : std::nullopt;
  if (g->state == group_state::dead) return fail(error_code::coordinator_not_available);
  if (static_member_fenced(*g, instance_id, req.member_id)) return fail(error_code::fenced_instance_id);
  if (!g->has_member(req.member_id)) return fail(error_code::unknown_member_id);
  if (req.generation_id != g->generation) return fail(error_code::illegal_generation);
  if (version >= 5 && req.protocol_type && (!g->protocol_type || *g->protocol_type != *req.protocol_type))
    return fail(error_code::inconsistent_group_protocol);
  if (version >= 5 && req.protocol_name && (!g->protocol_name || *g->protocol_name != *req.protocol_name))
    return fail(error_code::inconsistent_group_protocol);

  member_state& m = g->members.at(req.member_id);
  switch (g->state) {
    case group_state::empty: return fail(error_code::unknown_member_id);
    case group_state::preparing_rebalance: return fail(error_code::rebalance_in_progress);
    case group_state::completing_rebalance: {
      if (m.awaiting_sync) out.replies.push_back({*m.awaiting_sync, sync_error(error_code::rebalance_in_progress)});
      m.awaiting_sync = rid;
      g->pending_sync.erase(req.member_id);
      if (g->is_leader(req.member_id)) {
        std::map<std::string, bytes> assignment;
        for (auto& a : req.assignments) assignment[a.member_id] = a.assignment;
        for (auto& [id, _] : g->members) assignment.try_emplace(id);  // missing members get an empty assignment
        log::get("coordinator")->info("group {}: assignment received from leader {} for generation {}", g->id,
                                      req.member_id, g->generation);
        pending_write pw;
        pw.what = pending_write::kind::sync_store;
        pw.group_id = g->id;
        pw.generation = g->generation;
        auto rec = group_metadata_record(*g, assignment, now);
        pw.assignment = std::move(assignment);
        add_write(partition_for(g->id), {std::move(rec)}, std::move(pw), out);
      }
      return out;
    }
    case group_state::stable: {
      g->pending_sync.erase(req.member_id);
      protocol::sync_group_response r;
      r.protocol_type = g->protocol_type;
      r.protocol_name = g->protocol_name;
      r.assignment = m.assignment;
      out.replies.push_back({rid, std::move(r)});
      schedule_heartbeat(*g, m, now, m.session_timeout_ms);
      return out;
    }
    case group_state::dead: break;
  }
  return fail(error_code::coordinator_not_available);
}

void group_coordinator::reset_and_propagate_assignment_error(group& g, error_code e, int64_t now, output& out) {
  GREGOR_ASSERT(g.state == group_state::completing_rebalance, "group {} in state {}", g.id, state_name(g.state));
  for (auto& [_, m] : g.members) m.assignment.clear();
  propagate_assignment(g, e, now, out);
}

void group_coordinator::propagate_assignment(group& g, error_code e, int64_t now, output& out) {
  for (auto& [_, m] : g.members) {
    if (!m.awaiting_sync) continue;
    protocol::sync_group_response r;
    r.error_code = ec(e);
    if (e == error_code::none) {
      r.protocol_type = g.protocol_type;
      r.protocol_name = g.protocol_name;
      r.assignment = m.assignment;
    }
    invoke_sync(m, std::move(r), out);
    // Session expiry is suspended while a member waits; it restarts now.
    schedule_heartbeat(g, m, now, m.session_timeout_ms);
  }
}

void group_coordinator::on_expire_pending_sync(group& g, int64_t now, output& out) {
  g.sync_deadline.reset();
  if (g.state != group_state::completing_rebalance && g.state != group_state::stable) return;
  if (g.pending_sync.empty()) return;
  std::vector<std::string> gone(g.pending_sync.begin(), g.pending_sync.end());
  for (auto& id : gone) {
    log::get("coordinator")->info("group {}: removing member {} which did not send SyncGroup in time", g.id, id);
    remove_member(g, id, out);
  }
  prepare_rebalance(g, now, out);
}

// ---------------------------------------------------------------- Heartbeat

output group_coordinator::heartbeat(uint64_t rid, int16_t version, const protocol::heartbeat_request& req,
                                    int64_t now) {
  output out;
  auto answer = [&](error_code e) {
    protocol::heartbeat_response r;
    r.error_code = ec(e);
    out.replies.push_back({rid, r});
    return out;
  };
  if (auto e = validate_status(req.group_id, false))
    return answer(*e == error_code::coordinator_load_in_progress ? error_code::none : *e);
  group* g = find_group(req.group_id);
  if (!g) return answer(error_code::unknown_member_id);
  auto instance_id = version >= 3 ? req.group_instance_id : std::nullopt;
  if (g->state == group_state::dead) return answer(error_code::coordinator_not_available);
  if (static_member_fenced(*g, instance_id, req.member_id)) return answer(error_code::fenced_instance_id);
  if (!g->has_member(req.member_id)) return answer(error_code::unknown_member_id);
  if (req.generation_id != g->generation) return answer(error_code::illegal_generation);
  member_state& m = g->members.at(req.member_id);
  switch (g->state) {
    case group_state::empty: return answer(error_code::unknown_member_id);
    case group_state::completing_rebalance:
    case group_state::stable: schedule_heartbeat(*g, m, now, m.session_timeout_ms); return answer(error_code::none);
    case group_state::preparing_rebalance:
      schedule_heartbeat(*g, m, now, m.session_timeout_ms);
      return answer(error_code::rebalance_in_progress);
    case group_state::dead: break;
  }
  return answer(error_code::coordinator_not_available);
}

// ---------------------------------------------------------------- LeaveGroup

output group_coordinator::leave_group(uint64_t rid, int16_t version, const protocol::leave_group_request& req,
                                      int64_t now) {
  output out;
  protocol::leave_group_response r;
  std::vector<protocol::leave_group_request::member_identity> leaving;
  if (version < 3) {
    protocol::leave_group_request::member_identity mi;
    mi.member_id = req.member_id;
    leaving.push_back(std::move(mi));
  } else {
    leaving = req.members;
  }
  auto finish = [&]() {
    if (version < 3) {
      // v0-2 carry one member: its error is the request's.
      if (r.error_code == 0)
        for (auto& m : r.members)
          if (m.error_code != 0) {
            r.error_code = m.error_code;
            break;
          }
      r.members.clear();
    }
    out.replies.push_back({rid, std::move(r)});
    return out;
  };
  auto member_result = [&](const protocol::leave_group_request::member_identity& mi, error_code e) {
    protocol::leave_group_response::member_response mr;
    mr.member_id = mi.member_id;
    mr.group_instance_id = mi.group_instance_id;
    mr.error_code = ec(e);
    r.members.push_back(std::move(mr));
  };
  if (auto e = validate_status(req.group_id, false)) {
    r.error_code = ec(*e);
    return finish();
  }
  group* g = find_group(req.group_id);
  if (!g) {
    for (auto& mi : leaving) member_result(mi, error_code::unknown_member_id);
    return finish();
  }
  if (g->state == group_state::dead) {
    r.error_code = ec(error_code::coordinator_not_available);
    return finish();
  }
  for (auto& mi : leaving) {
    if (mi.member_id.empty()) {
      // Administrative removal by group.instance.id.
      std::optional<std::string> current;
      if (mi.group_instance_id) {
        auto it = g->static_members.find(*mi.group_instance_id);
        if (it != g->static_members.end()) current = it->second;
      }
      if (current) {
        remove_member_and_update_group(*g, *current, now, out);
        member_result(mi, error_code::none);
      } else {
        member_result(mi, error_code::unknown_member_id);
      }
    } else if (g->pending_members.count(mi.member_id)) {
      remove_pending_member_and_update_group(*g, mi.member_id);
      member_result(mi, error_code::none);
    } else if (static_member_fenced(*g, mi.group_instance_id, mi.member_id)) {
      member_result(mi, error_code::fenced_instance_id);
    } else if (g->has_member(mi.member_id)) {
      log::get("coordinator")->info("group {}: member {} left", g->id, mi.member_id);
      remove_member_and_update_group(*g, mi.member_id, now, out);
      member_result(mi, error_code::none);
    } else {
      member_result(mi, error_code::unknown_member_id);
    }
  }
  maybe_complete_join(*g, now, out);
  return finish();
}

// ---------------------------------------------------------------- OffsetCommit

namespace {

// An OffsetCommit or TxnOffsetCommit response naming each partition of the
// request, errors to fill in.
template <class Resp, class Req>
std::shared_ptr<Resp> commit_response_for(const Req& req) {
  auto resp = std::make_shared<Resp>();
  for (auto& t : req.topics) {
    auto& rt = resp->topics.emplace_back();
    rt.name = t.name;
    for (auto& p : t.partitions) rt.partitions.emplace_back().partition_index = p.partition_index;
  }
  return resp;
}

// Every partition of the response gets `e`; it is the reply.
template <class Resp>
output& fail_commit(uint64_t rid, Resp& resp, error_code e, output& out) {
  for (auto& t : resp.topics)
    for (auto& p : t.partitions) p.error_code = ec(e);
  out.replies.push_back({rid, std::move(resp)});
  return out;
}

// Calls fn(topic slot, partition slot, request partition, topic-partition,
// metadata) for each partition of an offset commit that `check` accepts;
// the others get its error in the response.
template <class Req, class Resp, class Check, class Fn>
void for_each_commit(const Req& req, Resp& resp, const Check& check, Fn fn) {
  for (size_t ti = 0; ti < req.topics.size(); ++ti) {
    auto& t = req.topics[ti];
    for (size_t pi = 0; pi < t.partitions.size(); ++pi) {
      auto& p = t.partitions[pi];
      std::string md = p.committed_metadata.value_or("");
      if (auto e = check(t.name, p.partition_index, md)) {
        resp.topics[ti].partitions[pi].error_code = ec(*e);
        continue;
      }
      fn(ti, pi, p, topic_partition{t.name, p.partition_index}, std::move(md));
    }
  }
}

}  // namespace

std::function<std::optional<error_code>(const std::string&, int32_t, const std::string&)>
group_coordinator::checker(const std::function<bool(const std::string&, int32_t)>& partition_exists) const {
  return [this, &partition_exists](const std::string& topic, int32_t partition,
                                   const std::string& metadata) -> std::optional<error_code> {
    if (!partition_exists(topic, partition)) return error_code::unknown_topic_or_partition;
    if (static_cast<int64_t>(metadata.size()) > config_.offset_metadata_max_bytes)
      return error_code::offset_metadata_too_large;
    return std::nullopt;
  };
}

output group_coordinator::offset_commit(uint64_t rid, int16_t version, const protocol::offset_commit_request& req,
                                        const std::function<bool(const std::string&, int32_t)>& partition_exists,
                                        int64_t now) {
  output out;
  auto resp = commit_response_for<protocol::offset_commit_response>(req);
  auto fail_all = [&](error_code e) { return fail_commit(rid, *resp, e, out); };
  if (auto e = validate_status(req.group_id, true)) return fail_all(*e);

  int32_t generation = version >= 1 ? req.generation_id_or_member_epoch : -1;
  std::string member_id = version >= 1 ? req.member_id : std::string();
  auto instance_id = version >= 7 ? req.group_instance_id : std::nullopt;

  group* g = find_group(req.group_id);
  if (!g) {
    // Without group management (generation < 0) a commit creates the group;
    // otherwise it comes from a generation that no longer exists.
    if (generation >= 0) return fail_all(error_code::illegal_generation);
    g = &create_group(req.group_id);
  }
  // validateOffsetCommit
  if (g->state == group_state::dead) return fail_all(error_code::coordinator_not_available);
  if (generation >= 0 || !member_id.empty() || instance_id) {
    if (instance_id) {
      auto it = g->static_members.find(*instance_id);
      if (it == g->static_members.end()) return fail_all(error_code::unknown_member_id);
      if (it->second != member_id) return fail_all(error_code::fenced_instance_id);
    }
    if (!g->has_member(member_id)) return fail_all(error_code::unknown_member_id);
    if (generation != g->generation) return fail_all(error_code::illegal_generation);
  } else if (g->state != group_state::empty) {
    // A non-empty group accepts commits from its members only.
    return fail_all(error_code::unknown_member_id);
  }
  switch (g->state) {
    case group_state::completing_rebalance: return fail_all(error_code::rebalance_in_progress);
    case group_state::stable:
    case group_state::preparing_rebalance: {
      auto& m = g->members.at(member_id);
      schedule_heartbeat(*g, m, now, m.session_timeout_ms);
      break;
    }
    default: break;
  }

  pending_write pw;
  pw.what = pending_write::kind::commit;
  pw.group_id = g->id;
  pw.request = rid;
  pw.version = version;
  pw.commit_response = resp;
  std::vector<offsets_record> records;
  for_each_commit(req, *resp, checker(partition_exists), [&](size_t ti, size_t pi, auto& p, topic_partition tp,
                                                             std::string md) {
    committed_offset o;
    o.offset = p.committed_offset;
    o.leader_epoch = version >= 6 ? p.committed_leader_epoch : -1;
    o.metadata = std::move(md);
    o.commit_timestamp = (version == 1 && p.commit_timestamp != -1) ? p.commit_timestamp : now;
    if (version >= 2 && version <= 4 && req.retention_time_ms != -1) o.expire_timestamp = now + req.retention_time_ms;
    records.push_back(offsets_record{offset_key(g->id, tp), offset_value(o)});
    ++g->pending_commits[tp];
    pw.committed.emplace_back(ti, pi, tp, std::move(o));
  });
  if (records.empty()) {
    out.replies.push_back({rid, std::move(*resp)});
    return out;
  }
  add_write(partition_for(g->id), std::move(records), std::move(pw), out);
  return out;
}

// ---------------------------------------------------------------- TxnOffsetCommit

output group_coordinator::txn_offset_commit(uint64_t rid, int16_t version, const protocol::txn_offset_commit_request& req,
                                            const std::function<bool(const std::string&, int32_t)>& partition_exists,
                                            int64_t now) {
  output out;
  auto resp = commit_response_for<protocol::txn_offset_commit_response>(req);
  auto fail_all = [&](error_code e) { return fail_commit(rid, *resp, e, out); };
  // Unlike OffsetCommit, an empty group id is INVALID_GROUP_ID (Kafka's isValidGroupId).
  if (auto e = validate_status(req.group_id, false)) return fail_all(*e);

  int32_t generation = version >= 3 ? req.generation_id : -1;
  std::string member_id = version >= 3 ? req.member_id : std::string();
  auto instance_id = version >= 3 ? req.group_instance_id : std::nullopt;
  // A transactional commit to an unknown group creates it (Empty), whatever the generation.
  group* g = find_group(req.group_id);
  if (!g) g = &create_group(req.group_id);
  // validateOffsetCommit with isTransactional: no state check, an Empty-only
  // rule does not apply, and each field is checked only when given.
  if (g->state == group_state::dead) return fail_all(error_code::coordinator_not_available);
  if (generation >= 0 || !member_id.empty() || instance_id) {
    if (static_member_fenced(*g, instance_id, member_id)) return fail_all(error_code::fenced_instance_id);
    if (!member_id.empty() && !g->has_member(member_id)) return fail_all(error_code::unknown_member_id);
    if (generation >= 0 && generation != g->generation) return fail_all(error_code::illegal_generation);
  }

  pending_write pw;
  pw.what = pending_write::kind::txn_commit;
  pw.group_id = g->id;
  pw.request = rid;
  pw.version = version;
  pw.txn_response = resp;
  pw.producer_id = req.producer_id;
  std::vector<offsets_record> records;
  for_each_commit(req, *resp, checker(partition_exists), [&](size_t ti, size_t pi, auto& p, topic_partition tp,
                                                             std::string md) {
    committed_offset o;
    o.offset = p.committed_offset;
    o.leader_epoch = version >= 2 ? p.committed_leader_epoch : -1;
    o.metadata = std::move(md);
    o.commit_timestamp = now;
    records.push_back(offsets_record{offset_key(g->id, tp), offset_value(o)});
    // prepareTxnOffsetCommit: pending (not yet appended) at once.
    g->pending_txn_offsets[req.producer_id][tp] = o;
    pw.committed.emplace_back(ti, pi, tp, std::move(o));
  });
  if (records.empty()) {
    out.replies.push_back({rid, std::move(*resp)});
    return out;
  }
  producer_groups_[req.producer_id].insert(g->id);
  uint64_t id = add_write(partition_for(g->id), std::move(records), std::move(pw), out);
  out.writes.back().producer_id = req.producer_id;
  out.writes.back().producer_epoch = req.producer_epoch;
  (void)id;
  return out;
}

output group_coordinator::on_txn_marker(int32_t partition, int64_t producer_id, bool committed, int64_t) {
  output out;
  if (not_owned_.count(partition)) return out;
  if (loading(partition)) {
    // The load reads the marker itself (or has already): applying it to what
    // was read so far is the same.
    replay_marker(partition, producer_id, committed);
    return out;
  }
  auto pg = producer_groups_.find(producer_id);
  if (pg == producer_groups_.end()) return out;
  for (auto it = pg->second.begin(); it != pg->second.end();) {
    if (partition_for(*it) != partition) {
      ++it;
      continue;
    }
    group* g = find_group(*it);
    it = pg->second.erase(it);
    if (!g || g->state == group_state::dead) continue;
    auto po = g->pending_txn_offsets.find(producer_id);
    if (po == g->pending_txn_offsets.end()) continue;
    auto offs = std::move(po->second);
    g->pending_txn_offsets.erase(po);
    if (!committed) continue;
    // completePendingTxnOffsetCommit: only over offsets written before.
    for (auto& [tp, o] : offs) {
      if (o.log_offset < 0) {
        log::get("coordinator")->warn("group {}: a COMMIT of producer {} came before its offset of {}-{} was written; "
                                      "dropping that offset", g->id, producer_id, tp.first, tp.second);
        continue;
      }
      auto cur = g->offsets.find(tp);
      if (cur == g->offsets.end() || cur->second.log_offset < o.log_offset) g->offsets[tp] = o;
    }
  }
  if (pg->second.empty()) producer_groups_.erase(pg);
  return out;
}

// ---------------------------------------------------------------- OffsetFetch

output group_coordinator::offset_fetch(uint64_t rid, int16_t version, const protocol::offset_fetch_request& req,
                                       int64_t) {
  output out;
  protocol::offset_fetch_response r;
  using rt = protocol::offset_fetch_response;

  // One group's answer, in the v8 layout; converted below for older versions.
  auto answer_group = [&](const std::string& group_id, const auto* topics) {
    rt::offset_fetch_response_group gr;
    gr.group_id = group_id;
    if (auto e = validate_status(group_id, true)) {
      gr.error_code = ec(*e);
      if (version < 2 && topics) {
        for (auto& t : *topics) {
          auto& tr = gr.topics.emplace_back();
          tr.name = t.name;
          for (auto p : t.partition_indexes) {
            auto& pr = tr.partitions.emplace_back();
            pr.partition_index = p;
            pr.committed_offset = -1;
            pr.metadata = "";
            pr.error_code = ec(*e);
          }
        }
      }
      return gr;
    }
    const group* g = find(group_id);
    if (g && g->state == group_state::dead) g = nullptr;
    auto fill = [&](rt::offset_fetch_response_partitions& pr, const std::string& topic, int32_t partition,
                    bool check_stable) {
      pr.partition_index = partition;
      pr.committed_offset = -1;
      pr.committed_leader_epoch = -1;
      pr.metadata = "";
      if (!g) return;
      // v7+ require_stable: a partition with a commit in flight or a
      // transaction's pending offset is UNSTABLE_OFFSET_COMMIT (the client
      // retries); without it the last committed offset is returned.
      if (check_stable && version >= 7 && req.require_stable && g->has_pending_offsets({topic, partition})) {
        pr.error_code = ec(error_code::unstable_offset_commit);
        return;
      }
      auto it = g->offsets.find({topic, partition});
      if (it == g->offsets.end()) return;
      pr.committed_offset = it->second.offset;
      pr.committed_leader_epoch = it->second.leader_epoch;
      pr.metadata = it->second.metadata;
    };
    if (topics) {
      for (auto& t : *topics) {
        auto& tr = gr.topics.emplace_back();
        tr.name = t.name;
        for (auto p : t.partition_indexes) fill(tr.partitions.emplace_back(), t.name, p, true);
      }
    } else if (g) {
      for (auto& [tp, _] : g->offsets) {
        if (gr.topics.empty() || gr.topics.back().name != tp.first) gr.topics.emplace_back().name = tp.first;
        fill(gr.topics.back().partitions.emplace_back(), tp.first, tp.second, false);
      }
    }
    return gr;
  };

  if (version >= 8) {
    for (auto& rg : req.groups) r.groups.push_back(answer_group(rg.group_id, rg.topics ? &*rg.topics : nullptr));
  } else {
    auto gr = answer_group(req.group_id, req.topics ? &*req.topics : nullptr);
    if (version >= 2) r.error_code = gr.error_code;
    for (auto& t : gr.topics) {
      auto& tr = r.topics.emplace_back();
      tr.name = t.name;
      for (auto& p : t.partitions) {
        auto& pr = tr.partitions.emplace_back();
        pr.partition_index = p.partition_index;
        pr.committed_offset = p.committed_offset;
        pr.committed_leader_epoch = p.committed_leader_epoch;
        pr.metadata = p.metadata;
        pr.error_code = p.error_code;
      }
    }
  }
  out.replies.push_back({rid, std::move(r)});
  return out;
}

// ---------------------------------------------------------------- Describe / List

output group_coordinator::describe_groups(uint64_t rid, int16_t version, const protocol::describe_groups_request& req,
                                          int64_t) {
  output out;
  protocol::describe_groups_response r;
  for (auto& id : req.groups) {
    auto& d = r.groups.emplace_back();
    d.group_id = id;
    if (version >= 3 && req.include_authorized_operations) d.authorized_operations = (1 << 3) | (1 << 6) | (1 << 8);
    if (auto e = validate_status(id, true)) {
      d.error_code = ec(*e);
      continue;
    }
    const group* g = find(id);
    if (!g) {
      d.group_state = state_name(group_state::dead);
      continue;
    }
    d.group_state = state_name(g->state);
    d.protocol_type = g->protocol_type.value_or("");
    bool stable = g->state == group_state::stable;
    d.protocol_data = stable ? g->protocol_name.value_or("") : "";
    for (auto& [mid, m] : g->members) {
      auto& dm = d.members.emplace_back();
      dm.member_id = mid;
      dm.group_instance_id = m.group_instance_id;
      dm.client_id = m.client_id;
      dm.client_host = m.client_host;
      if (stable && g->protocol_name) {
        if (auto* md = m.metadata(*g->protocol_name)) dm.member_metadata = *md;
        dm.member_assignment = m.assignment;
      }
    }
  }
  out.replies.push_back({rid, std::move(r)});
  return out;
}

output group_coordinator::list_groups(uint64_t rid, int16_t version, const protocol::list_groups_request& req,
                                      int64_t) {
  output out;
  protocol::list_groups_response r;
  if (any_loading()) r.error_code = ec(error_code::coordinator_load_in_progress);
  for (auto& [id, g] : groups_) {
    if (g->state == group_state::dead || loading(partition_for(id))) continue;
    const char* st = state_name(g->state);
    if (version >= 4 && !req.states_filter.empty()) {
      bool match = false;
      for (auto& s : req.states_filter) match = match || iequals(s, st);
      if (!match) continue;
    }
    auto& lg = r.groups.emplace_back();
    lg.group_id = id;
    lg.protocol_type = g->protocol_type.value_or("");
    lg.group_state = st;
  }
  out.replies.push_back({rid, std::move(r)});
  return out;
}

// ---------------------------------------------------------------- deletion

output group_coordinator::delete_groups(uint64_t rid, int16_t, const protocol::delete_groups_request& req,
                                        int64_t now) {
  output out;
  protocol::delete_groups_response r;
  auto done = std::make_shared<pending_write::barrier>();
  done->request = rid;
  std::vector<std::pair<int32_t, std::vector<offsets_record>>> writes;
  for (auto& id : req.groups_names) {
    auto& res = r.results.emplace_back();
    res.group_id = id;
    if (auto e = validate_status(id, true)) {
      res.error_code = ec(*e);
      continue;
    }
    group* g = find_group(id);
    if (!g || g->state == group_state::dead) {
      res.error_code = ec(error_code::group_id_not_found);
      continue;
    }
    if (g->state != group_state::empty) {
      res.error_code = ec(error_code::non_empty_group);
      continue;
    }
    transition(*g, group_state::dead);
    std::set<topic_partition> gone;
    for (auto& [tp, _] : g->offsets) gone.insert(tp);
    for (auto& [_, offs] : g->pending_txn_offsets)
      for (auto& [tp, __] : offs) gone.insert(tp);
    drop_pending_txn_offsets(*g, nullptr);
    std::vector<offsets_record> tombstones;
    for (auto& tp : gone) tombstones.push_back({offset_key(id, tp), std::nullopt});
    if (g->generation > 0) tombstones.push_back({group_key(id), std::nullopt});
    // A group used only for offsets (generation 0) may never have had a metadata record.
    if (tombstones.empty()) tombstones.push_back({group_key(id), std::nullopt});
    writes.emplace_back(partition_for(id), std::move(tombstones));
    log::get("coordinator")->info("deleted group {}", id);
    remove_group(id);
  }
  if (writes.empty()) {
    out.replies.push_back({rid, std::move(r)});
    return out;
  }
  done->body = std::move(r);
  done->outstanding = static_cast<int>(writes.size());
  for (auto& [partition, recs] : writes) {
    pending_write pw;
    pw.what = pending_write::kind::reply_when_done;
    pw.done = done;
    add_write(partition, std::move(recs), std::move(pw), out);
  }
  (void)now;
  return out;
}

output group_coordinator::offset_delete(uint64_t rid, int16_t, const protocol::offset_delete_request& req,
                                        int64_t) {
  output out;
  protocol::offset_delete_response r;
  auto finish = [&]() {
    out.replies.push_back({rid, std::move(r)});
    return out;
  };
  if (auto e = validate_status(req.group_id, false)) {
    r.error_code = ec(*e);
    return finish();
  }
  group* g = find_group(req.group_id);
  if (!g || g->state == group_state::dead) {
    r.error_code = ec(error_code::group_id_not_found);
    return finish();
  }
  bool consumer_active = g->state != group_state::empty && g->protocol_type &&
                         *g->protocol_type == consumer_protocol_type;
  if (g->state != group_state::empty && !consumer_active) {
    r.error_code = ec(error_code::non_empty_group);
    return finish();
  }
  std::vector<offsets_record> tombstones;
  for (auto& t : req.topics) {
    auto& rt = r.topics.emplace_back();
    rt.name = t.name;
    bool subscribed = consumer_active && g->subscribed_topics && g->subscribed_topics->count(t.name);
    for (auto& p : t.partitions) {
      auto& rp = rt.partitions.emplace_back();
      rp.partition_index = p.partition_index;
      if (subscribed) {
        rp.error_code = ec(error_code::group_subscribed_to_topic);
        continue;
      }
      topic_partition tp{t.name, p.partition_index};
      // Transactional offsets not committed yet go too: a COMMIT marker
      // arriving later must not bring the offset back.
      bool pending = drop_pending_txn_offsets(*g, &tp);
      if (g->offsets.erase(tp) || pending) tombstones.push_back({offset_key(g->id, tp), std::nullopt});
    }
  }
  if (tombstones.empty()) return finish();
  auto done = std::make_shared<pending_write::barrier>();
  done->request = rid;
  done->body = std::move(r);
  done->outstanding = 1;
  pending_write pw;
  pw.what = pending_write::kind::reply_when_done;
  pw.done = done;
  add_write(partition_for(g->id), std::move(tombstones), std::move(pw), out);
  return out;
}

// ---------------------------------------------------------------- writes done

output group_coordinator::write_completed(uint64_t id, error_code error, int64_t now, int64_t base_offset) {
  output out;
  auto it = pending_writes_.find(id);
  if (it == pending_writes_.end()) return out;
  auto pw = it->second;
  pending_writes_.erase(it);
  group* g = pw->group_id.empty() ? nullptr : find_group(pw->group_id);
  switch (pw->what) {
    case pending_write::kind::plain:
      if (error != error_code::none)
        log::get("coordinator")->warn("failed to write metadata of group {}: error {}", pw->group_id,
                                      static_cast<int>(error));
      break;
    case pending_write::kind::commit: {
      auto e = commit_error(error);
      for (auto& [ti, pi, tp, o] : pw->committed) {
        pw->commit_response->topics[ti].partitions[pi].error_code = ec(e);
        if (g) {
          auto pc = g->pending_commits.find(tp);
          if (pc != g->pending_commits.end() && --pc->second <= 0) g->pending_commits.erase(pc);
          if (e == error_code::none && g->state != group_state::dead) {
            // onOffsetCommitAppend: unless a transaction's offset written
            // later has been committed meanwhile.
            auto cur = g->offsets.find(tp);
            if (cur == g->offsets.end() || base_offset < 0 || cur->second.log_offset <= base_offset) {
              o.log_offset = base_offset;
              g->offsets[tp] = o;
            }
          }
        }
      }
      out.replies.push_back({pw->request, std::move(*pw->commit_response)});
      break;
    }
    case pending_write::kind::txn_commit: {
      auto e = commit_error(error);
      for (auto& [ti, pi, tp, o] : pw->committed) {
        pw->txn_response->topics[ti].partitions[pi].error_code = ec(e);
        if (!g) continue;
        auto po = g->pending_txn_offsets.find(pw->producer_id);
        if (po == g->pending_txn_offsets.end()) continue;
        auto it = po->second.find(tp);
        // Only the offset this write carried (a later commit of the same
        // transaction may have replaced it).
        if (it == po->second.end() || it->second.log_offset >= 0 || it->second.offset != o.offset ||
            it->second.metadata != o.metadata || it->second.commit_timestamp != o.commit_timestamp)
          continue;
        // onTxnOffsetCommitAppend (an unknown position counts as the oldest).
        if (e == error_code::none) it->second.log_offset = std::max<int64_t>(base_offset, 0);
        else po->second.erase(it);                                       // failPendingTxnOffsetCommit
        if (po->second.empty()) g->pending_txn_offsets.erase(po);
      }
      out.replies.push_back({pw->request, std::move(*pw->txn_response)});
      break;
    }
    case pending_write::kind::sync_store:
      if (!g || g->state != group_state::completing_rebalance || g->generation != pw->generation) break;
      if (error != error_code::none) {
        reset_and_propagate_assignment_error(*g, store_group_error(error), now, out);
        maybe_prepare_rebalance(*g, now, out);
      } else {
        for (auto& [mid, m] : g->members) {
          auto a = pw->assignment.find(mid);
          m.assignment = a == pw->assignment.end() ? bytes{} : a->second;
        }
        propagate_assignment(*g, error_code::none, now, out);
        transition(*g, group_state::stable);
      }
      break;
    case pending_write::kind::static_join_store: {
      if (!g) break;
      auto m = g->members.find(pw->member_id);
      if (m == g->members.end()) break;
      if (error != error_code::none) {
        invoke_join(*g, m->second, join_error(m->second.join_version, pw->member_id, store_group_error(error)), out);
        revert_static_member(*g, *pw, now);
        break;
      }
      // The old leader id is returned so that the rejoining member does not
      // think it leads (a Stable group would not broadcast its assignment);
      // v9 clients are told to skip the assignment instead.
      int16_t v = m->second.join_version;
      bool leader = g->is_leader(pw->member_id);
      auto r = join_result(*g, m->second, v, v >= 9 && leader);
      if (v >= 9) r.skip_assignment = leader;
      else r.leader = pw->old_leader;
      invoke_join(*g, m->second, std::move(r), out);
      break;
    }
    case pending_write::kind::reply_when_done:
      if (--pw->done->outstanding == 0 && pw->done->body) {
        out.replies.push_back({pw->done->request, std::move(*pw->done->body)});
        pw->done->body.reset();
      }
      break;
  }
  if (g && groups_.count(pw->group_id)) maybe_complete_join(*g, now, out);
  return out;
}

// ---------------------------------------------------------------- timers

output group_coordinator::tick(int64_t now) {
  output out;
  std::vector<std::string> ids;
  for (auto& [id, _] : groups_) ids.push_back(id);
  for (auto& id : ids) {
    group* g = find_group(id);
    if (!g || loading(partition_for(id))) continue;
    // Pending members (MEMBER_ID_REQUIRED) that never came back.
    for (auto it = g->pending_members.begin(); it != g->pending_members.end();) {
      if (now >= it->second) it = g->pending_members.erase(it);
      else ++it;
    }
    // Session timeouts. A member parked in JoinGroup or SyncGroup is alive;
    // its timer restarts when the rebalance answers it.
    std::vector<std::string> expired;
    for (auto& [mid, m] : g->members) {
      if (!m.heartbeat_deadline || now < *m.heartbeat_deadline) continue;
      m.heartbeat_deadline.reset();
      if (m.is_new || (!m.awaiting_join && !m.awaiting_sync)) expired.push_back(mid);
    }
    for (auto& mid : expired) {
      log::get("coordinator")->info("group {}: member {} failed (session timeout), removing it", g->id, mid);
      remove_member_and_update_group(*g, mid, now, out);
    }
    if (g->sync_deadline && now >= *g->sync_deadline) on_expire_pending_sync(*g, now, out);
    maybe_complete_join(*g, now, out);
  }
  if (last_expiry_check_ms_ < 0) last_expiry_check_ms_ = now;
  if (now - last_expiry_check_ms_ >= config_.offsets_retention_check_interval_ms) {
    last_expiry_check_ms_ = now;
    expire_offsets(now, out);
  }
  return out;
}

void group_coordinator::expire_offsets(int64_t now, output& out) {
  std::vector<std::string> ids;
  for (auto& [id, _] : groups_) ids.push_back(id);
  for (auto& id : ids) {
    group* g = find_group(id);
    if (!g || loading(partition_for(id)) || g->state == group_state::dead) continue;
    // Which offsets may expire, and counted from when (Kafka's rules):
    // - an Empty group with a protocol: retention since it became empty;
    // - a Stable consumer group: offsets of topics it no longer subscribes to,
    //   retention since their commit;
    // - a group without a protocol (offsets only): retention since commit.
    enum class base { state, commit, none } b = base::none;
    const std::set<std::string>* keep_topics = nullptr;
    if (g->protocol_type && g->state == group_state::empty) b = base::state;
    else if (g->protocol_type && *g->protocol_type == consumer_protocol_type && g->subscribed_topics &&
             g->state == group_state::stable) {
      b = base::commit;
      keep_topics = &*g->subscribed_topics;
    } else if (!g->protocol_type) b = base::commit;
    std::vector<offsets_record> tombstones;
    if (b != base::none) {
      for (auto it = g->offsets.begin(); it != g->offsets.end();) {
        auto& [tp, o] = *it;
        bool expired = false;
        if (!(keep_topics && keep_topics->count(tp.first)) && !g->pending_commits.count(tp)) {
          if (o.expire_timestamp) expired = now >= *o.expire_timestamp;
          else {
            int64_t from = b == base::state ? g->state_timestamp.value_or(o.commit_timestamp) : o.commit_timestamp;
            expired = now - from >= config_.offsets_retention_ms;
          }
        }
        if (expired) {
          tombstones.push_back({offset_key(id, tp), std::nullopt});
          it = g->offsets.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (!tombstones.empty())
      log::get("coordinator")->info("group {}: expired {} offsets", id, tombstones.size());
    bool remove = g->state == group_state::empty && g->offsets.empty() && g->pending_commits.empty() &&
                  !g->has_pending_txn_offsets() && g->pending_members.empty();
    if (remove) {
      transition(*g, group_state::dead);
      if (g->generation > 0) tombstones.push_back({group_key(id), std::nullopt});
      remove_group(id);
    }
    if (!tombstones.empty()) {
      pending_write pw;
      add_write(partition_for(id), std::move(tombstones), std::move(pw), out);
    }
  }
}

// ---------------------------------------------------------------- loading

void group_coordinator::begin_load(int32_t partition) { loading_[partition] = load_state{}; }

void group_coordinator::unload(int32_t partition) {
  loading_.erase(partition);
  std::erase_if(groups_, [&](const auto& kv) { return partition_for(kv.first) == partition; });
}

void group_coordinator::replay(int32_t partition, bytes_view key, std::optional<bytes_view> value, int64_t log_offset,
                               int64_t producer_id) {
  auto ls = loading_.find(partition);
  if (ls == loading_.end()) return;
  auto& st = ls->second;
  protocol::wire_reader kr(key);
  int16_t kv = kr.read_int16();
  if (!kr.ok()) return;
  if (kv == 0 || kv == 1) {
    protocol::offset_commit_key k;
    if (!k.decode(kr, kv) || !kr.ok()) return;
    topic_partition tp{k.topic, k.partition};
    // A transaction's offsets wait for its marker (Kafka's pendingOffsets).
    auto& target = producer_id >= 0 ? st.pending[producer_id][k.group] : st.offsets[k.group];
    if (!value) {
      target.erase(tp);
      // A plain tombstone (OffsetDelete, DeleteGroups) removes the offset
      // of every transaction still open too, so a later COMMIT marker does
      // not bring it back (Kafka's OffsetMetadataManager does the same).
      if (producer_id < 0)
        for (auto& [_, by_group] : st.pending)
          if (auto g = by_group.find(k.group); g != by_group.end()) g->second.erase(tp);
      return;
    }
    protocol::wire_reader vr(*value);
    int16_t vv = vr.read_int16();
    protocol::offset_commit_value v;
    if (!vr.ok() || vv < 0 || vv > 4 || !v.decode(vr, vv) || !vr.ok()) {
      log::get("coordinator")->warn("skipping an undecodable offset commit of group {}", k.group);
      return;
    }
    committed_offset o;
    o.offset = v.offset;
    o.leader_epoch = vv >= 3 ? v.leader_epoch : -1;
    o.metadata = v.metadata;
    o.commit_timestamp = v.commit_timestamp;
    if (vv == 1 && v.expire_timestamp != -1) o.expire_timestamp = v.expire_timestamp;
    o.log_offset = log_offset;
    target[tp] = std::move(o);
  } else if (kv == 2) {
    protocol::group_metadata_key k;
    if (!k.decode(kr, kv) || !kr.ok()) return;
    if (!value) {
      st.groups[k.group] = std::nullopt;
      return;
    }
    protocol::wire_reader vr(*value);
    int16_t vv = vr.read_int16();
    protocol::group_metadata_value v;
    if (!vr.ok() || vv < 0 || vv > 4 || !v.decode(vr, vv) || !vr.ok()) {
      log::get("coordinator")->warn("skipping undecodable metadata of group {}", k.group);
      return;
    }
    st.groups[k.group] = std::move(v);
  }
  // Other key versions (e.g. newer coordinators' records) are not ours.
}

void group_coordinator::replay_marker(int32_t partition, int64_t producer_id, bool committed) {
  auto ls = loading_.find(partition);
  if (ls == loading_.end()) return;
  auto& st = ls->second;
  auto pending = st.pending.find(producer_id);
  if (pending == st.pending.end()) return;
  if (committed) {
    for (auto& [group_id, offs] : pending->second) {
      auto& loaded = st.offsets[group_id];
      for (auto& [tp, o] : offs) {
        auto cur = loaded.find(tp);
        if (cur == loaded.end() || cur->second.log_offset < o.log_offset) loaded[tp] = o;
      }
    }
  }
  st.pending.erase(pending);
}

output group_coordinator::end_load(int32_t partition, int64_t now) {
  output out;
  auto ls = loading_.find(partition);
  if (ls == loading_.end()) return out;
  load_state st = std::move(ls->second);
  loading_.erase(ls);
  size_t loaded = 0;
  std::set<std::string> names;
  for (auto& [id, offs] : st.offsets)
    if (!offs.empty()) names.insert(id);
  for (auto& [id, v] : st.groups)
    if (v) names.insert(id);
  // Groups with a transaction still open in the log (no marker yet) exist
  // too; those offsets stay pending.
  std::map<std::string, std::map<int64_t, std::map<topic_partition, committed_offset>>> pending_by_group;
  for (auto& [pid, by_group] : st.pending)
    for (auto& [id, offs] : by_group)
      if (!offs.empty()) {
        pending_by_group[id][pid] = offs;
        names.insert(id);
      }
  for (auto& id : names) {
    groups_.erase(id);
    group& g = create_group(id);
    auto gv = st.groups.find(id);
    if (gv != st.groups.end() && gv->second) {
      auto& v = *gv->second;
      g.protocol_type = v.protocol_type.empty() ? std::nullopt : std::optional<std::string>(v.protocol_type);
      g.generation = v.generation;
      g.protocol_name = v.protocol;
      if (g.protocol_name && g.protocol_name->empty()) g.protocol_name.reset();
      g.leader = v.leader;
      if (v.current_state_timestamp >= 0) g.state_timestamp = v.current_state_timestamp;
      for (auto& mm : v.members) {
        member_state m;
        m.member_id = mm.member_id;
        m.group_instance_id = mm.group_instance_id;
        m.client_id = mm.client_id;
        m.client_host = mm.client_host;
        m.session_timeout_ms = mm.session_timeout;
        m.rebalance_timeout_ms = mm.rebalance_timeout >= 0 ? mm.rebalance_timeout : mm.session_timeout;
        m.protocol_type = g.protocol_type.value_or("");
        if (g.protocol_name) m.protocols.emplace_back(*g.protocol_name, mm.subscription);
        m.assignment = mm.assignment;
        m.heartbeat_deadline = now + m.session_timeout_ms;
        if (m.group_instance_id) g.static_members[*m.group_instance_id] = m.member_id;
        g.members[m.member_id] = std::move(m);
      }
      if (g.leader && !g.members.count(*g.leader)) g.leader.reset();
      g.state = g.members.empty() ? group_state::empty : group_state::stable;
      g.subscribed_topics = compute_subscribed_topics(g);
    }
    auto offs = st.offsets.find(id);
    if (offs != st.offsets.end()) g.offsets = std::move(offs->second);
    auto pend = pending_by_group.find(id);
    if (pend != pending_by_group.end()) {
      g.pending_txn_offsets = std::move(pend->second);
      for (auto& [pid, _] : g.pending_txn_offsets) producer_groups_[pid].insert(id);
    }
    ++loaded;
  }
  log::get("coordinator")->debug("loaded {} groups from {}-{}", loaded, offsets_topic_name, partition);
  return out;
}

}  // namespace gregor::coordinator
