#include "client/consumer.h"

#include <algorithm>

#include <fmt/format.h>

#include "client/props.h"

namespace gregor::client {

namespace pr = protocol;
using E = pr::error_code;

result<void> consumer_config::set(const std::string& key, const std::string& value) {
  if (auto r = set_common(*this, key, value); r.ok() || r.err().message != "unknown") return r;
  if (key == "group.id") {
    group_id = value;
    return ok();
  }
  if (key == "group.instance.id") {
    if (value.empty()) group_instance_id.reset();
    else group_instance_id = value;
    return ok();
  }
  if (key == "session.timeout.ms") return parse_int(key, value, session_timeout_ms, 1);
  if (key == "heartbeat.interval.ms") return parse_int(key, value, heartbeat_interval_ms, 1);
  if (key == "max.poll.interval.ms") return parse_int(key, value, max_poll_interval_ms, 1);
  if (key == "enable.auto.commit") return parse_bool(key, value, enable_auto_commit);
  if (key == "auto.commit.interval.ms") return parse_int(key, value, auto_commit_interval_ms, 0);
  if (key == "fetch.min.bytes") return parse_int(key, value, fetch_min_bytes, 0);
  if (key == "fetch.max.bytes") return parse_int(key, value, fetch_max_bytes, 1);
  if (key == "max.partition.fetch.bytes") return parse_int(key, value, max_partition_fetch_bytes, 1);
  if (key == "fetch.max.wait.ms") return parse_int(key, value, fetch_max_wait_ms, 0);
  if (key == "max.poll.records") return parse_int(key, value, max_poll_records, 1);
  if (key == "check.crcs") return parse_bool(key, value, check_crcs);
  if (key == "allow.auto.create.topics") return parse_bool(key, value, allow_auto_create_topics);
  if (key == "auto.offset.reset") {
    if (value == "smallest") auto_offset_reset = "earliest";
    else if (value == "largest") auto_offset_reset = "latest";
    else if (value == "earliest" || value == "latest" || value == "none") auto_offset_reset = value;
    else return error{fmt::format("bad auto.offset.reset '{}': expected earliest, latest or none", value)};
    return ok();
  }
  if (key == "partition.assignment.strategy") {
    std::vector<std::string> names;
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      std::string n = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      n.erase(std::remove(n.begin(), n.end(), ' '), n.end());
      // Accept the Java class names too.
      if (n.find("CooperativeStickyAssignor") != std::string::npos) n = "cooperative-sticky";
      else if (n.find("RoundRobinAssignor") != std::string::npos) n = "roundrobin";
      else if (n.find("RangeAssignor") != std::string::npos) n = "range";
      if (!n.empty()) {
        if (!known_assignor(n))
          return error{fmt::format("unknown assignor '{}': expected range, roundrobin or cooperative-sticky", n)};
        names.push_back(n);
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (names.empty()) return error{"partition.assignment.strategy is empty"};
    partition_assignment_strategy = names;
    return ok();
  }
  if (key == "isolation.level") {
    if (value != "read_committed" && value != "read_uncommitted")
      return error{fmt::format("isolation.level must be read_committed or read_uncommitted, not '{}'", value)};
    read_committed = value == "read_committed";
    return ok();
  }
  if (key == "key.deserializer" || key == "value.deserializer" ||
      key == "receive.buffer.bytes" || key == "send.buffer.bytes")
    return ok();
  return error{fmt::format("unknown consumer property '{}'", key)};
}

namespace {
// read_committed: the batches of the aborted transactions a Fetch names are
// dropped, as Kafka's consumer does. An aborted transaction starts at its
// first offset and lasts until that producer's ABORT marker.
class aborted_filter {
 public:
  explicit aborted_filter(const std::optional<std::vector<pr::fetch_response::aborted_transaction>>& list) {
    if (list)
      for (auto& a : *list) starts_.emplace(a.first_offset, a.producer_id);
  }
  bool skip(const pr::batch_header& h, bytes_view batch) {
    while (!starts_.empty() && starts_.begin()->first <= h.last_offset()) {
      active_.insert(starts_.begin()->second);
      starts_.erase(starts_.begin());
    }
    if (!h.is_transactional() || !active_.count(h.producer_id)) return false;
    if (h.is_control()) {
      // The ABORT marker (control key: version int16, type int16 0) ends it.
      auto reader = pr::record_reader::open(batch);
      pr::record_view rv;
      if (!reader) return true;
      auto more = reader->next(rv);
      if (more && more.value() && rv.key && rv.key->size() >= 4 && (*rv.key)[2] == 0 && (*rv.key)[3] == 0)
        active_.erase(h.producer_id);
    }
    return true;
  }

 private:
  std::multimap<int64_t, int64_t> starts_;  // first offset -> producer id
  std::set<int64_t> active_;
};
}  // namespace

consumer::consumer(consumer_config config) : config_(config), cluster_(config), group_cluster_(config) {}

consumer::~consumer() { close(); }

std::string consumer::member_id() const {
  std::lock_guard g(gmu_);
  return member_id_;
}
int32_t consumer::generation() const {
  std::lock_guard g(gmu_);
  return generation_;
}

result<void> consumer::subscribe(const std::vector<std::string>& topics, rebalance_listener listener) {
  if (config_.group_id.empty()) return error{"subscribe() needs a group.id"};
  if (!subscribed_ && !assigned_.empty()) assigned_.clear();
  subscription_ = topics;
  std::sort(subscription_.begin(), subscription_.end());
  listener_ = std::move(listener);
  subscribed_ = true;
  rejoin_needed_ = true;
  return ok();
}

void consumer::assign(const std::vector<topic_partition>& partitions) {
  if (subscribed_) unsubscribe();
  std::map<topic_partition, partition_state> next;
  for (auto& tp : partitions) {
    auto it = assigned_.find(tp);
    next[tp] = it != assigned_.end() ? std::move(it->second) : partition_state{};
  }
  assigned_ = std::move(next);
}

void consumer::unsubscribe() {
  if (subscribed_) {
    maybe_auto_commit(true);
    std::vector<topic_partition> all;
    for (auto& [tp, s] : assigned_) all.push_back(tp);
    revoke(all, false);
    leave_group();
  }
  subscribed_ = false;
  subscription_.clear();
  assigned_.clear();
}

std::vector<topic_partition> consumer::assignment() const {
  std::vector<topic_partition> out;
  for (auto& [tp, s] : assigned_) out.push_back(tp);
  return out;
}

std::map<topic_partition, int64_t> consumer::current_positions() const {
  std::map<topic_partition, int64_t> out;
  for (auto& [tp, s] : assigned_)
    if (s.position) out[tp] = *s.position;
  return out;
}

// ---- group membership ---------------------------------------------------------

void consumer::revoke(const std::vector<topic_partition>& tps, bool lost) {
  if (tps.empty()) return;
  if (lost) {
    if (listener_.on_partitions_lost) listener_.on_partitions_lost(tps);
    else if (listener_.on_partitions_revoked) listener_.on_partitions_revoked(tps);
  } else if (listener_.on_partitions_revoked) {
    listener_.on_partitions_revoked(tps);
  }
  for (auto& tp : tps) assigned_.erase(tp);
}

void consumer::stop_heartbeat() {
  {
    std::lock_guard g(gmu_);
    hb_stop_ = true;
    stable_ = false;
  }
  hb_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  std::lock_guard g(gmu_);
  hb_stop_ = false;
}

void consumer::heartbeat_loop() {
  std::unique_lock lock(gmu_);
  for (;;) {
    hb_cv_.wait_for(lock, std::chrono::milliseconds(config_.heartbeat_interval_ms), [&] { return hb_stop_; });
    if (hb_stop_) return;
    if (!stable_) continue;
    pr::heartbeat_request req;
    req.group_id = config_.group_id;
    req.generation_id = generation_;
    req.member_id = member_id_;
    req.group_instance_id = config_.group_instance_id;
    lock.unlock();
    int16_t ec = 0;
    {
      auto c = group_cluster_.coordinator(config_.group_id);
      if (!c) {
        ec = pr::code(E::coordinator_not_available);
      } else {
        auto resp = (*c)->call(req, config_.request_timeout_ms);
        ec = resp ? resp->error_code : pr::code(E::coordinator_not_available);
      }
    }
    lock.lock();
    if (ec == 0) continue;
    if (ec == pr::code(E::rebalance_in_progress)) {
      rejoin_needed_ = true;
    } else if (ec == pr::code(E::unknown_member_id) || ec == pr::code(E::illegal_generation) ||
               ec == 82 /* FENCED_INSTANCE_ID */) {
      member_lost_ = true;
      rejoin_needed_ = true;
      stable_ = false;
    } else if (ec == pr::code(E::coordinator_not_available) || ec == pr::code(E::not_coordinator)) {
      group_cluster_.forget_coordinator(config_.group_id);
    }
  }
}

result<void> consumer::ensure_group(int64_t deadline) {
  if (!subscribed_) return ok();
  if (member_lost_.exchange(false)) {
    // Our membership is gone: the partitions are lost, not revoked.
    std::vector<topic_partition> all;
    for (auto& [tp, s] : assigned_) all.push_back(tp);
    revoke(all, true);
    std::lock_guard g(gmu_);
    member_id_.clear();
    generation_ = -1;
  }
  if (!rejoin_needed_) return ok();
  return join_and_sync(deadline);
}

result<void> consumer::join_and_sync(int64_t deadline) {
  stop_heartbeat();
  // Eager protocols give everything back before joining.
  if (!cooperative() && !assigned_.empty()) {
    maybe_auto_commit(true);
    std::vector<topic_partition> all;
    for (auto& [tp, s] : assigned_) all.push_back(tp);
    revoke(all, false);
  }
  std::string last_error;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      if (sys::monotonic_ms() >= deadline) return ok();  // try again on the next poll
      sys::sleep_ms(std::min<int64_t>(config_.retry_backoff_ms, std::max<int64_t>(0, deadline - sys::monotonic_ms())));
    }
    auto md = cluster_.refresh(subscription_, config_.allow_auto_create_topics);
    (void)md;
    pr::join_group_request join;
    join.group_id = config_.group_id;
    join.session_timeout_ms = config_.session_timeout_ms;
    join.rebalance_timeout_ms = config_.max_poll_interval_ms;
    {
      std::lock_guard g(gmu_);
      join.member_id = member_id_;
    }
    join.group_instance_id = config_.group_instance_id;
    join.protocol_type = "consumer";
    for (auto& name : config_.partition_assignment_strategy) {
      consumer_subscription s;
      s.version = 1;
      s.topics = subscription_;
      if (name == "cooperative-sticky")
        for (auto& [tp, st] : assigned_) s.owned_partitions.push_back(tp);
      join.protocols.push_back({name, encode_subscription(s), {}});
    }
    auto c = group_cluster_.coordinator(config_.group_id);
    if (!c) {
      last_error = c.err().message;
      if (sys::monotonic_ms() >= deadline) return error{last_error};
      continue;
    }
    // JoinGroup waits for the whole group: up to the rebalance timeout.
    auto jr = (*c)->call(join, int64_t{config_.max_poll_interval_ms} + 5000);
    if (!jr) {
      group_cluster_.forget_coordinator(config_.group_id);
      last_error = jr.err().message;
      continue;
    }
    const int16_t jec = jr->error_code;
    if (jec == 79 /* MEMBER_ID_REQUIRED */) {
      std::lock_guard g(gmu_);
      member_id_ = jr->member_id;
      attempt = -1;  // no back-off
      continue;
    }
    if (jec == pr::code(E::unknown_member_id) || jec == pr::code(E::illegal_generation)) {
      std::lock_guard g(gmu_);
      member_id_.clear();
      generation_ = -1;
      continue;
    }
    if (jec == pr::code(E::not_coordinator) || jec == pr::code(E::coordinator_not_available) ||
        jec == pr::code(E::coordinator_load_in_progress)) {
      group_cluster_.forget_coordinator(config_.group_id);
      continue;
    }
    if (jec == pr::code(E::rebalance_in_progress)) continue;
    if (jec != 0)
      return error{fmt::format("JoinGroup for group '{}' failed: {}", config_.group_id, describe_error(jec))};
    const std::string protocol = jr->protocol_name.value_or("");
    {
      std::lock_guard g(gmu_);
      member_id_ = jr->member_id;
      generation_ = jr->generation_id;
      protocol_ = protocol;
    }
    pr::sync_group_request sync;
    sync.group_id = config_.group_id;
    sync.generation_id = jr->generation_id;
    sync.member_id = jr->member_id;
    sync.group_instance_id = config_.group_instance_id;
    sync.protocol_type = "consumer";
    sync.protocol_name = protocol;
    if (jr->leader == jr->member_id) {
      std::vector<member_subscription> members;
      std::set<std::string> topics;
      for (auto& m : jr->members) {
        auto s = decode_subscription(m.metadata);
        member_subscription ms;
        ms.member_id = m.member_id;
        if (s) {
          ms.topics = s->topics;
          ms.owned = s->owned_partitions;
        }
        topics.insert(ms.topics.begin(), ms.topics.end());
        members.push_back(std::move(ms));
      }
      std::map<std::string, int32_t> counts;
      auto tmd = cluster_.refresh(std::vector<std::string>(topics.begin(), topics.end()),
                                  config_.allow_auto_create_topics);
      if (tmd)
        for (auto& t : topics)
          if (auto* ti = tmd.value()->topic(t); ti && ti->error_code == 0 && !ti->partitions.empty())
            counts[t] = static_cast<int32_t>(ti->partitions.size());
      auto assignment = assign_partitions(protocol, members, counts);
      for (auto& [member, tps] : assignment) {
        consumer_assignment a;
        a.version = 1;
        a.partitions = tps;
        sync.assignments.push_back({member, encode_assignment(a), {}});
      }
    }
    auto sr = (*c)->call(sync, int64_t{config_.max_poll_interval_ms} + 5000);
    if (!sr) {
      group_cluster_.forget_coordinator(config_.group_id);
      last_error = sr.err().message;
      continue;
    }
    if (sr->error_code == pr::code(E::rebalance_in_progress)) continue;
    if (sr->error_code == pr::code(E::unknown_member_id) || sr->error_code == pr::code(E::illegal_generation)) {
      std::lock_guard g(gmu_);
      member_id_.clear();
      generation_ = -1;
      continue;
    }
    if (sr->error_code == pr::code(E::not_coordinator) || sr->error_code == pr::code(E::coordinator_not_available)) {
      group_cluster_.forget_coordinator(config_.group_id);
      continue;
    }
    if (sr->error_code != 0)
      return error{fmt::format("SyncGroup for group '{}' failed: {}", config_.group_id,
                               describe_error(sr->error_code))};
    c.value().release();
    auto a = decode_assignment(sr->assignment);
    std::vector<topic_partition> next = a ? a->partitions : std::vector<topic_partition>{};
    std::sort(next.begin(), next.end());
    rejoin_needed_ = false;
    std::vector<topic_partition> added, revoked;
    for (auto& tp : next)
      if (!assigned_.count(tp)) added.push_back(tp);
    for (auto& [tp, s] : assigned_)
      if (!std::binary_search(next.begin(), next.end(), tp)) revoked.push_back(tp);
    if (!revoked.empty()) {
      // Cooperative: give back what moved, then rejoin so it can be reassigned.
      std::map<topic_partition, int64_t> offs;
      for (auto& tp : revoked)
        if (auto& st = assigned_[tp]; st.position) offs[tp] = *st.position;
      if (config_.enable_auto_commit && !offs.empty()) (void)commit(offs);
      revoke(revoked, false);
      rejoin_needed_ = true;
    }
    for (auto& tp : added) assigned_[tp];
    {
      std::lock_guard g(gmu_);
      stable_ = true;
    }
    heartbeat_ = sys::start_thread([this] { heartbeat_loop(); });
    next_auto_commit_ms_ = sys::monotonic_ms() + config_.auto_commit_interval_ms;
    if (listener_.on_partitions_assigned) listener_.on_partitions_assigned(added);
    return ok();
  }
}

