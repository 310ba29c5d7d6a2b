#include "broker/replica_fetcher.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/partition_io.h"
#include "protocol/messages.h"
#include "runtime/backend.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
constexpr int16_t kFetchVersion = 12;
constexpr int64_t kAwaitMetadataMs = 100;  // a pause while leader and follower disagree on who leads  // replica_id, last_fetched_epoch and DivergingEpoch
auto lg() { return log::get("replication"); }

}  // namespace

void replica_fetchers::reconcile() {
  for (auto& [tp, r] : b_.partitions().replicas()) {
    if (!r.follower) continue;
    int32_t leader = r.follower->leader_id();
    if (running_[leader]) continue;
    running_[leader] = true;
    runtime::spawn(runtime::this_shard(), [this, leader] { return run(leader); });
  }
}

void replica_fetchers::close() {
  for (auto& [_, c] : clients_) c->close();
}

protocol::rpc_client* replica_fetchers::client_for(int32_t leader_id, const std::string& host, uint16_t port) {
  auto& c = clients_[leader_id];
  if (!c || c->host() != host || c->port() != port) {
    if (c) c->close();
    c = std::make_unique<protocol::rpc_client>(host, port, "replica-fetcher-" + std::to_string(b_.config().node_id));
  }
  return c.get();
}

bool replica_fetchers::apply_answer(int32_t leader_id, const std::vector<sent_partition>& sent,
                                    const result<bytes>& raw) {
  auto logger = lg();
  protocol::fetch_response resp;
  if (!raw) {
    logger->debug("fetch from broker {} failed: {}", leader_id, raw.err().message);
    return false;
  }
  protocol::wire_reader rd(raw.value());
  if (!resp.decode(rd, kFetchVersion) || !rd.ok()) {
    logger->warn("malformed Fetch response from broker {}", leader_id);
    return false;
  }
  if (resp.error_code != 0) {
    logger->debug("fetch from broker {} failed: {}", leader_id, protocol::error_name(resp.error_code));
    return false;
  }
  auto& pm = b_.partitions();
  const int64_t backoff = pm.effective_config().replica_fetch_backoff_ms;
  bool appended = false;
  for (auto& t : resp.responses) {
    for (auto& pd : t.partitions) {
      auto s = std::find_if(sent.begin(), sent.end(), [&](const sent_partition& x) {
        return x.tp.topic == t.topic && x.tp.partition == pd.partition_index;
      });
      if (s == sent.end()) continue;
      auto* r = pm.replica(t.topic, pd.partition_index);
      auto* plog = pm.find(t.topic, pd.partition_index);
      // The leadership or the log changed while the fetch was out: its
      // answer no longer applies.
      if (!r || !plog || !r->follower || r->follower->leader_id() != leader_id ||
          r->follower->leader_epoch() != s->leader_epoch || plog->log_end_offset() != s->log_end_offset)
        continue;
      replication::fetched_partition answer;
      answer.error = static_cast<error_code>(pd.error_code);
      answer.high_watermark = pd.high_watermark;
      answer.log_start_offset = pd.log_start_offset;
      if (pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0)
        answer.diverging_epoch = storage::epoch_end{pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset};
      answer.has_records = pd.records.size() > 0;
      auto action = r->follower->on_fetch(answer, plog->leader_epochs(), plog->log_end_offset());
      if (action.what == replication::follower_action::kind::await_metadata) {
        // The leader does not know it leads yet (its image is behind ours),
        // or ours is behind: either way the next image settles it soon.
        logger->debug("{}-{}: leader {} answered {}; fetching again in {} ms", t.topic, pd.partition_index,
                      leader_id, protocol::error_name(pd.error_code), kAwaitMetadataMs);
        r->fetch_paused_until_ms = runtime::monotonic_ms() + std::min(kAwaitMetadataMs, backoff);
        continue;
      }
      std::string failure = act(*r, *plog, action, pd.records);
      if (failure.empty()) failure = follow_log_start(*r, *plog, pd.log_start_offset);
      appended |= failure.empty() && action.what != replication::follower_action::kind::nothing;
      if (!failure.empty()) {
        logger->warn("{}-{}: {}{}{} (leader {}); fetching again in {} ms", t.topic, pd.partition_index, failure,
                     pd.error_code ? " " : "", pd.error_code ? protocol::error_name(pd.error_code) : "", leader_id,
                     backoff);
        r->fetch_paused_until_ms = runtime::monotonic_ms() + backoff;
      }
    }
  }
  // Consumers reading from this follower (KIP-392) wait for its high watermark.
  if (appended) b_.notify(broker::event::high_watermark);
  return true;
}

std::string replica_fetchers::follow_log_start(replica_state& r, storage::log& plog, int64_t leader_log_start) {
  // The leader's log start moved (DeleteRecords, retention): so does ours,
  // up to what we know is committed, so a later leader here does not serve
  // records the old one deleted.
  if (!r.follower) return {};
  int64_t target = std::min(leader_log_start, r.follower->high_watermark());
  if (target <= plog.log_start_offset()) return {};
  auto moved = plog.advance_log_start_offset(target);
  return moved ? std::string() : "cannot move the log start offset to " + std::to_string(target) + ": " +
                                     moved.err().message;
}

