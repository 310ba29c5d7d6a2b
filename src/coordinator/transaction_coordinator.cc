#include "coordinator/transaction_coordinator.h"

#include <limits>

#include "base/log.h"
#include "coordinator/versioned_record.h"

namespace gregor::coordinator {

using protocol::error_code;

namespace {

constexpr int16_t key_version = 0;
// Version 0 values: what Kafka 3.x writes and every reader understands.
constexpr int16_t value_version = 0;
// Kafka bumps the epoch only while it stays below Short.MaxValue - 1; at
// that point a new producer id is taken instead.
constexpr int16_t max_epoch = std::numeric_limits<int16_t>::max() - 1;

bool is_prepare(txn_state s) { return s == txn_state::prepare_commit || s == txn_state::prepare_abort; }

}  // namespace

const char* txn_state_name(txn_state s) {
  switch (s) {
    case txn_state::empty: return "Empty";
    case txn_state::ongoing: return "Ongoing";
    case txn_state::prepare_commit: return "PrepareCommit";
    case txn_state::prepare_abort: return "PrepareAbort";
    case txn_state::complete_commit: return "CompleteCommit";
    case txn_state::complete_abort: return "CompleteAbort";
    case txn_state::dead: return "Dead";
    case txn_state::prepare_epoch_fence: return "PrepareEpochFence";
  }
  return "Unknown";
}

std::optional<txn_state> txn_state_from_name(std::string_view name) {
  for (int i = 0; i <= 7; ++i) {
    auto s = static_cast<txn_state>(i);
    if (name == txn_state_name(s)) return s;
  }
  return std::nullopt;
}

int32_t partition_for_transactional_id(std::string_view id, int32_t partitions) {
  return partition_for_group(id, partitions);  // the same abs(String.hashCode) % n
}

error_code fenced_error_for_version(error_code e, int16_t version, int16_t first_fenced_version) {
  return e == error_code::producer_fenced && version < first_fenced_version ? error_code::invalid_producer_epoch : e;
}

offsets_record transaction_log_record(const txn_metadata& m) {
  protocol::transaction_log_key k;
  k.transactional_id = m.transactional_id;
  protocol::transaction_log_value v;
  v.producer_id = m.producer_id;
  v.producer_epoch = m.producer_epoch;
  v.transaction_timeout_ms = m.timeout_ms;
  v.transaction_status = static_cast<int8_t>(m.state);
  std::vector<protocol::transaction_log_value::partitions_schema> parts;
  for (auto& [topic, p] : m.partitions) {
    if (parts.empty() || parts.back().topic != topic) parts.emplace_back().topic = topic;
    parts.back().partition_ids.push_back(p);
  }
  // Kafka writes no partition list (null) for Empty.
  if (m.state != txn_state::empty) v.transaction_partitions = std::move(parts);
  else v.transaction_partitions = std::nullopt;
  v.transaction_last_update_timestamp_ms = m.last_update_ms;
  v.transaction_start_timestamp_ms = m.start_ms;
  if (m.state == txn_state::dead) return offsets_record{encode_versioned(k, key_version), std::nullopt};
  return offsets_record{encode_versioned(k, key_version), encode_versioned(v, value_version)};
}

std::optional<txn_metadata> decode_transaction_log_record(bytes_view key, std::optional<bytes_view> value,
                                                          std::string* id) {
  protocol::wire_reader kr(key);
  int16_t kv = kr.read_int16();
  if (!kr.ok() || kv != 0) return std::nullopt;
  protocol::transaction_log_key k;
  if (!k.decode(kr, kv) || !kr.ok()) return std::nullopt;
  if (id) *id = k.transactional_id;
  if (!value) return std::nullopt;
  protocol::wire_reader vr(*value);
  int16_t vv = vr.read_int16();
  protocol::transaction_log_value v;
  if (!vr.ok() || vv < 0 || vv > 1 || !v.decode(vr, vv) || !vr.ok()) return std::nullopt;
  if (v.transaction_status < 0 || v.transaction_status > 7) return std::nullopt;
  txn_metadata m;
  m.transactional_id = k.transactional_id;
  m.producer_id = v.producer_id;
  m.previous_producer_id = v.previous_producer_id;
  m.next_producer_id = v.next_producer_id;
  m.producer_epoch = v.producer_epoch;
  m.timeout_ms = v.transaction_timeout_ms;
  m.state = static_cast<txn_state>(v.transaction_status);
  if (v.transaction_partitions)
    for (auto& t : *v.transaction_partitions)
      for (int32_t p : t.partition_ids) m.partitions.insert({t.topic, p});
  m.last_update_ms = v.transaction_last_update_timestamp_ms;
  m.start_ms = v.transaction_start_timestamp_ms;
  return m;
}

// ---- ownership and loading

void transaction_coordinator::begin_load(int32_t partition) {
  owned_.insert(partition);
  loading_[partition].clear();
}

void transaction_coordinator::replay(int32_t partition, bytes_view key, std::optional<bytes_view> value) {
  auto ls = loading_.find(partition);
  if (ls == loading_.end()) return;
  std::string id;
  auto m = decode_transaction_log_record(key, value, &id);
  if (id.empty()) return;  // not a transaction record
  if (!m && value) {
    log::get("coordinator")->warn("skipping an undecodable state of transactional id {}", id);
    return;
  }
  ls->second[id] = std::move(m);
}

std::vector<std::string> transaction_coordinator::end_load(int32_t partition) {
  std::vector<std::string> to_complete;
  auto ls = loading_.find(partition);
  if (ls == loading_.end()) return to_complete;
  for (auto& [id, m] : ls->second) {
    if (!m) {
      txns_.erase(id);
      continue;
    }
    if (is_prepare(m->state)) to_complete.push_back(id);
    txns_[id] = std::move(*m);
  }
  loading_.erase(ls);
  return to_complete;
}

void transaction_coordinator::unload(int32_t partition) {
  owned_.erase(partition);
  loading_.erase(partition);
  for (auto it = txns_.begin(); it != txns_.end();) {
    if (partition_for(it->first) == partition) {
      pending_.erase(it->first);
      it = txns_.erase(it);
    } else {
      ++it;
    }
  }
}

error_code transaction_coordinator::coordinator_error(std::string_view id) const {
  int32_t p = partition_for(id);
  if (!owned_.count(p)) return error_code::not_coordinator;
  if (loading_.count(p)) return error_code::coordinator_load_in_progress;
  return error_code::none;
}

const txn_metadata* transaction_coordinator::find(const std::string& id) const {
  auto it = txns_.find(id);
  return it == txns_.end() ? nullptr : &it->second;
}

// ---- transitions

txn_step transaction_coordinator::begin(const txn_metadata& target, bool markers) {
  pending_.insert(target.transactional_id);
  txn_step s;
  s.target = target;
  s.then_markers = markers;
  return s;
}

void transaction_coordinator::complete(const txn_metadata& target) {
  pending_.erase(target.transactional_id);
  // The partition may have moved away while the write was in flight.
  if (coordinator_error(target.transactional_id) != error_code::none) return;
  if (target.state == txn_state::dead) txns_.erase(target.transactional_id);  // expired: its tombstone is written
  else txns_[target.transactional_id] = target;
}

void transaction_coordinator::abandon(const std::string& id) { pending_.erase(id); }

txn_step transaction_coordinator::init_producer_id(const std::string& id, int32_t timeout_ms,
                                                   int64_t expected_producer_id, int16_t expected_epoch, int64_t now,
                                                   const std::function<std::optional<int64_t>()>& new_producer_id) {
  txn_step s;
  if (auto e = coordinator_error(id); e != error_code::none) return s.error = e, s;
  if (timeout_ms <= 0 || timeout_ms > config_.transaction_max_timeout_ms)
    return s.error = error_code::invalid_transaction_timeout, s;
  if (pending_.count(id)) return s.error = error_code::concurrent_transactions, s;
  auto it = txns_.find(id);
  if (it == txns_.end()) {
    auto pid = new_producer_id();
    if (!pid) return s.error = error_code::coordinator_load_in_progress, s;
    txn_metadata m;
    m.transactional_id = id;
    m.producer_id = *pid;
    m.producer_epoch = 0;
    m.timeout_ms = timeout_ms;
    m.state = txn_state::empty;
    m.last_update_ms = now;
    return begin(m);
  }
  const txn_metadata& cur = it->second;
  // KIP-360: a producer that names its id and epoch must name the current
  // ones (or the previous ones, when its last InitProducerId's answer was lost).
  if (expected_producer_id != -1) {
    bool current = expected_producer_id == cur.producer_id && expected_epoch == cur.producer_epoch;
    bool retried = expected_producer_id == cur.previous_producer_id ||
                   (expected_producer_id == cur.producer_id && cur.last_producer_epoch >= 0 &&
                    expected_epoch == cur.last_producer_epoch);
    if (!current && !retried) return s.error = error_code::producer_fenced, s;
    if (retried && !current && cur.state == txn_state::empty) {
      // The previous InitProducerId succeeded: answer the same again.
      s.producer_id = cur.producer_id;
      s.producer_epoch = cur.producer_epoch;
      return s;
    }
  }
  switch (cur.state) {
    case txn_state::prepare_commit:
    case txn_state::prepare_abort:
    case txn_state::prepare_epoch_fence:
      return s.error = error_code::concurrent_transactions, s;
    case txn_state::dead:
      return s.error = error_code::invalid_txn_state, s;
    case txn_state::ongoing: {
      // Fence the producer of the ongoing transaction and abort it.
      txn_step f = prepare_end(cur, false, true, now);
      f.fenced_ongoing = true;
      return f;
    }
    case txn_state::empty:
    case txn_state::complete_commit:
    case txn_state::complete_abort: {
      txn_metadata m = cur;
      if (m.producer_epoch >= max_epoch) {
        auto pid = new_producer_id();
        if (!pid) return s.error = error_code::coordinator_load_in_progress, s;
        m.previous_producer_id = cur.producer_id;
        m.producer_id = *pid;
        m.producer_epoch = 0;
        m.last_producer_epoch = -1;
      } else {
        // Kafka's prepareIncrementProducerEpoch: the epoch bumped from is
        // remembered only when the producer named it (its own bump, which it
        // may retry after a lost answer). A new instance names none: then it
        // is -1, so the previous instance naming its old epoch is fenced
        // instead of being handed the new instance's epoch as a "retry".
        m.last_producer_epoch = expected_producer_id == -1 ? int16_t{-1} : cur.producer_epoch;
        m.producer_epoch = static_cast<int16_t>(cur.producer_epoch + 1);
      }
      m.timeout_ms = timeout_ms;
      m.state = txn_state::empty;
      m.partitions.clear();
      m.start_ms = -1;
      m.last_update_ms = now;
      return begin(m);
    }
  }
  return s.error = error_code::unknown_server_error, s;
}

error_code transaction_coordinator::validate(const std::string& id, int64_t producer_id, int16_t epoch,
                                             const txn_metadata** out) const {
  if (auto e = coordinator_error(id); e != error_code::none) return e;
  auto it = txns_.find(id);
  if (it == txns_.end()) return error_code::invalid_producer_id_mapping;
  const txn_metadata& m = it->second;
  if (m.producer_id != producer_id) return error_code::invalid_producer_id_mapping;
  if (m.producer_epoch != epoch) return error_code::producer_fenced;
  if (pending_.count(id)) return error_code::concurrent_transactions;
  if (is_prepare(m.state)) return error_code::concurrent_transactions;
  if (m.state == txn_state::dead || m.state == txn_state::prepare_epoch_fence) return error_code::invalid_txn_state;
  *out = &m;
  return error_code::none;
}

txn_step transaction_coordinator::add(const std::string& id, int64_t producer_id, int16_t epoch,
                                      const std::vector<topic_partition>& partitions, int64_t now) {
  txn_step s;
  const txn_metadata* cur = nullptr;
  if (auto e = validate(id, producer_id, epoch, &cur); e != error_code::none) return s.error = e, s;
  bool all_in = cur->state == txn_state::ongoing;
  for (auto& tp : partitions) all_in = all_in && cur->partitions.count(tp);
  if (all_in) return s;  // nothing to write
  txn_metadata m = *cur;
  if (m.state != txn_state::ongoing) {
    m.partitions.clear();
    m.start_ms = now;
  }
  m.state = txn_state::ongoing;
  m.partitions.insert(partitions.begin(), partitions.end());
  m.last_update_ms = now;
  return begin(m);
}

txn_step transaction_coordinator::add_partitions(const std::string& id, int64_t producer_id, int16_t epoch,
                                                 const std::vector<topic_partition>& partitions, int64_t now) {
  return add(id, producer_id, epoch, partitions, now);
}

txn_step transaction_coordinator::add_offsets(const std::string& id, int64_t producer_id, int16_t epoch,
                                              const std::string& group_id, int64_t now) {
  int32_t p = partition_for_group(group_id, config_.offsets_topic_num_partitions);
  return add(id, producer_id, epoch, {{offsets_topic_name, p}}, now);
}

transaction_coordinator::verify_result transaction_coordinator::verify_partitions(
    const std::string& id, int64_t producer_id, int16_t epoch, const std::vector<topic_partition>& partitions) const {
  verify_result r;
  if (auto e = coordinator_error(id); e != error_code::none) return r.error = e, r;
  auto it = txns_.find(id);
  if (it == txns_.end()) return r.error = error_code::invalid_producer_id_mapping, r;
  const txn_metadata& m = it->second;
  if (m.producer_id != producer_id) return r.error = error_code::invalid_producer_id_mapping, r;
  if (m.producer_epoch != epoch) return r.error = error_code::producer_fenced, r;
  if (is_prepare(m.state)) return r.error = error_code::concurrent_transactions, r;
  for (auto& tp : partitions)
    r.per_partition.push_back(m.state == txn_state::ongoing && m.partitions.count(tp) ? error_code::none
                                                                                      : error_code::invalid_txn_state);
  return r;
}

txn_step transaction_coordinator::prepare_end(const txn_metadata& cur, bool commit, bool bump_epoch, int64_t now) {
  txn_metadata m = cur;
  // Kafka's prepareFenceProducerEpoch bumps up to Short.MaxValue, one past
  // the last epoch InitProducerId hands out: a producer at that last epoch
  // is fenced too (the next InitProducerId then takes a new producer id).
  if (bump_epoch && m.producer_epoch < std::numeric_limits<int16_t>::max()) {
    // The fenced epoch is forgotten
    // (last epoch -1), so its producer cannot pass for a retry of a bump.
    m.last_producer_epoch = -1;
    m.producer_epoch = static_cast<int16_t>(cur.producer_epoch + 1);
  }
  m.state = commit ? txn_state::prepare_commit : txn_state::prepare_abort;
  m.last_update_ms = now;
  return begin(m, true);
}

txn_step transaction_coordinator::end_txn(const std::string& id, int64_t producer_id, int16_t epoch, bool commit,
                                          int64_t now) {
  txn_step s;
  if (auto e = coordinator_error(id); e != error_code::none) return s.error = e, s;
  auto it = txns_.find(id);
  if (it == txns_.end()) return s.error = error_code::invalid_producer_id_mapping, s;
  const txn_metadata& m = it->second;
  if (m.producer_id != producer_id) return s.error = error_code::invalid_producer_id_mapping, s;
  if (m.producer_epoch != epoch) return s.error = error_code::producer_fenced, s;
  if (pending_.count(id)) return s.error = error_code::concurrent_transactions, s;
  switch (m.state) {
    case txn_state::ongoing:
      return prepare_end(m, commit, false, now);
    case txn_state::complete_commit:  // a retry of a commit that completed
      return s.error = commit ? error_code::none : error_code::invalid_txn_state, s;
    case txn_state::complete_abort:
      return s.error = commit ? error_code::invalid_txn_state : error_code::none, s;
    case txn_state::prepare_commit:
      return s.error = commit ? error_code::concurrent_transactions : error_code::invalid_txn_state, s;
    case txn_state::prepare_abort:
      return s.error = commit ? error_code::invalid_txn_state : error_code::concurrent_transactions, s;
    case txn_state::empty:
    case txn_state::dead:
    case txn_state::prepare_epoch_fence:
      return s.error = error_code::invalid_txn_state, s;
  }
  return s.error = error_code::unknown_server_error, s;
}

txn_step transaction_coordinator::complete_commit_or_abort(const std::string& id, int64_t now) {
  txn_step s;
  if (auto e = coordinator_error(id); e != error_code::none) return s.error = e, s;
  auto it = txns_.find(id);
  if (it == txns_.end() || !is_prepare(it->second.state)) return s.error = error_code::invalid_txn_state, s;
  if (pending_.count(id)) return s.error = error_code::concurrent_transactions, s;
  txn_metadata m = it->second;
  m.state = m.state == txn_state::prepare_commit ? txn_state::complete_commit : txn_state::complete_abort;
  m.partitions.clear();
  m.last_update_ms = now;
  return begin(m);
}

std::vector<std::string> transaction_coordinator::timed_out(int64_t now) const {
  std::vector<std::string> out;
  for (auto& [id, m] : txns_)
    if (m.state == txn_state::ongoing && !pending_.count(id) && m.start_ms >= 0 && m.start_ms + m.timeout_ms < now &&
        coordinator_error(id) == error_code::none)
      out.push_back(id);
  return out;
}

txn_step transaction_coordinator::abort_timed_out(const std::string& id, int64_t now) {
  txn_step s;
  auto it = txns_.find(id);
  if (it == txns_.end() || it->second.state != txn_state::ongoing || pending_.count(id))
    return s.error = error_code::invalid_txn_state, s;
  // As Kafka: fence the producer (epoch + 1) and abort.
  return prepare_end(it->second, false, true, now);
}

std::vector<std::string> transaction_coordinator::expired(int64_t now) const {
  std::vector<std::string> out;
  for (auto& [id, m] : txns_) {
    bool idle = m.state == txn_state::empty || m.state == txn_state::complete_commit ||
                m.state == txn_state::complete_abort;
    if (idle && !pending_.count(id) && m.last_update_ms + config_.transactional_id_expiration_ms <= now &&
        coordinator_error(id) == error_code::none)
      out.push_back(id);
  }
  return out;
}

txn_step transaction_coordinator::expire(const std::string& id, int64_t now) {
  txn_step s;
  auto it = txns_.find(id);
  if (it == txns_.end() || pending_.count(id) || it->second.last_update_ms + config_.transactional_id_expiration_ms > now)
    return s.error = error_code::invalid_txn_state, s;
  auto st = it->second.state;
  if (st != txn_state::empty && st != txn_state::complete_commit && st != txn_state::complete_abort)
    return s.error = error_code::invalid_txn_state, s;
  txn_metadata m = it->second;
  m.state = txn_state::dead;
  m.partitions.clear();
  m.last_update_ms = now;
  return begin(m);
}

// ---- listing

protocol::list_transactions_response transaction_coordinator::list(int16_t version,
                                                                   const protocol::list_transactions_request& req,
                                                                   int64_t now) const {
  protocol::list_transactions_response resp;
  if (!loading_.empty()) {
    resp.error_code = static_cast<int16_t>(error_code::coordinator_load_in_progress);
    return resp;
  }
  std::set<txn_state> states;
  for (auto& name : req.state_filters) {
    if (auto s = txn_state_from_name(name)) states.insert(*s);
    else resp.unknown_state_filters.push_back(name);
  }
  // Only unknown filters: nothing can match.
  if (!req.state_filters.empty() && states.empty()) return resp;
  std::set<int64_t> pids(req.producer_id_filters.begin(), req.producer_id_filters.end());
  int64_t min_duration = version >= 1 ? req.duration_filter : -1;
  for (auto& [id, m] : txns_) {
    if (!states.empty() && !states.count(m.state)) continue;
    if (!pids.empty() && !pids.count(m.producer_id)) continue;
    if (min_duration >= 0 && (m.start_ms < 0 || now - m.start_ms < min_duration)) continue;
    auto& t = resp.transaction_states.emplace_back();
    t.transactional_id = id;
    t.producer_id = m.producer_id;
    t.transaction_state = txn_state_name(m.state);
  }
  return resp;
}

protocol::describe_transactions_response::described_transaction transaction_coordinator::describe(
    const std::string& id) const {
  protocol::describe_transactions_response::described_transaction d;
  d.transactional_id = id;
  d.producer_id = -1;
  d.producer_epoch = -1;
  d.transaction_start_time_ms = -1;
  if (auto e = coordinator_error(id); e != error_code::none) {
    d.error_code = static_cast<int16_t>(e);
    return d;
  }
  auto it = txns_.find(id);
  if (it == txns_.end()) {
    d.error_code = static_cast<int16_t>(error_code::transactional_id_not_found);
    return d;
  }
  auto& m = it->second;
  d.transaction_state = txn_state_name(m.state);
  d.transaction_timeout_ms = m.timeout_ms;
  d.transaction_start_time_ms = m.start_ms;
  d.producer_id = m.producer_id;
  d.producer_epoch = m.producer_epoch;
  for (auto& [topic, p] : m.partitions) {
    if (d.topics.empty() || d.topics.back().topic != topic) d.topics.emplace_back().topic = topic;
    d.topics.back().partitions.push_back(p);
  }
  return d;
}

}  // namespace gregor::coordinator