void consumer::leave_group() {
  stop_heartbeat();
  std::string member;
  {
    std::lock_guard g(gmu_);
    member = member_id_;
    member_id_.clear();
    generation_ = -1;
  }
  if (member.empty() || config_.group_instance_id) return;
  pr::leave_group_request req;
  req.group_id = config_.group_id;
  req.member_id = member;
  req.members.push_back({member, std::nullopt, std::string("the consumer is leaving the group"), {}});
  auto c = group_cluster_.coordinator(config_.group_id);
  if (c) (void)(*c)->call(req, config_.request_timeout_ms);
}

// ---- offsets ------------------------------------------------------------------

result<void> consumer::commit(const std::map<topic_partition, int64_t>& offsets) {
  if (config_.group_id.empty()) return error{"committing offsets needs a group.id"};
  if (offsets.empty()) return ok();
  pr::offset_commit_request req;
  req.group_id = config_.group_id;
  {
    std::lock_guard g(gmu_);
    if (subscribed_) {
      req.generation_id_or_member_epoch = generation_;
      req.member_id = member_id_;
      req.group_instance_id = config_.group_instance_id;
    }
  }
  std::map<std::string, std::vector<pr::offset_commit_request::offset_commit_request_partition>> by_topic;
  for (auto& [tp, off] : offsets) {
    pr::offset_commit_request::offset_commit_request_partition p;
    p.partition_index = tp.partition;
    p.committed_offset = off;
    auto it = assigned_.find(tp);
    if (it != assigned_.end()) p.committed_leader_epoch = it->second.leader_epoch;
    p.committed_metadata = "";
    by_topic[tp.topic].push_back(p);
  }
  for (auto& [t, ps] : by_topic) req.topics.push_back({t, ps, {}});
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto c = group_cluster_.coordinator(config_.group_id);
    if (!c) return c.err();
    auto resp = (*c)->call(req, config_.request_timeout_ms);
    if (!resp) {
      group_cluster_.forget_coordinator(config_.group_id);
      continue;
    }
    int16_t first = 0;
    for (auto& t : resp->topics)
      for (auto& p : t.partitions)
        if (p.error_code != 0 && first == 0) first = p.error_code;
    if (first == 0) return ok();
    if (first == pr::code(E::not_coordinator) || first == pr::code(E::coordinator_not_available) ||
        first == pr::code(E::coordinator_load_in_progress)) {
      group_cluster_.forget_coordinator(config_.group_id);
      sys::sleep_ms(config_.retry_backoff_ms);
      continue;
    }
    if (first == pr::code(E::rebalance_in_progress) || first == pr::code(E::illegal_generation) ||
        first == pr::code(E::unknown_member_id))
      rejoin_needed_ = true;
    return error{fmt::format("commit failed: {}", describe_error(first))};
  }
  return error{"commit failed: coordinator not reachable"};
}

