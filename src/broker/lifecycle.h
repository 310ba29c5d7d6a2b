#pragma once
// A broker's life as the controller sees it (Kafka's BrokerLifecycleManager):
// it registers (BrokerRegistration) and gets its broker epoch, replays the
// metadata log at least up to its own registration, heartbeats
// (BrokerHeartbeat) every broker.heartbeat.interval.ms — the controller
// unfences it once it has caught up and fences it if the heartbeats stop —
// and on a controlled shutdown asks to leave and waits until its
// leaderships have moved. Runs on shard 0.
#include <cstdint>

#include "base/result.h"
#include "metadata/cluster_control.h"
#include "protocol/messages.h"
#include "runtime/clock.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker;

class broker_lifecycle {
 public:
  explicit broker_lifecycle(broker& b);

  // Registers (retrying until the controller accepts, or timeout_ms), waits
  // until this node has applied its registration and been unfenced, and
  // starts heartbeating. An error if that cannot happen in time.
  runtime::task<result<void>> start(int64_t timeout_ms);
  // Asks the controller to move this broker's leaderships away and waits
  // (at most timeout_ms) until it says the broker may stop.
  runtime::task<void> controlled_shutdown(int64_t timeout_ms);
  void stop();

  int64_t broker_epoch() const { return broker_epoch_; }
  bool fenced() const { return fenced_; }

  // Wire forms, shared with the controller's handlers.
  static metadata::registration_request from_wire(const protocol::broker_registration_request& r);
  static protocol::broker_registration_request to_wire(const metadata::registration_request& r);

 private:
  runtime::task<metadata::registration_result> register_once();
  runtime::task<metadata::heartbeat_result> heartbeat_once(bool want_shut_down);
  runtime::task<void> heartbeat_loop();

  broker& b_;
  metadata::uuid incarnation_id_;
  int64_t broker_epoch_ = -1;
  bool fenced_ = true;
  bool stopping_ = false;
  bool shutting_down_ = false;
  runtime::notifier wake_;
};

}  // namespace gregor::broker
