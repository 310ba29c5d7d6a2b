#include "broker/lifecycle.h"

#include <cstring>

#include "base/log.h"
#include "broker/broker.h"
#include "runtime/random.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
constexpr int16_t kRegistrationVersion = 3;
constexpr int16_t kHeartbeatVersion = 1;
auto lg() { return log::get("broker"); }
}  // namespace

broker_lifecycle::broker_lifecycle(broker& b) : b_(b) {
  for (size_t i = 0; i < incarnation_id_.data.size(); i += 8) {
    uint64_t r = runtime::random_u64();
    std::memcpy(incarnation_id_.data.data() + i, &r, 8);
  }
}

metadata::registration_request broker_lifecycle::from_wire(const protocol::broker_registration_request& r) {
  metadata::registration_request out;
  out.broker_id = r.broker_id;
  out.cluster_id = r.cluster_id;
  out.incarnation_id = r.incarnation_id;
  for (auto& l : r.listeners) out.listeners.push_back({l.name, l.host, l.port, l.security_protocol});
  out.rack = r.rack;
  out.previous_broker_epoch = r.previous_broker_epoch;
  return out;
}

protocol::broker_registration_request broker_lifecycle::to_wire(const metadata::registration_request& r) {
  protocol::broker_registration_request out;
  out.broker_id = r.broker_id;
  out.cluster_id = r.cluster_id;
  out.incarnation_id = r.incarnation_id;
  for (auto& l : r.listeners) {
    protocol::broker_registration_request::registration_listener w;
    w.name = l.name;
    w.host = l.host;
    w.port = static_cast<uint16_t>(l.port);
    w.security_protocol = l.security_protocol;
    out.listeners.push_back(w);
  }
  out.rack = r.rack;
  out.previous_broker_epoch = r.previous_broker_epoch;
  return out;
}

runtime::task<metadata::registration_result> broker_lifecycle::register_once() {
  metadata::registration_request req;
  req.broker_id = b_.config().node_id;
  req.cluster_id = b_.cluster_id();
  req.incarnation_id = incarnation_id_;
  for (auto& l : advertised_broker_listeners(b_.config())) req.listeners.push_back({l.name, l.host, l.port, 0});
  req.rack = b_.config().broker_rack;
  if (b_.quorum().leader_id() == b_.config().node_id && b_.controller())
    co_return co_await b_.controller()->register_broker(req);
  auto r = co_await b_.call_controller<protocol::broker_registration_response>(
      to_wire(req), kRegistrationVersion, b_.config().quorum_request_timeout_ms * 2);
  metadata::registration_result out;
  if (!r) {
    out.error = error_code::request_timed_out;
    out.message = r.err().message;
    co_return out;
  }
  out.error = static_cast<error_code>(r->error_code);
  out.broker_epoch = r->broker_epoch;
  co_return out;
}

runtime::task<metadata::heartbeat_result> broker_lifecycle::heartbeat_once(bool want_shut_down) {
  metadata::heartbeat_request req;
  req.broker_id = b_.config().node_id;
  req.broker_epoch = broker_epoch_;
  req.current_metadata_offset = b_.metadata_loader().applied_offset() - 1;
  req.want_shut_down = want_shut_down;
  if (b_.quorum().leader_id() == b_.config().node_id && b_.controller())
    co_return co_await b_.controller()->heartbeat(req);
  protocol::broker_heartbeat_request w;
  w.broker_id = req.broker_id;
  w.broker_epoch = req.broker_epoch;
  w.current_metadata_offset = req.current_metadata_offset;
  w.want_fence = false;
  w.want_shut_down = want_shut_down;
  auto r = co_await b_.call_controller<protocol::broker_heartbeat_response>(w, kHeartbeatVersion,
                                                                          b_.config().quorum_request_timeout_ms);
  metadata::heartbeat_result out;
  if (!r) {
    out.error = error_code::request_timed_out;
    co_return out;
  }
  out.error = static_cast<error_code>(r->error_code);
  out.is_caught_up = r->is_caught_up;
  out.is_fenced = r->is_fenced;
  out.should_shut_down = r->should_shut_down;
  co_return out;
}