void consumer::maybe_auto_commit(bool force) {
  if (!config_.enable_auto_commit || config_.group_id.empty()) return;
  const int64_t now = sys::monotonic_ms();
  if (!force && now < next_auto_commit_ms_) return;
  next_auto_commit_ms_ = now + config_.auto_commit_interval_ms;
  (void)commit(current_positions());
}

result<void> consumer::commit_sync() { return commit(current_positions()); }
result<void> consumer::commit_sync(const std::map<topic_partition, int64_t>& offsets) { return commit(offsets); }

void consumer::commit_async(std::function<void(const result<void>&)> callback) {
  async_commits_.emplace_back(current_positions(), std::move(callback));
}
void consumer::commit_async(const std::map<topic_partition, int64_t>& offsets,
                            std::function<void(const result<void>&)> callback) {
  async_commits_.emplace_back(offsets, std::move(callback));
}

void consumer::run_pending_async_commits() {
  auto pending = std::move(async_commits_);
  async_commits_.clear();
  for (auto& [offs, cb] : pending) {
    auto r = commit(offs);
    if (cb) cb(r);
  }
}

result<std::map<topic_partition, int64_t>> consumer::committed(const std::vector<topic_partition>& tps) {
  if (config_.group_id.empty()) return error{"committed() needs a group.id"};
  pr::offset_fetch_request req;
  req.group_id = config_.group_id;
  std::map<std::string, std::vector<int32_t>> by_topic;
  for (auto& tp : tps) by_topic[tp.topic].push_back(tp.partition);
  req.topics.emplace();
  for (auto& [t, ps] : by_topic) req.topics->push_back({t, ps, {}});
  std::string last;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (attempt > 0) sys::sleep_ms(config_.retry_backoff_ms);
    auto c = group_cluster_.coordinator(config_.group_id);
    if (!c) return c.err();
    auto resp = (*c)->call(req, config_.request_timeout_ms);
    if (!resp) {
      group_cluster_.forget_coordinator(config_.group_id);
      last = resp.err().message;
      continue;
    }
    int16_t ec = resp->error_code;
    for (auto& t : resp->topics)
      for (auto& p : t.partitions)
        if (p.error_code != 0 && ec == 0) ec = p.error_code;
    if (ec == pr::code(E::coordinator_load_in_progress) || ec == pr::code(E::not_coordinator) ||
        ec == pr::code(E::coordinator_not_available) || ec == 88 /* UNSTABLE_OFFSET_COMMIT */) {
      group_cluster_.forget_coordinator(config_.group_id);
      last = describe_error(ec);
      continue;
    }
    if (ec != 0) return error{fmt::format("OffsetFetch failed: {}", describe_error(ec))};
    std::map<topic_partition, int64_t> out;
    for (auto& t : resp->topics)
      for (auto& p : t.partitions)
        if (p.committed_offset >= 0) out[{t.name, p.partition_index}] = p.committed_offset;
    return out;
  }
  return error{fmt::format("OffsetFetch failed: {}", last)};
}

