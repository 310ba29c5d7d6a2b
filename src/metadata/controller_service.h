#pragma once
// The active controller: the driver of the controller's decisions
// (controller.h, cluster_control.h) on the node that leads the metadata
// quorum. It becomes active once the loader has applied everything before
// its epoch (so its image is complete), and from then on:
//
// - runs writes one at a time: a plan is made against the current image
//   with the offset its records will get, the records are appended to the
//   quorum, and the caller hears back once they are committed and applied
//   (NOT_CONTROLLER if leadership moved first);
// - keeps the brokers' sessions (soft state, from heartbeats; a new active
//   controller gives every broker a full session) and fences brokers whose
//   session expired;
// - completes reassignments whose new replicas caught up, and moves
//   leadership back to preferred replicas (auto.leader.rebalance.enable);
// - elects leaders for leaderless partitions, from outside the ISR where
//   unclean.leader.election.enable allows it, and logs a warning for every
//   such unclean election any write makes.
//
// Runs on the quorum driver's shard.
#include <cstdint>
#include <functional>
#include <map>

#include "metadata/cluster_control.h"
#include "metadata/controller.h"
#include "metadata/loader.h"
#include "raft/driver.h"
#include "runtime/clock.h"
#include "runtime/task.h"

namespace gregor::metadata {

struct controller_settings {
  std::string cluster_id;
  int64_t session_timeout_ms = 9000;           // broker.session.timeout.ms
  bool auto_leader_rebalance = true;           // auto.leader.rebalance.enable
  int64_t leader_imbalance_check_ms = 300000;  // leader.imbalance.check.interval.seconds
  int32_t leader_imbalance_percentage = 10;    // leader.imbalance.per.broker.percentage
  // unclean.leader.election.enable, the static broker config: a topic's
  // override and the cluster-wide dynamic broker config win over it.
  bool unclean_leader_election_enable = false;
};

class controller_service {
 public:
  controller_service(controller_settings settings, raft::driver& quorum, loader& loader);

  void start();
  void stop();
  // Leads the quorum and has the whole image.
  bool active() const;
  // The node calls this after the loader applied more records.
  void on_applied();

  // A plan gets the current image and the offset its first record will
  // have; it fills `out` with records, or returns an error.
  using plan_fn = std::function<decision(const image& img, int64_t next_offset, std::vector<record>& out)>;
  // Runs one decision: plan, append, wait until applied. NOT_CONTROLLER when
  // this node is not (or stops being) the active controller.
  runtime::task<decision> write(plan_fn plan, bool validate_only, int64_t timeout_ms = 30000);

  runtime::task<registration_result> register_broker(registration_request req);
  runtime::task<heartbeat_result> heartbeat(heartbeat_request req);

 private:
  runtime::task<void> maintenance_loop();
  bool session_alive(int32_t id) const;
  void became_active();

  controller_settings settings_;
  raft::driver& quorum_;
  loader& loader_;
  std::map<int32_t, int64_t> last_heartbeat_ms_;  // monotonic
  bool was_active_ = false;
  bool writing_ = false;
  bool stopping_ = false;
  runtime::notifier applied_;     // the loader applied more
  runtime::notifier turn_;        // the writer slot is free
  int64_t next_rebalance_ms_ = 0;
};

}  // namespace gregor::metadata
