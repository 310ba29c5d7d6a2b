#include "raft/driver.h"

#include <algorithm>

#include "base/log.h"
#include "protocol/record_batch.h"
#include "raft/quorum_state.h"
#include "runtime/backend.h"
#include "runtime/random.h"

namespace gregor::raft {

using protocol::code;
using protocol::error_code;

namespace {

constexpr int16_t kVoteVersion = 2;
constexpr int16_t kBeginEpochVersion = 1;
constexpr int16_t kEndEpochVersion = 1;
constexpr int16_t kFetchVersion = 12;
constexpr int16_t kFetchSnapshotVersion = 1;

auto lg() { return log::get("raft"); }

error_code err(int16_t c) { return static_cast<error_code>(c); }

bytes records_bytes(const protocol::records& r) {
  if (r.is_null()) return {};
  if (r.is_contiguous()) {
    auto v = r.view();
    return bytes(v.begin(), v.end());
  }
  bytes out;
  for (auto& c : r.data()->chunks()) {
    auto& b = std::get<bytes>(c);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// The error, leader and epoch of an answer about the one partition asked
// for (Vote, BeginQuorumEpoch and EndQuorumEpoch answers share this shape).
template <class Out, class Wire>
Out partition_answer(const Wire& r) {
  Out out;
  out.error = err(r.error_code);
  if (!r.topics.empty() && !r.topics[0].partitions.empty()) {
    auto& rp = r.topics[0].partitions[0];
    if (out.error == error_code::none) out.error = err(rp.error_code);
    out.leader_id = rp.leader_id;
    out.leader_epoch = rp.leader_epoch;
  }
  return out;
}

}  // namespace

struct driver::pending_reply {
  runtime::notifier wake;
  std::optional<response> msg;
};

driver::driver(driver_config config, std::unique_ptr<raft_log> log, election_state persisted)
    : config_(std::move(config)), log_(std::move(log)) {
  core_config cc;
  cc.node_id = config_.node_id;
  for (auto& v : config_.voters) cc.voters.push_back(v.id);
  cc.election_timeout_ms = config_.election_timeout_ms;
  cc.election_backoff_max_ms = config_.election_backoff_max_ms;
  cc.fetch_timeout_ms = config_.fetch_timeout_ms;
  cc.retry_backoff_ms = config_.retry_backoff_ms;
  log_shape shape;
  shape.log_start_offset = log_->log_start_offset();
  shape.log_end_offset = log_->log_end_offset();
  for (auto& e : log_->epochs()) shape.epochs.push_back({e.epoch, e.start_offset});
  if (auto s = log_->latest_snapshot()) shape.latest_snapshot = offset_and_epoch{s->end_offset, s->epoch};
  core_ = std::make_unique<core>(cc, persisted, shape, runtime::monotonic_ms(), [] { return runtime::random_u64(); });
}

driver::~driver() = default;

result<std::unique_ptr<driver>> driver::open(driver_config config, bool recover) {
  auto log = raft_log::open(config.metadata_log_dir, recover, runtime::wall_clock_ms());
  if (!log) return log.err();
  auto state = read_quorum_state(log.value()->dir());
  if (!state) return state.err();
  election_state persisted;
  if (state.value()) {
    persisted.epoch = state.value()->leader_epoch;
    persisted.voted_id = state.value()->voted_id;
    persisted.leader_id = state.value()->leader_id;
  }
  auto d = std::unique_ptr<driver>(new driver(std::move(config), std::move(log.value()), persisted));
  lg()->info("metadata quorum: node {} in epoch {} ({}), log {}..{}, voters {}", d->config_.node_id, persisted.epoch,
             d->core_->is_voter() ? "a voter" : "an observer", d->log_->log_start_offset(), d->log_->log_end_offset(),
             [&] {
               std::string s;
               for (auto& v : d->config_.voters) s += (s.empty() ? "" : ",") + std::to_string(v.id);
               return s;
             }());
  return d;
}

const voter_endpoint* driver::voter(int32_t id) const {
  for (auto& v : config_.voters)
    if (v.id == id) return &v;
  return nullptr;
}

void driver::start() {
  if (started_) return;
  started_ = true;
  apply();  // what the core decided at construction (a restart as follower sends a fetch)
  runtime::spawn(runtime::this_shard(), [this] { return run(); });
}

runtime::task<void> driver::shutdown() {
  if (stopping_) co_return;
  if (core_->is_leader() && config_.voters.size() > 1) {
    core_->resign(now());
    apply();
    // Let EndQuorumEpoch reach the others: they elect at once instead of
    // waiting for a fetch timeout.
    co_await runtime::sleep_for(std::min<int64_t>(config_.request_timeout_ms, 200));
  }
  stopping_ = true;
  for (auto& [_, c] : clients_) c->close();
  for (auto& [_, r] : replies_) r->wake.notify_all();
  wake_.notify_all();
  changed_.notify_all();
  if (auto r = log_->close(); !r) lg()->error("closing the metadata log: {}", r.err().message);
}

runtime::task<void> driver::run() {
  while (!stopping_) {
    int64_t wait = std::clamp<int64_t>(core_->next_deadline_ms() - now(), 0, 1000);
    if (wait > 0) co_await wake_.wait_for(wait);
    else co_await runtime::yield();  // never starve the shard, whatever the core says
    if (stopping_) break;
    core_->tick(now());
    apply();
  }
}

runtime::task<void> driver::wait_for_change(uint64_t seen, int64_t timeout_ms) {
  if (changes_ != seen || stopping_) {
    co_await runtime::yield();  // a caller looping on changes never starves the shard
    co_return;
  }
  co_await changed_.wait_for(timeout_ms);
}

// ---- applying what the core decided

result<void> driver::apply_log(const log_op& op, int64_t wall_ms) {
  switch (op.what) {
    case log_op::kind::append_records: {
      auto last = log_->append_records(op.epoch, op.records, wall_ms);
      if (!last) return last.err();
      GREGOR_ASSERT(last.value() == op.offset + static_cast<int64_t>(op.records.size()) - 1,
                    "metadata log appended at {}, the quorum expected {}", last.value(), op.offset);
      return ok();
    }
    case log_op::kind::append_leader_change: {
      protocol::leader_change_message m;
      m.version = 0;
      m.leader_id = op.leader_id;
      for (int32_t v : op.voters) m.voters.push_back({v, {}});
      iobuf buf;
      protocol::wire_writer w(buf);
      m.encode(w, 0);
      bytes value;
      for (auto& c : buf.chunks()) {
        auto& b = std::get<bytes>(c);
        value.insert(value.end(), b.begin(), b.end());
      }
      auto at = log_->append_control(op.epoch, control_type::leader_change, std::move(value), wall_ms);
      if (!at) return at.err();
      GREGOR_ASSERT(at.value() == op.offset, "LeaderChange record at {}, the quorum expected {}", at.value(), op.offset);
      return ok();
    }
    case log_op::kind::append_batches: return log_->append_as_follower(*op.data, wall_ms);
    case log_op::kind::truncate_to: {
      auto l = lg();
      l->info("truncating the metadata log to offset {} (it diverged from the leader's)", op.offset);
      return log_->truncate_to(op.offset);
    }
    case log_op::kind::write_snapshot_chunk:
      return log_->write_snapshot_chunk({op.snapshot.offset, op.snapshot.epoch}, op.offset, *op.data);
    case log_op::kind::install_snapshot: {
      auto l = lg();
      l->info("installing the leader's snapshot up to offset {} (epoch {})", op.snapshot.offset, op.snapshot.epoch);
      ++snapshot_installs_;
      return log_->install_snapshot({op.snapshot.offset, op.snapshot.epoch}, wall_ms);
    }
    case log_op::kind::delete_before: return log_->delete_before({op.snapshot.offset, op.snapshot.epoch});
  }
  return ok();
}

void driver::apply() {
  if (stopping_) return;
  ready r = core_->take_ready();
  if (r.empty()) return;
  const int64_t wall = runtime::wall_clock_ms();
  // 1. What this node promised (its vote, its epoch) is on disk before anyone hears of it.
  if (r.persist) {
    quorum_state s;
    s.leader_epoch = r.persist->epoch;
    s.leader_id = r.persist->leader_id;
    s.voted_id = r.persist->voted_id;
    for (auto& v : config_.voters) s.voters.push_back(v.id);
    if (auto w = write_quorum_state(log_->dir(), s); !w) {
      runtime::current().halt("cannot write the quorum-state file: " + w.err().message);
      stopping_ = true;
      return;
    }
  }
  // 2. The log, fsynced.
  if (!r.log.empty()) {
    for (auto& op : r.log) {
      if (auto w = apply_log(op, wall); !w) {
        runtime::current().halt("the metadata log failed: " + w.err().message);
        stopping_ = true;
        return;
      }
    }
    if (auto f = log_->flush(); !f) {
      runtime::current().halt("cannot fsync the metadata log: " + f.err().message);
      stopping_ = true;
      return;
    }
  }
  // 3. Only now do others hear from us.
  for (auto& resp : r.responses) {
    auto it = replies_.find(resp.token);
    if (it == replies_.end()) continue;
    it->second->msg = std::move(resp.msg);
    it->second->wake.notify_all();
  }
  for (auto& req : r.requests) runtime::spawn(runtime::this_shard(), [this, req = std::move(req)]() mutable {
    return send(std::move(req));
  });
  if (r.leader_changed || r.high_watermark_changed || r.log.size() > 0) {
    if (r.leader_changed)
      lg()->info("metadata quorum: epoch {}, leader {} ({} here)", core_->epoch(), core_->leader_id(),
                 role_name(core_->current_role()));
    ++changes_;
    changed_.notify_all();
  }
  wake_.notify_all();
}

// ---- proposals and reads

result<int64_t> driver::append(std::vector<bytes> records) {
  if (stopping_) return error{"the metadata quorum is shutting down"};
  auto last = core_->propose(std::move(records), now());
  if (!last) return error{"this node is not the active controller"};
  apply();
  if (stopping_) return error{"the metadata log failed"};
  return *last;
}

result<bytes> driver::read_committed(int64_t offset, int32_t max_bytes) {
  int64_t hw = core_->high_watermark();
  if (hw <= offset) return bytes{};
  return log_->read(offset, max_bytes, hw);
}

result<void> driver::snapshot_written(offset_and_epoch id, bytes_view content) {
  if (auto w = log_->write_snapshot({id.offset, id.epoch}, content); !w) return w;
  core_->snapshot_written(id);
  apply();
  return ok();
}

// ---- outbound requests

protocol::rpc_client* driver::client(int32_t to) {
  auto it = clients_.find(to);
  if (it != clients_.end()) return it->second.get();
  auto* v = voter(to);
  if (!v || v->host.empty()) return nullptr;
  auto c = std::make_unique<protocol::rpc_client>(v->host, v->port, "raft-client-" + std::to_string(config_.node_id));
  auto* raw = c.get();
  clients_[to] = std::move(c);
  return raw;
}

fetch_response driver::from_wire(const protocol::fetch_response& wire) {
  fetch_response out;
  if (wire.error_code != 0) {
    out.error = err(wire.error_code);
    return out;
  }
  if (wire.responses.empty() || wire.responses[0].partitions.empty()) {
    out.error = error_code::unknown_server_error;
    return out;
  }
  auto& p = wire.responses[0].partitions[0];
  out.error = err(p.error_code);
  out.leader_id = p.current_leader.leader_id;
  out.leader_epoch = p.current_leader.leader_epoch;
  out.high_watermark = p.high_watermark;
  out.log_start_offset = p.log_start_offset;
  if (p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0)
    out.diverging_epoch = offset_and_epoch{p.diverging_epoch.end_offset, p.diverging_epoch.epoch};
  if (p.snapshot_id.end_offset >= 0 && p.snapshot_id.epoch >= 0)
    out.snapshot_id = offset_and_epoch{p.snapshot_id.end_offset, p.snapshot_id.epoch};
  auto data = std::make_shared<bytes>(records_bytes(p.records));
  protocol::batch_iterator it{bytes_view(*data)};
  protocol::batch_header h;
  size_t whole = 0;
  while (it.next(&h)) {
    out.batches.push_back({h.base_offset, h.last_offset(), std::max(h.partition_leader_epoch, 0)});
    whole += h.size_bytes();
  }
  data->resize(whole);  // whole batches only; a cut-off one comes again next time
  out.records = data;
  return out;
}

runtime::task<void> driver::send(outbound_request req) {
  auto* c = client(req.to);
  auto fail = [&](const std::string& why) {
    if (stopping_) return;
    lg()->debug("request to voter {} failed: {}", req.to, why);
    core_->handle_request_failure(req.to, req.id, now());
    apply();
  };
  if (!c) {
    fail("no endpoint for node " + std::to_string(req.to) + " in controller.quorum.voters");
    co_return;
  }
  const auto timeout = config_.request_timeout_ms;
  const std::optional<std::string> cluster = config_.cluster_id;
  // Each API: encode, call, decode, hand back.
  auto deliver = [&](response r, int16_t top_level_error) {
    if (stopping_) return;
    if (err(top_level_error) == error_code::inconsistent_cluster_id) {
      if (!refused_[req.to])
        lg()->error("voter {} refuses this node: it belongs to another cluster than {} (check cluster.id and the "
                    "log dirs' meta.properties)",
                    req.to, config_.cluster_id);
      refused_[req.to] = true;
      core_->handle_request_failure(req.to, req.id, now());
      apply();
      return;
    }
    core_->handle_response(req.to, req.id, r, now());
    apply();
  };
  if (auto* v = std::get_if<vote_request>(&req.msg)) {
    protocol::vote_request w;
    w.cluster_id = cluster;
    w.voter_id = req.to;
    auto& t = w.topics.emplace_back();
    t.topic_name = metadata_topic;
    auto& p = t.partitions.emplace_back();
    p.candidate_epoch = v->candidate_epoch;
    p.candidate_id = v->candidate_id;
    p.last_offset_epoch = v->last_log.epoch;
    p.last_offset = v->last_log.offset;
    p.pre_vote = v->pre_vote;
    auto r = co_await c->call<protocol::vote_response>(w, kVoteVersion, timeout);
    if (!r) co_return fail(r.err().message);
    auto out = partition_answer<vote_response>(*r);
    if (!r->topics.empty() && !r->topics[0].partitions.empty()) out.vote_granted = r->topics[0].partitions[0].vote_granted;
    deliver(out, r->error_code);
  } else if (auto* b = std::get_if<begin_epoch_request>(&req.msg)) {
    protocol::begin_quorum_epoch_request w;
    w.cluster_id = cluster;
    w.voter_id = req.to;
    auto& t = w.topics.emplace_back();
    t.topic_name = metadata_topic;
    auto& p = t.partitions.emplace_back();
    p.leader_id = b->leader_id;
    p.leader_epoch = b->leader_epoch;
    if (auto* me = voter(config_.node_id); me && !me->host.empty())
      w.leader_endpoints.push_back({config_.controller_listener, me->host, me->port, {}});
    auto r = co_await c->call<protocol::begin_quorum_epoch_response>(w, kBeginEpochVersion, timeout);
    if (!r) co_return fail(r.err().message);
    deliver(partition_answer<begin_epoch_response>(*r), r->error_code);
  } else if (auto* e = std::get_if<end_epoch_request>(&req.msg)) {
    protocol::end_quorum_epoch_request w;
    w.cluster_id = cluster;
    auto& t = w.topics.emplace_back();
    t.topic_name = metadata_topic;
    auto& p = t.partitions.emplace_back();
    p.leader_id = e->leader_id;
    p.leader_epoch = e->leader_epoch;
    for (int32_t s : e->preferred_successors) p.preferred_candidates.push_back({s, {}, {}});
    auto r = co_await c->call<protocol::end_quorum_epoch_response>(w, kEndEpochVersion, timeout);
    if (!r) co_return fail(r.err().message);
    deliver(partition_answer<end_epoch_response>(*r), r->error_code);
  } else if (auto* f = std::get_if<fetch_request>(&req.msg)) {
    protocol::fetch_request w;
    w.cluster_id = cluster;
    w.replica_id = f->replica_id;
    w.max_wait_ms = f->max_wait_ms;
    w.min_bytes = 1;
    w.max_bytes = core_->config().fetch_max_bytes;
    auto& t = w.topics.emplace_back();
    t.topic = metadata_topic;
    auto& p = t.partitions.emplace_back();
    p.partition = 0;
    p.current_leader_epoch = f->current_leader_epoch;
    p.fetch_offset = f->fetch_offset;
    p.last_fetched_epoch = f->last_fetched_epoch;
    p.partition_max_bytes = core_->config().fetch_max_bytes;
    iobuf body;
    protocol::wire_writer bw(body);
    w.encode(bw, kFetchVersion);
    // The long poll may take max_wait_ms on top of the usual round trip.
    auto raw = co_await c->call_raw(protocol::fetch_request::api_key, kFetchVersion, std::move(body),
                                    timeout + f->max_wait_ms);
    if (!raw) co_return fail(raw.err().message);
    protocol::fetch_response r;
    protocol::wire_reader rd(raw.value());
    if (!r.decode(rd, kFetchVersion) || !rd.ok()) co_return fail("malformed Fetch response");
    deliver(from_wire(r), r.error_code);
  } else if (auto* s = std::get_if<fetch_snapshot_request>(&req.msg)) {
    protocol::fetch_snapshot_request w;
    w.cluster_id = cluster;
    w.replica_id = s->replica_id;
    w.max_bytes = s->max_bytes;
    auto& t = w.topics.emplace_back();
    t.name = metadata_topic;
    auto& p = t.partitions.emplace_back();
    p.partition = 0;
    p.current_leader_epoch = s->current_leader_epoch;
    p.snapshot_id.end_offset = s->snapshot_id.offset;
    p.snapshot_id.epoch = s->snapshot_id.epoch;
    p.position = s->position;
    iobuf body;
    protocol::wire_writer bw(body);
    w.encode(bw, kFetchSnapshotVersion);
    auto raw = co_await c->call_raw(protocol::fetch_snapshot_request::api_key, kFetchSnapshotVersion, std::move(body),
                                    timeout);
    if (!raw) co_return fail(raw.err().message);
    protocol::fetch_snapshot_response r;
    protocol::wire_reader rd(raw.value());
    if (!r.decode(rd, kFetchSnapshotVersion) || !rd.ok()) co_return fail("malformed FetchSnapshot response");
    fetch_snapshot_response out;
    out.error = err(r.error_code);
    if (!r.topics.empty() && !r.topics[0].partitions.empty()) {
      auto& rp = r.topics[0].partitions[0];
      if (out.error == error_code::none) out.error = err(rp.error_code);
      out.leader_id = rp.current_leader.leader_id;
      out.leader_epoch = rp.current_leader.leader_epoch;
      out.snapshot_id = {rp.snapshot_id.end_offset, rp.snapshot_id.epoch};
      out.position = rp.position;
      out.snapshot_size = rp.snapshot_size;
      out.chunk = std::make_shared<const bytes>(records_bytes(rp.unaligned_records));
    }
    deliver(out, r.error_code);
  }
}

// ---- inbound requests

runtime::task<response> driver::ask_core(int32_t from, request r) {
  // The slot exists before the core runs: it may answer at once, in apply().
  uint64_t token = next_token_++;
  auto slot = std::make_shared<pending_reply>();
  replies_[token] = slot;
  core_->handle_request(from, token, r, now());
  apply();
  // A parked fetch waits at most its max wait; the bound only guards a bug.
  for (int i = 0; i < 60 && !slot->msg && !stopping_; ++i) co_await slot->wake.wait_for(1000);
  replies_.erase(token);
  if (!slot->msg) co_return response{fetch_response{error_code::not_leader_or_follower}};
  co_return std::move(*slot->msg);
}

bool driver::refused_by_every_other_voter() const {
  size_t others = 0;
  for (auto& v : config_.voters) {
    if (v.id == config_.node_id) continue;
    ++others;
    auto it = refused_.find(v.id);
    if (it == refused_.end() || !it->second) return false;
  }
  return others > 0;
}

bool driver::same_cluster(const std::optional<std::string>& theirs, const char* api, int32_t from) {
  if (!theirs || *theirs == config_.cluster_id) return true;
  // Said once per node (at debug level after that): it repeats every election.
  auto level = refused_inbound_[from]++ == 0 ? spdlog::level::warn : spdlog::level::debug;
  lg()->log(level, "refusing {} from node {}: it belongs to cluster {}, this node to cluster {} (give every node the "
                   "same cluster.id)",
            api, from, *theirs, config_.cluster_id);
  return false;
}

runtime::task<protocol::vote_response> driver::handle_vote(const protocol::vote_request& req, int16_t version) {
  protocol::vote_response out;
  if (req.topics.empty() || req.topics[0].partitions.empty()) {
    out.error_code = code(error_code::invalid_request);
    co_return out;
  }
  auto& p = req.topics[0].partitions[0];
  if (!same_cluster(req.cluster_id, "Vote", p.candidate_id)) {
    out.error_code = code(error_code::inconsistent_cluster_id);
    co_return out;
  }
  vote_request v{p.candidate_epoch, p.candidate_id, {p.last_offset, p.last_offset_epoch}, version >= 2 && p.pre_vote};
  auto r = co_await ask_core(p.candidate_id, v);
  auto* vr = std::get_if<vote_response>(&r);
  auto& t = out.topics.emplace_back();
  t.topic_name = metadata_topic;
  auto& rp = t.partitions.emplace_back();
  if (vr) {
    rp.error_code = code(vr->error);
    rp.leader_id = vr->leader_id;
    rp.leader_epoch = vr->leader_epoch;
    rp.vote_granted = vr->vote_granted;
  } else {
    rp.error_code = code(error_code::unknown_server_error);
  }
  co_return out;
}

runtime::task<protocol::begin_quorum_epoch_response> driver::handle_begin_quorum_epoch(
    const protocol::begin_quorum_epoch_request& req, int16_t) {
  protocol::begin_quorum_epoch_response out;
  if (req.topics.empty() || req.topics[0].partitions.empty()) {
    out.error_code = code(error_code::invalid_request);
    co_return out;
  }
  auto& p = req.topics[0].partitions[0];
  if (!same_cluster(req.cluster_id, "BeginQuorumEpoch", p.leader_id)) {
    out.error_code = code(error_code::inconsistent_cluster_id);
    co_return out;
  }
  auto r = co_await ask_core(p.leader_id, begin_epoch_request{p.leader_id, p.leader_epoch});
  auto& t = out.topics.emplace_back();
  t.topic_name = metadata_topic;
  auto& rp = t.partitions.emplace_back();
  if (auto* br = std::get_if<begin_epoch_response>(&r)) {
    rp.error_code = code(br->error);
    rp.leader_id = br->leader_id;
    rp.leader_epoch = br->leader_epoch;
  }
  co_return out;
}

runtime::task<protocol::end_quorum_epoch_response> driver::handle_end_quorum_epoch(
    const protocol::end_quorum_epoch_request& req, int16_t version) {
  protocol::end_quorum_epoch_response out;
  if (req.topics.empty() || req.topics[0].partitions.empty()) {
    out.error_code = code(error_code::invalid_request);
    co_return out;
  }
  auto& p = req.topics[0].partitions[0];
  if (!same_cluster(req.cluster_id, "EndQuorumEpoch", p.leader_id)) {
    out.error_code = code(error_code::inconsistent_cluster_id);
    co_return out;
  }
  end_epoch_request e{p.leader_id, p.leader_epoch, {}};
  if (version >= 1)
    for (auto& c : p.preferred_candidates) e.preferred_successors.push_back(c.candidate_id);
  else
    e.preferred_successors = p.preferred_successors;
  auto r = co_await ask_core(p.leader_id, e);
  auto& t = out.topics.emplace_back();
  t.topic_name = metadata_topic;
  auto& rp = t.partitions.emplace_back();
  if (auto* er = std::get_if<end_epoch_response>(&r)) {
    rp.error_code = code(er->error);
    rp.leader_id = er->leader_id;
    rp.leader_epoch = er->leader_epoch;
  }
  co_return out;
}

runtime::task<protocol::fetch_response> driver::handle_fetch(const protocol::fetch_request& req, int16_t) {
  protocol::fetch_response out;
  if (req.topics.empty() || req.topics[0].partitions.empty() || req.topics[0].topic != metadata_topic) {
    out.error_code = code(error_code::invalid_request);
    co_return out;
  }
  auto& p = req.topics[0].partitions[0];
  if (!same_cluster(req.cluster_id, "Fetch", req.replica_id)) {
    out.error_code = code(error_code::inconsistent_cluster_id);
    co_return out;
  }
  fetch_request f{req.replica_id, p.current_leader_epoch, p.fetch_offset, std::max(p.last_fetched_epoch, 0),
                  req.max_wait_ms};
  auto r = co_await ask_core(req.replica_id, f);
  auto& t = out.responses.emplace_back();
  t.topic = metadata_topic;
  auto& rp = t.partitions.emplace_back();
  rp.partition_index = 0;
  auto* fr = std::get_if<fetch_response>(&r);
  if (!fr) {
    rp.error_code = code(error_code::unknown_server_error);
    co_return out;
  }
  rp.error_code = code(fr->error);
  rp.high_watermark = std::max<int64_t>(fr->high_watermark, 0);
  rp.log_start_offset = fr->log_start_offset;
  rp.current_leader.leader_id = fr->leader_id;
  rp.current_leader.leader_epoch = fr->leader_epoch;
  if (fr->diverging_epoch) {
    rp.diverging_epoch.epoch = fr->diverging_epoch->epoch;
    rp.diverging_epoch.end_offset = fr->diverging_epoch->offset;
  }
  if (fr->snapshot_id) {
    rp.snapshot_id.end_offset = fr->snapshot_id->offset;
    rp.snapshot_id.epoch = fr->snapshot_id->epoch;
  }
  if (fr->read_from >= 0 && !stopping_) {
    auto data = log_->read(fr->read_from, fr->read_max_bytes, INT64_MAX);
    if (data) rp.records.set_bytes(std::move(data.value()));
    else lg()->error("reading the metadata log for a fetch at {}: {}", fr->read_from, data.err().message);
  }
  co_return out;
}

runtime::task<protocol::fetch_snapshot_response> driver::handle_fetch_snapshot(
    const protocol::fetch_snapshot_request& req, int16_t) {
  protocol::fetch_snapshot_response out;
  if (req.topics.empty() || req.topics[0].partitions.empty()) {
    out.error_code = code(error_code::invalid_request);
    co_return out;
  }
  auto& p = req.topics[0].partitions[0];
  if (!same_cluster(req.cluster_id, "FetchSnapshot", req.replica_id)) {
    out.error_code = code(error_code::inconsistent_cluster_id);
    co_return out;
  }
  fetch_snapshot_request f{req.replica_id, p.current_leader_epoch, {p.snapshot_id.end_offset, p.snapshot_id.epoch},
                           p.position, req.max_bytes};
  auto r = co_await ask_core(req.replica_id, f);
  auto& t = out.topics.emplace_back();
  t.name = metadata_topic;
  auto& rp = t.partitions.emplace_back();
  auto* sr = std::get_if<fetch_snapshot_response>(&r);
  if (!sr) {
    rp.error_code = code(error_code::unknown_server_error);
    co_return out;
  }
  rp.error_code = code(sr->error);
  rp.snapshot_id.end_offset = sr->snapshot_id.offset;
  rp.snapshot_id.epoch = sr->snapshot_id.epoch;
  rp.current_leader.leader_id = sr->leader_id;
  rp.current_leader.leader_epoch = sr->leader_epoch;
  rp.position = sr->position;
  if (sr->error == error_code::none && sr->read_max_bytes > 0) {
    snapshot_id id{sr->snapshot_id.offset, sr->snapshot_id.epoch};
    auto size = log_->snapshot_size(id);
    if (!size) {
      rp.error_code = code(error_code::snapshot_not_found);
      co_return out;
    }
    rp.snapshot_size = size.value();
    if (sr->position > size.value()) {
      rp.error_code = code(error_code::position_out_of_range);
      co_return out;
    }
    auto chunk = log_->read_snapshot(id, sr->position, sr->read_max_bytes);
    if (!chunk) {
      rp.error_code = code(error_code::unknown_server_error);
      co_return out;
    }
    rp.unaligned_records.set_bytes(std::move(chunk.value()));
  }
  co_return out;
}

protocol::describe_quorum_response driver::describe_quorum(int16_t version) {
  protocol::describe_quorum_response out;
  auto& t = out.topics.emplace_back();
  t.topic_name = metadata_topic;
  auto& p = t.partitions.emplace_back();
  if (!core_->is_leader()) {
    p.error_code = code(error_code::not_leader_or_follower);
    if (version >= 2) p.error_message = "this node does not lead the metadata quorum";
    p.leader_id = core_->leader_id();
    p.leader_epoch = core_->epoch();
    return out;
  }
  const int64_t mono = now(), wall = runtime::wall_clock_ms();
  auto to_wall = [&](int64_t t) { return t < 0 ? int64_t{-1} : wall - (mono - t); };
  auto d = core_->describe(mono);
  p.leader_id = d.leader_id;
  p.leader_epoch = d.leader_epoch;
  p.high_watermark = d.high_watermark;
  for (auto& v : d.voters)
    p.current_voters.push_back({v.id, {}, v.log_end_offset, to_wall(v.last_fetch_ms), to_wall(v.last_caught_up_ms), {}});
  for (auto& o : d.observers)
    p.observers.push_back({o.id, {}, o.log_end_offset, to_wall(o.last_fetch_ms), to_wall(o.last_caught_up_ms), {}});
  if (version >= 2) {
    for (auto& v : config_.voters) {
      auto& n = out.nodes.emplace_back();
      n.node_id = v.id;
      if (!v.host.empty()) n.listeners.push_back({config_.controller_listener, v.host, v.port, {}});
    }
  }
  return out;
}

}  // namespace gregor::raft