result<std::map<topic_partition, int64_t>> consumer::list_offsets(const std::vector<topic_partition>& tps,
                                                                  int64_t ts) {
  // Retries what has no answer yet (no leader, a leader unreachable, a
  // partition error) for a while, as a leader may be moving.
  std::map<topic_partition, int64_t> out;
  std::vector<topic_partition> pending = tps;
  std::string last;
  for (int attempt = 0; attempt < 10 && !pending.empty(); ++attempt) {
    if (attempt > 0) sys::sleep_ms(config_.retry_backoff_ms);
    auto r = client::list_offsets(cluster_, pending, ts, config_.read_committed ? 1 : 0);
    if (!r) {
      last = r.err().message;
      continue;
    }
    std::vector<topic_partition> still;
    for (auto& tp : pending) {
      auto it = r->find(tp);
      if (it != r->end() && it->second.error_code == 0) {
        out[tp] = it->second.offset;
        continue;
      }
      still.push_back(tp);
      last = fmt::format("ListOffsets {}-{}: {}", tp.topic, tp.partition,
                         it == r->end() ? std::string("no answer") : describe_error(it->second.error_code));
    }
    pending = std::move(still);
  }
  if (!pending.empty()) return error{last};
  return out;
}

result<std::map<topic_partition, int64_t>> consumer::beginning_offsets(const std::vector<topic_partition>& tps) {
  return list_offsets(tps, earliest_timestamp);
}
result<std::map<topic_partition, int64_t>> consumer::end_offsets(const std::vector<topic_partition>& tps) {
  return list_offsets(tps, latest_timestamp);
}

