#include "metadata/controller_service.h"

#include "base/log.h"
#include "runtime/backend.h"

namespace gregor::metadata {

using protocol::error_code;

namespace {
auto lg() { return log::get("controller"); }
decision not_controller() {
  return {error_code::not_controller, "This is not the correct controller for this cluster."};
}

// Kafka logs every unclean election: it is where acknowledged data may go.
void warn_unclean(const unclean_election& e) {
  std::string isr;
  for (int32_t r : e.previous_isr) isr += (isr.empty() ? "" : ", ") + std::to_string(r);
  lg()->warn(
      "unclean leader election for {}-{}: broker {} leads from outside the ISR [{}] "
      "(unclean.leader.election.enable); records acknowledged by the ISR may be lost",
      e.topic, e.partition, e.leader, isr);
}
}  // namespace

controller_service::controller_service(controller_settings settings, raft::driver& quorum, loader& loader)
    : settings_(std::move(settings)), quorum_(quorum), loader_(loader) {}

void controller_service::start() {
  runtime::spawn(runtime::this_shard(), [this] { return maintenance_loop(); });
}

void controller_service::stop() {
  stopping_ = true;
  applied_.notify_all();
  turn_.notify_all();
}

bool controller_service::active() const {
  return !stopping_ && quorum_.is_leader() && loader_.applied_offset() > quorum_.state().epoch_start_offset();
}

void controller_service::became_active() {
  // Heartbeats went to the previous controller: every broker starts with a
  // full session here.
  int64_t now = runtime::monotonic_ms();
  last_heartbeat_ms_.clear();
  for (auto& [id, _] : loader_.current()->brokers) last_heartbeat_ms_[id] = now;
  next_rebalance_ms_ = now + settings_.leader_imbalance_check_ms;
  lg()->info("node {} is the active controller (epoch {}, metadata offset {})", quorum_.node_id(), quorum_.epoch(),
             loader_.applied_offset());
}

void controller_service::on_applied() {
  bool now_active = active();
  if (now_active && !was_active_) became_active();
  if (!now_active && was_active_) lg()->info("node {} is no longer the active controller", quorum_.node_id());
  was_active_ = now_active;
  applied_.notify_all();
}

bool controller_service::session_alive(int32_t id) const {
  auto it = last_heartbeat_ms_.find(id);
  return it != last_heartbeat_ms_.end() && runtime::monotonic_ms() - it->second <= settings_.session_timeout_ms;
}

runtime::task<decision> controller_service::write(plan_fn plan, bool validate_only, int64_t timeout_ms) {
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  // One decision at a time: each plans against the image of the one before.
  // Waiting for the controller to become active is a wait too: another
  // writer may have started meanwhile, so look at writing_ again after it.
  for (;;) {
    while (writing_ && !stopping_) {
      if (runtime::monotonic_ms() >= deadline) co_return decision{error_code::request_timed_out, "the controller is busy"};
      co_await turn_.wait_for(deadline - runtime::monotonic_ms());
    }
    if (!active() && quorum_.is_leader() && !stopping_ && runtime::monotonic_ms() < deadline) {
      co_await applied_.wait_for(std::min<int64_t>(100, deadline - runtime::monotonic_ms()));
      continue;
    }
    if (!writing_ || stopping_) break;
  }
  if (!active()) co_return not_controller();
  writing_ = true;
  struct release {
    controller_service* s;
    ~release() {
      s->writing_ = false;
      s->turn_.notify_all();
    }
  } guard{this};

  std::vector<record> records;
  auto d = plan(*loader_.current(), quorum_.log_end_offset(), records);
  if (!d.ok() || validate_only || records.empty()) co_return d;
  std::vector<bytes> values;
  values.reserve(records.size());
  for (auto& r : records) values.push_back(encode_record(r));
  const int32_t epoch = quorum_.epoch();
  auto last = quorum_.append(std::move(values));
  if (!last) co_return not_controller();
  while (loader_.applied_offset() <= last.value()) {
    if (stopping_ || quorum_.epoch() != epoch || !quorum_.is_leader()) co_return not_controller();
    if (runtime::monotonic_ms() >= deadline)
      co_return decision{error_code::request_timed_out, "the metadata change did not commit in time"};
    co_await applied_.wait_for(std::min<int64_t>(100, deadline - runtime::monotonic_ms()));
  }
  for (auto& e : d.unclean_elections) warn_unclean(e);
  co_return d;
}

runtime::task<registration_result> controller_service::register_broker(registration_request req) {
  registration_result res;
  auto d = co_await write(
      [&](const image& img, int64_t next, std::vector<record>& out) {
        // This node's own earlier incarnation cannot be alive: this process replaced it.
        res = plan_register_broker(img, req, settings_.cluster_id, next,
                                   [this](int32_t id) { return id != quorum_.node_id() && session_alive(id); }, out,
                                   settings_.unclean_leader_election_enable);
        return decision{res.error, res.message, res.unclean_elections};
      },
      false);
  if (!d.ok()) {
    res.error = d.error;
    res.message = d.message;
    res.broker_epoch = -1;
    co_return res;
  }
  last_heartbeat_ms_[req.broker_id] = runtime::monotonic_ms();
  lg()->info("registered broker {} with epoch {}", req.broker_id, res.broker_epoch);
  co_return res;
}

runtime::task<heartbeat_result> controller_service::heartbeat(heartbeat_request req) {
  heartbeat_result res;
  if (!active()) {
    res.error = error_code::not_controller;
    co_return res;
  }
  if (auto* b = loader_.current()->broker(req.broker_id); b && b->broker_epoch == req.broker_epoch)
    last_heartbeat_ms_[req.broker_id] = runtime::monotonic_ms();
  bool was_fenced = true;
  auto d = co_await write(
      [&](const image& img, int64_t, std::vector<record>& out) {
        if (auto* b = img.broker(req.broker_id)) was_fenced = b->fenced;
        res = plan_heartbeat(img, req, out, settings_.unclean_leader_election_enable);
        return decision{res.error, {}, res.unclean_elections};
      },
      false);
  if (res.error == error_code::none && !d.ok()) res.error = d.error;
  if (res.error == error_code::none && was_fenced && !res.is_fenced)
    lg()->info("unfenced broker {}: it caught up with the metadata log", req.broker_id);
  co_return res;
}

runtime::task<void> controller_service::maintenance_loop() {
  const int64_t period = std::clamp<int64_t>(settings_.session_timeout_ms / 8, 50, 1000);
  while (!stopping_) {
    co_await runtime::sleep_for(period);
    if (stopping_) break;
    on_applied();  // notices becoming active even when nothing was applied
    if (!active()) continue;
    int64_t now = runtime::monotonic_ms();
    // Brokers that stopped heartbeating are fenced, one decision each.
    for (int32_t id : expired_sessions(*loader_.current(), last_heartbeat_ms_, now, settings_.session_timeout_ms)) {
      auto d = co_await write([this, id](const image& img, int64_t, std::vector<record>& out) {
        return plan_fence_broker(img, id, out, settings_.unclean_leader_election_enable);
      }, false);
      if (d.ok()) lg()->info("fenced broker {}: no heartbeat for {} ms", id, settings_.session_timeout_ms);
      if (!active()) break;
    }
    if (!active()) continue;
    // Leaderless partitions whose topic now allows an unclean election (or,
    // should one be usable, an in-sync replica) get a leader. Planned on the
    // current image first, so that nothing waits for the writer when there
    // is nothing to elect.
    std::vector<record> elections;
    plan_elect_leaderless(*loader_.current(), elections, settings_.unclean_leader_election_enable);
    if (!elections.empty()) {
      co_await write([this](const image& img, int64_t, std::vector<record>& out) {
        return plan_elect_leaderless(img, out, settings_.unclean_leader_election_enable);
      }, false);
      if (!active()) continue;
    }
    if (!list_reassignments(*loader_.current()).empty())
      co_await write([](const image& img, int64_t, std::vector<record>& out) {
        plan_complete_reassignments(img, out);
        return decision{};
      }, false);
    if (settings_.auto_leader_rebalance && now >= next_rebalance_ms_) {
      next_rebalance_ms_ = now + settings_.leader_imbalance_check_ms;
      auto todo = unbalanced_partitions(*loader_.current(), settings_.leader_imbalance_percentage);
      if (!todo.empty()) {
        co_await write([todo](const image& img, int64_t, std::vector<record>& out) {
          for (auto& [t, p] : todo) plan_elect_leader(img, t, p, election_type::preferred, out);
          return decision{};
        }, false);
        lg()->info("moved {} partitions back to their preferred leaders", todo.size());
      }
    }
  }
}

}  // namespace gregor::metadata
