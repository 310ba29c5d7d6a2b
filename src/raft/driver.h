#pragma once
// The driver of the Raft core: it gives the core a clock, the metadata log
// and quorum-state file on disk, and the network, and does what the core
// asks in the order that keeps Raft's promises — persist, then append and
// fsync, then send. It runs on one shard of the node (shard 0).
//
// Requests from other nodes arrive through the controller listener's
// handlers (handle_vote and the like), which wait for the core's answer (a
// fetch with nothing new waits at the leader). Requests to other nodes go
// out through an rpc_client per voter; an answer that does not come within
// controller.quorum.request.timeout.ms counts as a failure.
//
// What the rest of the node sees: who leads and in which epoch, the high
// watermark (committed offsets are below it), the committed records, and a
// change counter to wait on. A leader appends through append().
//
// Kafka's messages on the wire: Vote v2 (with pre-vote), BeginQuorumEpoch
// v1, EndQuorumEpoch v1, Fetch v12 and FetchSnapshot v1 on the partition
// __cluster_metadata-0, DescribeQuorum v2.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "protocol/messages.h"
#include "protocol/rpc_client.h"
#include "raft/core.h"
#include "raft/raft_log.h"
#include "runtime/clock.h"
#include "runtime/task.h"

namespace gregor::raft {

inline constexpr const char* metadata_topic = "__cluster_metadata";

struct voter_endpoint {
  int32_t id = -1;
  std::string host;  // empty: this node itself in a quorum of one (no network)
  uint16_t port = 0;
};

struct driver_config {
  int32_t node_id = 1;
  std::string cluster_id;
  std::vector<voter_endpoint> voters;
  std::string metadata_log_dir;
  std::string controller_listener = "CONTROLLER";
  int64_t election_timeout_ms = 1000;
  int64_t election_backoff_max_ms = 1000;
  int64_t fetch_timeout_ms = 2000;
  int64_t request_timeout_ms = 2000;
  int64_t retry_backoff_ms = 20;
};

class driver {
 public:
  // Opens the metadata partition and the quorum-state file, and rebuilds the
  // core from them.
  static result<std::unique_ptr<driver>> open(driver_config config, bool recover);
  ~driver();
  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;

  // Starts the core's clock and the RPCs, on the calling shard.
  void start();
  // Steps down if leading (EndQuorumEpoch, so the others elect at once),
  // gives that a moment to go out, and stops.
  runtime::task<void> shutdown();

  const core& state() const { return *core_; }
  const driver_config& config() const { return config_; }
  int32_t node_id() const { return config_.node_id; }
  int32_t leader_id() const { return core_->leader_id(); }
  int32_t epoch() const { return core_->epoch(); }
  bool is_leader() const { return core_->is_leader(); }
  // Offsets below it are committed (-1 while unknown).
  int64_t high_watermark() const { return core_->high_watermark(); }
  int64_t log_end_offset() const { return core_->log_end_offset(); }
  raft_log& log() { return *log_; }
  // True once every voter but this node answered that this node belongs to
  // another cluster: it can never join, and the caller should say so and stop.
  bool refused_by_every_other_voter() const;
  // The endpoint of a voter's controller listener, if known.
  const voter_endpoint* voter(int32_t id) const;

  // Bumped at every change of leader, epoch or high watermark, and when a
  // snapshot from the leader replaces the log; wait_for_change() returns
  // once it differs from `seen` (or after timeout_ms).
  uint64_t changes() const { return changes_; }
  runtime::task<void> wait_for_change(uint64_t seen, int64_t timeout_ms);
  // Counts snapshots installed from the leader (the state machine reloads).
  uint64_t snapshot_installs() const { return snapshot_installs_; }

  // Leader only: appends the records as one batch of the current epoch (on
  // disk, fsynced, when this returns) and returns the offset of the last one.
  result<int64_t> append(std::vector<bytes> records);
  // Whole batches from `offset` on, below the high watermark.
  result<bytes> read_committed(int64_t offset, int32_t max_bytes);
  // The state machine wrote a snapshot of everything below id.offset.
  result<void> snapshot_written(offset_and_epoch id, bytes_view content);

  // ---- requests from other nodes (controller listener)
  runtime::task<protocol::vote_response> handle_vote(const protocol::vote_request& req, int16_t version);
  runtime::task<protocol::begin_quorum_epoch_response> handle_begin_quorum_epoch(
      const protocol::begin_quorum_epoch_request& req, int16_t version);
  runtime::task<protocol::end_quorum_epoch_response> handle_end_quorum_epoch(
      const protocol::end_quorum_epoch_request& req, int16_t version);
  // A Fetch of __cluster_metadata-0 (from a voter or an observer).
  runtime::task<protocol::fetch_response> handle_fetch(const protocol::fetch_request& req, int16_t version);
  runtime::task<protocol::fetch_snapshot_response> handle_fetch_snapshot(const protocol::fetch_snapshot_request& req,
                                                                         int16_t version);
  protocol::describe_quorum_response describe_quorum(int16_t version);

 private:
  driver(driver_config config, std::unique_ptr<raft_log> log, election_state persisted);
  struct pending_reply;

  runtime::task<void> run();
  void apply();
  result<void> apply_log(const log_op& op, int64_t now_ms);
  runtime::task<void> send(outbound_request req);
  // Hands an inbound request to the core and waits for its answer (a parked
  // fetch is answered later, when data comes or its max wait ends).
  runtime::task<response> ask_core(int32_t from, request r);
  protocol::rpc_client* client(int32_t to);
  // Checks a request's cluster id; logs a refusal naming both ids.
  bool same_cluster(const std::optional<std::string>& theirs, const char* api, int32_t from);
  fetch_response from_wire(const protocol::fetch_response& wire);
  int64_t now() const { return runtime::monotonic_ms(); }

  driver_config config_;
  std::unique_ptr<raft_log> log_;
  std::unique_ptr<core> core_;
  std::map<int32_t, std::unique_ptr<protocol::rpc_client>> clients_;
  std::map<uint64_t, std::shared_ptr<pending_reply>> replies_;
  uint64_t next_token_ = 1;
  uint64_t changes_ = 0;
  uint64_t snapshot_installs_ = 0;
  runtime::notifier wake_;     // the loop: a deadline may have moved
  runtime::notifier changed_;  // wait_for_change
  bool started_ = false;
  bool stopping_ = false;
  std::map<int32_t, bool> refused_;              // peers that refused our cluster id (logged once)
  std::map<int32_t, uint64_t> refused_inbound_;  // peers whose cluster id we refused
};

}  // namespace gregor::raft