result<void> consumer::reset_offsets(const std::vector<topic_partition>& tps, const std::string& policy) {
  if (tps.empty()) return ok();
  if (policy == "none")
    return error{fmt::format("no committed offset for {}-{} and auto.offset.reset=none", tps[0].topic,
                             tps[0].partition)};
  auto offs = list_offsets(tps, policy == "earliest" ? earliest_timestamp : latest_timestamp);
  if (!offs) return offs.err();
  for (auto& [tp, off] : offs.value()) seek(tp, off);
  return ok();
}

result<void> consumer::update_positions() {
  std::vector<topic_partition> missing;
  for (auto& [tp, s] : assigned_)
    if (!s.position) missing.push_back(tp);
  if (missing.empty()) return ok();
  if (!config_.group_id.empty()) {
    auto c = committed(missing);
    if (!c) return c.err();
    std::vector<topic_partition> still;
    for (auto& tp : missing) {
      auto it = c.value().find(tp);
      if (it != c.value().end()) seek(tp, it->second);
      else still.push_back(tp);
    }
    missing = std::move(still);
  }
  return reset_offsets(missing, config_.auto_offset_reset);
}

void consumer::seek(const topic_partition& tp, int64_t offset) {
  auto& s = assigned_[tp];
  s.position = offset;
  s.fetch_position = offset;
  s.buffered.clear();
}