runtime::task<result<void>> broker_lifecycle::start(int64_t timeout_ms) {
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  bool told_duplicate = false;
  while (broker_epoch_ < 0) {
    if (stopping_ || b_.stopping()) co_return error{"stopped before registering"};
    if (auto* q = b_.quorum_if_open(); q && q->refused_by_every_other_voter())
      co_return error{"every other voter of controller.quorum.voters refuses this node: they belong to another "
                      "cluster than " + b_.cluster_id() + " (their logs name their cluster id). Give this node that "
                      "cluster.id with empty log.dirs, or check controller.quorum.voters."};
    if (runtime::monotonic_ms() >= deadline)
      co_return error{"could not register with the controller within " + std::to_string(timeout_ms) +
                      " ms (initial.broker.registration.timeout.ms): is a majority of controller.quorum.voters up "
                      "and reachable?"};
    auto r = co_await register_once();
    if (r.error == error_code::none) {
      broker_epoch_ = r.broker_epoch;
      break;
    }
    if (r.error == error_code::inconsistent_cluster_id)
      co_return error{"the controller refuses this broker: " +
                      (r.message.empty() ? "it belongs to another cluster (this one's id is " + b_.cluster_id() + ")"
                                         : r.message)};
    if (r.error == error_code::duplicate_broker_registration && !told_duplicate) {
      lg()->info("node {} is still registered from before its restart; registering again once that session ends "
                 "(broker.session.timeout.ms={})",
                 b_.config().node_id, b_.config().broker_session_timeout_ms);
      told_duplicate = true;
    }
    co_await runtime::sleep_for(r.error == error_code::duplicate_broker_registration ? 500 : 100);
  }
  lg()->info("registered with the controller: broker epoch {}", broker_epoch_);
  // Replay the metadata log up to our own registration: the image is whole then.
  while (b_.metadata_loader().applied_offset() <= broker_epoch_) {
    if (stopping_ || b_.stopping() || runtime::monotonic_ms() >= deadline)
      co_return error{"did not catch up with the metadata log (offset " + std::to_string(broker_epoch_) + ") in time"};
    co_await b_.quorum().wait_for_change(b_.quorum().changes(), 100);
  }
  // Heartbeat until unfenced.
  while (fenced_) {
    if (stopping_ || b_.stopping() || runtime::monotonic_ms() >= deadline)
      co_return error{"the controller did not unfence this broker in time"};
    auto hb = co_await heartbeat_once(false);
    if (hb.error == error_code::none) {
      fenced_ = hb.is_fenced;
      if (!fenced_) break;
    }
    co_await runtime::sleep_for(100);
  }
  lg()->info("unfenced: serving as broker {}", b_.config().node_id);
  runtime::spawn(0, [this] { return heartbeat_loop(); });
  co_return ok();
}

runtime::task<void> broker_lifecycle::heartbeat_loop() {
  while (!stopping_ && !b_.stopping()) {
    co_await wake_.wait_for(fenced_ ? 200 : b_.config().broker_heartbeat_interval_ms);
    if (stopping_ || b_.stopping() || shutting_down_) break;
    auto hb = co_await heartbeat_once(false);
    if (stopping_ || shutting_down_) break;
    switch (hb.error) {
      case error_code::none:
        if (hb.is_fenced != fenced_)
          lg()->info("the controller {} this broker", hb.is_fenced ? "fenced" : "unfenced");
        fenced_ = hb.is_fenced;
        break;
      case error_code::stale_broker_epoch:
      case error_code::broker_id_not_registered: {
        // Our registration is gone (the controller fenced and dropped it, or
        // lost it): register again.
        lg()->warn("the controller no longer knows broker epoch {}: registering again", broker_epoch_);
        auto r = co_await register_once();
        if (r.error == error_code::none) {
          broker_epoch_ = r.broker_epoch;
          fenced_ = true;
        }
        break;
      }
      default: break;  // no controller right now: try again
    }
  }
}

runtime::task<void> broker_lifecycle::controlled_shutdown(int64_t timeout_ms) {
  if (broker_epoch_ < 0) co_return;
  shutting_down_ = true;
  wake_.notify_all();
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  lg()->info("controlled shutdown: asking the controller to move this broker's leaderships");
  while (runtime::monotonic_ms() < deadline) {
    auto hb = co_await heartbeat_once(true);
    if (hb.error == error_code::none && hb.should_shut_down) {
      lg()->info("controlled shutdown: the controller lets this broker go");
      co_return;
    }
    co_await runtime::sleep_for(200);
  }
  lg()->warn("controlled shutdown did not finish within {} ms; stopping anyway", timeout_ms);
}

void broker_lifecycle::stop() {
  stopping_ = true;
  wake_.notify_all();
}

}  // namespace gregor::broker