std::string replica_fetchers::act(replica_state& r, storage::log& plog, const replication::follower_action& action,
                                  const protocol::records& records) {
  using kind = replication::follower_action::kind;
  if (action.what == kind::append) {
    int64_t leo_before = plog.log_end_offset();
    auto appended = plog.append_as_follower(records.view(), runtime::wall_clock_ms());
    if (!appended && plog.log_end_offset() != leo_before) halt_on_log_failure(plog.dir(), appended.err().message);
    if (!appended) return "cannot append what the leader sent: " + appended.err().message;
    r.follower->after_append(plog.log_end_offset());
    return {};
  }
  if (action.what == kind::truncate || action.what == kind::restart_at) {
    bool restart = action.what == kind::restart_at;
    lg()->info("{}: {} at offset {} (log end {}, leader epoch {})", plog.dir(),
               restart ? "restarting the log empty" : "truncating", action.offset, plog.log_end_offset(),
               r.follower->leader_epoch());
    result<void> done = ok();
    if (restart) done = plog.truncate_fully_and_start_at(action.offset);
    else done = plog.truncate_to(action.offset);  // also at the log end: it trims the epoch cache
    // Half done, the log is in a state the epochs no longer describe: stop, as for a failed append.
    if (!done) halt_on_log_failure(plog.dir(), "truncation failed: " + done.err().message);
    if (!done) return "truncation failed: " + done.err().message;
    r.follower->after_truncate(plog.log_end_offset());
    return {};
  }
  if (action.what == kind::retry) return "the leader answered an error";
  return {};
}

replica_fetchers::fetch_round replica_fetchers::next_round(int32_t leader_id) {
  auto& pm = b_.partitions();
  const broker_config& cfg = pm.effective_config();
  const int64_t now = runtime::monotonic_ms();
  fetch_round round;
  auto& req = round.request;
  req.replica_id = b_.config().node_id;
  req.max_wait_ms = cfg.replica_fetch_wait_max_ms;
  req.min_bytes = cfg.replica_fetch_min_bytes;
  req.max_bytes = cfg.replica_fetch_response_max_bytes;
  req.session_epoch = -1;  // no incremental fetch session: every fetch names every partition
  req.rack_id = cfg.broker_rack.value_or("");
  for (auto& [tp, r] : pm.replicas()) {
    if (!r.follower || r.follower->leader_id() != leader_id) continue;
    round.follows_any = true;
    if (r.fetch_paused_until_ms > now) {
      round.resume_in_ms = std::min(round.resume_in_ms, r.fetch_paused_until_ms - now);
      continue;
    }
    auto* log = pm.find(tp.topic, tp.partition);
    if (!log) continue;
    auto pos = r.follower->next_fetch(log->log_end_offset(), log->leader_epochs().latest_epoch());
    if (req.topics.empty() || req.topics.back().topic != tp.topic) req.topics.emplace_back().topic = tp.topic;
    auto& fp = req.topics.back().partitions.emplace_back();
    fp.partition = tp.partition;
    fp.current_leader_epoch = pos.current_leader_epoch;
    fp.fetch_offset = pos.fetch_offset;
    fp.last_fetched_epoch = pos.last_fetched_epoch;
    fp.log_start_offset = log->log_start_offset();
    fp.partition_max_bytes = cfg.replica_fetch_max_bytes;
    round.sent.push_back({tp, r.follower->leader_epoch(), log->log_end_offset()});
  }
  if (auto* reg = b_.image()->broker(leader_id))
    if (auto* ep = reg->endpoint(cfg.inter_broker_listener_name)) round.client = client_for(leader_id, ep->host, static_cast<uint16_t>(ep->port));
  return round;
}

runtime::task<void> replica_fetchers::run(int32_t leader_id) {
  log::get("replication")->info("fetching from broker {}", leader_id);
  while (!b_.stopping()) {
    auto round = next_round(leader_id);
    if (!round.follows_any) break;  // nothing here follows this leader any more
    const int64_t backoff = b_.partitions().effective_config().replica_fetch_backoff_ms;
    if (round.sent.empty() || !round.client) {
      co_await runtime::sleep_for(std::clamp<int64_t>(round.resume_in_ms, 1, backoff));
      continue;
    }
    iobuf body;
    protocol::wire_writer w(body);
    round.request.encode(w, kFetchVersion);
    // The records in the answer point into `raw`, which lives until they are written.
    auto raw = co_await round.client->call_raw(
        protocol::fetch_request::api_key, kFetchVersion, std::move(body),
        b_.partitions().effective_config().replica_socket_timeout_ms + round.request.max_wait_ms);
    if (b_.stopping()) break;
    if (!apply_answer(leader_id, round.sent, raw)) co_await runtime::sleep_for(backoff);
  }
  running_[leader_id] = false;
  if (auto c = clients_.find(leader_id); c != clients_.end()) {
    c->second->close();
    clients_.erase(c);
  }
  log::get("replication")->info("stopped fetching from broker {}", leader_id);
}

}  // namespace gregor::broker