result<void> consumer::seek_to_beginning(const std::vector<topic_partition>& tps) {
  auto offs = list_offsets(tps.empty() ? assignment() : tps, earliest_timestamp);
  if (!offs) return offs.err();
  for (auto& [tp, off] : offs.value()) seek(tp, off);
  return ok();
}

result<void> consumer::seek_to_end(const std::vector<topic_partition>& tps) {
  auto offs = list_offsets(tps.empty() ? assignment() : tps, latest_timestamp);
  if (!offs) return offs.err();
  for (auto& [tp, off] : offs.value()) seek(tp, off);
  return ok();
}

result<int64_t> consumer::position(const topic_partition& tp) {
  auto it = assigned_.find(tp);
  if (it == assigned_.end())
    return error{fmt::format("position(): {}-{} is not assigned to this consumer", tp.topic, tp.partition)};
  if (!it->second.position) {
    auto r = update_positions();
    if (!r) return r.err();
  }
  return *assigned_[tp].position;
}

// ---- fetching -------------------------------------------------------------------

result<void> consumer::fetch(int64_t max_wait_ms) {
  std::set<std::string> topics;
  for (auto& [tp, s] : assigned_) topics.insert(tp.topic);
  auto md = cluster_.metadata();
  bool need_refresh = false;
  std::map<int32_t, std::vector<topic_partition>> by_leader;
  for (auto& [tp, s] : assigned_) {
    if (!s.position || !s.buffered.empty()) continue;
    int32_t leader = -1;
    if (auto* t = md->topic(tp.topic))
      for (auto& p : t->partitions)
        if (p.partition == tp.partition) leader = p.leader;
    if (leader < 0) need_refresh = true;
    else by_leader[leader].push_back(tp);
  }
  if (need_refresh) {
    (void)cluster_.refresh(std::vector<std::string>(topics.begin(), topics.end()));
    if (by_leader.empty()) {
      sys::sleep_ms(std::min<int64_t>(max_wait_ms, config_.retry_backoff_ms));
      return ok();
    }
  }
  if (by_leader.empty()) {
    sys::sleep_ms(std::min<int64_t>(max_wait_ms, 10));
    return ok();
  }
  // With several leaders, do not let one long poll hold up the others.
  const int32_t wait = static_cast<int32_t>(by_leader.size() > 1 ? std::min<int64_t>(max_wait_ms, 50) : max_wait_ms);
  for (auto& [leader, tps] : by_leader) {
    pr::fetch_request req;
    req.replica_id = -1;
    req.max_wait_ms = wait;
    req.min_bytes = config_.fetch_min_bytes;
    req.max_bytes = config_.fetch_max_bytes;
    req.isolation_level = config_.read_committed ? 1 : 0;
    req.session_id = 0;
    req.session_epoch = -1;
    std::map<std::string, size_t> idx;
    for (auto& tp : tps) {
      auto [it, inserted] = idx.emplace(tp.topic, req.topics.size());
      if (inserted) req.topics.push_back({tp.topic, {}, {}});
      pr::fetch_request::fetch_partition fp;
      fp.partition = tp.partition;
      fp.current_leader_epoch = -1;
      fp.fetch_offset = assigned_[tp].fetch_position;
      fp.partition_max_bytes = config_.max_partition_fetch_bytes;
      req.topics[it->second].partitions.push_back(fp);
    }
    bytes frame;
    result<pr::fetch_response> resp = error{""};
    {
      // Hold the connection only for the call: handling the response may
      // need it again (offset resets, metadata).
      auto c = cluster_.node(leader);
      if (!c) {
        (void)cluster_.refresh(std::vector<std::string>(topics.begin(), topics.end()));
        return ok();
      }
      resp = (*c)->call(req, config_.request_timeout_ms + wait, &frame);
    }
    if (!resp) {
      (void)cluster_.refresh(std::vector<std::string>(topics.begin(), topics.end()));
      return ok();
    }
    if (resp->error_code != 0) return error{fmt::format("Fetch failed: {}", describe_error(resp->error_code))};
    std::vector<topic_partition> out_of_range;
    for (auto& t : resp->responses) {
      for (auto& p : t.partitions) {
        topic_partition tp{t.topic, p.partition_index};
        auto it = assigned_.find(tp);
        if (it == assigned_.end()) continue;
        auto& st = it->second;
        if (p.error_code == pr::code(E::offset_out_of_range)) {
          out_of_range.push_back(tp);
          continue;
        }
        if (p.error_code != 0) {
          if (p.error_code == pr::code(E::not_leader_or_follower) ||
              p.error_code == pr::code(E::unknown_topic_or_partition) || p.error_code == 74 || p.error_code == 75)
            (void)cluster_.refresh(std::vector<std::string>{tp.topic});
          continue;
        }
        if (p.records.is_null() || p.records.size() == 0) continue;
        aborted_filter aborted(p.aborted_transactions);
        pr::batch_iterator bi(p.records.view());
        pr::batch_header h;
        while (auto b = bi.next(&h)) {
          if (config_.check_crcs && !pr::crc_matches(*b))
            return error{fmt::format("corrupt batch at offset {} of {}-{}: CRC mismatch", h.base_offset, tp.topic,
                                     tp.partition)};
          if (aborted.skip(h, *b) || h.is_control()) {  // skip() sees the markers too
            st.fetch_position = std::max(st.fetch_position, h.next_offset());
            continue;
          }
          auto rr = pr::record_reader::open(*b);
          if (!rr) return error{fmt::format("cannot read batch of {}-{}: {}", tp.topic, tp.partition, rr.err().message)};
          pr::record_view rv;
          for (;;) {
            auto more = rr->next(rv);
            if (!more) return error{fmt::format("bad record in {}-{}: {}", tp.topic, tp.partition, more.err().message)};
            if (!more.value()) break;
            if (rv.offset < st.fetch_position) continue;
            consumer_record cr;
            cr.topic = tp.topic;
            cr.partition = tp.partition;
            cr.offset = rv.offset;
            cr.timestamp = rv.timestamp;
            cr.timestamp_type = h.ts_type();
            cr.leader_epoch = h.partition_leader_epoch;
            if (rv.key) cr.key = bytes(rv.key->begin(), rv.key->end());
            if (rv.value) cr.value = bytes(rv.value->begin(), rv.value->end());
            for (auto& hd : rv.headers)
              cr.headers.push_back({std::string(hd.key),
                                    hd.value ? std::optional<bytes>(bytes(hd.value->begin(), hd.value->end()))
                                             : std::nullopt});
            st.buffered.push_back(std::move(cr));
          }
          st.fetch_position = std::max(st.fetch_position, h.next_offset());
          st.leader_epoch = h.partition_leader_epoch;
        }
      }
    }
    if (!out_of_range.empty()) {
      auto r = reset_offsets(out_of_range, config_.auto_offset_reset);
      if (!r) return error{fmt::format("offset out of range for {}-{}: {}", out_of_range[0].topic,
                                       out_of_range[0].partition, r.err().message)};
    }
  }
  return ok();
}

result<std::vector<consumer_record>> consumer::poll(int64_t timeout_ms) {
  if (closed_) return error{"consumer is closed"};
  if (!subscribed_ && assigned_.empty() && subscription_.empty())
    return error{"poll(): not subscribed to any topic and no partitions assigned"};
  const int64_t deadline = sys::monotonic_ms() + std::max<int64_t>(0, timeout_ms);
  run_pending_async_commits();
  for (;;) {
    auto g = ensure_group(deadline);
    if (!g) return g.err();
    maybe_auto_commit(false);
    auto u = update_positions();
    if (!u) return u.err();
    // Hand out buffered records, starting at a rotating partition.
    std::vector<consumer_record> out;
    if (!assigned_.empty()) {
      std::vector<partition_state*> states;
      for (auto& [tp, s] : assigned_) states.push_back(&s);
      for (size_t i = 0; i < states.size() && out.size() < static_cast<size_t>(config_.max_poll_records); ++i) {
        auto* s = states[(next_partition_ + i) % states.size()];
        while (!s->buffered.empty() && out.size() < static_cast<size_t>(config_.max_poll_records)) {
          out.push_back(std::move(s->buffered.front()));
          s->buffered.pop_front();
          s->position = out.back().offset + 1;
        }
        if (s->buffered.empty()) s->position = std::max(*s->position, s->fetch_position);
      }
      next_partition_++;
    }
    if (!out.empty()) return out;
    const int64_t left = deadline - sys::monotonic_ms();
    if (left <= 0) return out;
    if (rejoin_needed_) continue;
    auto f = fetch(std::min<int64_t>(left, config_.fetch_max_wait_ms));
    if (!f) return f.err();
    // Skip past control batches and the like so position() moves on.
    for (auto& [tp, s] : assigned_)
      if (s.buffered.empty() && s.position && s.fetch_position > *s.position) s.position = s.fetch_position;
  }
}

void consumer::close() {
  if (closed_) return;
  closed_ = true;
  run_pending_async_commits();
  if (subscribed_) {
    maybe_auto_commit(true);
    std::vector<topic_partition> all;
    for (auto& [tp, s] : assigned_) all.push_back(tp);
    revoke(all, false);
    leave_group();
  } else if (!config_.group_id.empty() && config_.enable_auto_commit) {
    (void)commit(current_positions());
  }
  stop_heartbeat();
}

}  // namespace gregor::client
