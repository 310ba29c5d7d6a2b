#pragma once
// The controller's decisions about brokers and partition leadership, the way
// Kafka's KRaft controller makes them (ClusterControlManager,
// ReplicationControlManager, StripedReplicaPlacer): registration and
// heartbeats, fencing and unfencing, controlled shutdown, replica placement,
// leader elections, reassignments and ISR changes.
//
// Pure functions: the current image and the request in, a result and the
// records that make it out (appended to `out`); times and ids come in as
// arguments. The driver commits the records before anyone is told.
//
// The invariant every decision keeps: a leader is always one of its
// partition's replicas and in its ISR, and never a fenced broker.
//
// Unclean leader election (unclean.leader.election.enable): when no in-sync
// replica can lead a partition, the decisions that would leave it leaderless
// (fencing, controlled shutdown, unregistration, a re-registration) or that
// find it leaderless (a replica unfenced, the periodic check) elect the first
// usable replica instead, as Kafka's PartitionChangeBuilder does: it becomes
// the whole ISR and starts RECOVERING (KIP-704) until it says otherwise with
// AlterPartition. Each such election is returned (unclean_elections) for the
// caller to log. `unclean_leader_election_enable` below is the static broker
// config; a topic's override and the cluster-wide dynamic config win over it.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "metadata/controller.h"
#include "metadata/image.h"
#include "metadata/records.h"
#include "protocol/errors.h"

namespace gregor::metadata {

// ---- registration and heartbeats

struct registration_request {
  int32_t broker_id = -1;
  std::string cluster_id;
  uuid incarnation_id;
  std::vector<broker_endpoint> listeners;
  std::optional<std::string> rack;
  int64_t previous_broker_epoch = -1;
};

struct registration_result {
  protocol::error_code error = protocol::error_code::none;
  std::string message;
  int64_t broker_epoch = -1;
  std::vector<unclean_election> unclean_elections;
};

// A broker registers (again, after a restart). `next_offset` is where the
// first record this call appends will land (the records commit as one
// batch): the RegisterBrokerRecord's offset is the broker epoch.
// `session_alive(id)` says whether the registered broker of that id has
// heartbeated within its session: a second incarnation is refused then.
registration_result plan_register_broker(const image& img, const registration_request& req,
                                         const std::string& cluster_id, int64_t next_offset,
                                         const std::function<bool(int32_t)>& session_alive,
                                         std::vector<record>& out, bool unclean_leader_election_enable = false);

struct heartbeat_request {
  int32_t broker_id = -1;
  int64_t broker_epoch = -1;
  int64_t current_metadata_offset = -1;
  bool want_fence = false;
  bool want_shut_down = false;
};

struct heartbeat_result {
  protocol::error_code error = protocol::error_code::none;
  bool is_caught_up = false;
  bool is_fenced = true;
  bool should_shut_down = false;
  std::vector<unclean_election> unclean_elections;
};

// A heartbeat: unfences a broker that has caught up with the metadata log
// (its offset reached its registration's), fences one that asks to be, and
// runs a controlled shutdown (leaderships move away, then it is fenced and
// may stop). A broker unfenced gets the leaderless partitions it may lead:
// those whose ISR holds it, and (unclean election) any it is a replica of.
heartbeat_result plan_heartbeat(const image& img, const heartbeat_request& req, std::vector<record>& out,
                                bool unclean_leader_election_enable = false);

// Brokers whose last heartbeat is older than the session timeout and that
// are not fenced yet.
std::vector<int32_t> expired_sessions(const image& img, const std::map<int32_t, int64_t>& last_heartbeat_ms,
                                      int64_t now_ms, int64_t session_timeout_ms);

// Fences a broker: FenceBrokerRecord, and its leaderships move to other
// in-sync replicas (or, if none is usable, to an out-of-sync one where
// unclean election is enabled, else the partition has no leader); it leaves
// every ISR that has other members.
decision plan_fence_broker(const image& img, int32_t broker_id, std::vector<record>& out,
                           bool unclean_leader_election_enable = false);

// Removes a broker's registration (UnregisterBroker), fencing it first.
decision plan_unregister_broker(const image& img, int32_t broker_id, std::vector<record>& out,
                                bool unclean_leader_election_enable = false);

// ---- placement

// Replicas for `count` new partitions: distinct usable brokers, spread over
// racks first (broker.rack), the first replica (the preferred leader)
// rotating over the brokers from `start_index` so leaderships spread evenly.
struct placement {
  decision outcome;
  std::vector<std::vector<int32_t>> replicas;
};
placement place_replicas(const image& img, int32_t count, int32_t replication_factor, uint64_t start_index);

// ---- leader elections

enum class election_type : int8_t { preferred = 0, unclean = 1 };

// ElectLeaders for one partition. An unclean election here is what an
// administrator asked for: unclean.leader.election.enable is not consulted.
decision plan_elect_leader(const image& img, const std::string& topic, int32_t partition, election_type type,
                           std::vector<record>& out);

// unclean.leader.election.enable for a topic, as the controller resolves it:
// the topic's override, else the cluster-wide dynamic broker config, else
// `static_default` (the controller's own server.properties).
bool unclean_leader_election_enabled(const image& img, const std::string& topic, bool static_default);

// Every leaderless partition gets a leader if one may lead: a usable ISR
// member, or where its topic allows unclean election, any usable replica.
// Kafka's controller checks this periodically: unclean election may have
// been switched on since a partition lost its leader.
decision plan_elect_leaderless(const image& img, std::vector<record>& out, bool unclean_leader_election_enable);

// auto.leader.rebalance.enable: the partitions whose preferred leader should
// lead again, for brokers whose share of partitions led by others exceeds
// leader.imbalance.per.broker.percentage.
std::vector<std::pair<std::string, int32_t>> unbalanced_partitions(const image& img, int32_t imbalance_percentage);

// ---- reassignments

// Starts (target given) or cancels (nullopt) a reassignment of one partition.
decision plan_alter_reassignment(const image& img, const std::string& topic, int32_t partition,
                                 const std::optional<std::vector<int32_t>>& target, std::vector<record>& out);
// Finishes every reassignment whose target replicas are all in the ISR.
void plan_complete_reassignments(const image& img, std::vector<record>& out);

struct ongoing_reassignment {
  std::string topic;
  int32_t partition = 0;
  std::vector<int32_t> replicas, adding, removing;
};
std::vector<ongoing_reassignment> list_reassignments(const image& img);

// ---- ISR changes (AlterPartition)

// A member of the ISR a leader asks for. broker_epoch -1 (v0-2, or v3 from a
// leader that does not know it) is not checked.
struct isr_member {
  int32_t broker_id = -1;
  int64_t broker_epoch = -1;
};

// One partition of an AlterPartition request: the leader's view of the
// partition (its epochs) and the ISR it wants.
struct alter_partition_item {
  std::string topic_name;  // v0-1
  uuid topic_id;           // v2+
  int32_t partition = -1;
  int32_t leader_epoch = -1;
  int32_t partition_epoch = -1;
  std::vector<isr_member> new_isr;
  int8_t leader_recovery_state = 0;  // 1: still recovering from an unclean election
};

struct alter_partition_request {
  int32_t broker_id = -1;
  int64_t broker_epoch = -1;
  // v2+ names topics by id and may be told INELIGIBLE_REPLICA and
  // NEW_LEADER_ELECTED, which v0-1 hear as OPERATION_NOT_ATTEMPTED and
  // FENCED_LEADER_EPOCH.
  int16_t version = 0;
  std::vector<alter_partition_item> partitions;
};

// A partition's answer; on success, its state once the change is applied
// (leader, leader and partition epochs, ISR, recovery state).
struct alter_partition_answer {
  protocol::error_code error = protocol::error_code::none;
  partition_state partition;
};

struct alter_partition_result {
  protocol::error_code error = protocol::error_code::none;  // for the whole request (STALE_BROKER_EPOCH)
  std::vector<alter_partition_answer> partitions;           // one per item, in order
};

// A partition leader changes its ISR, as Kafka's controller decides it
// (ReplicationControlManager.alterPartition): the sender must be registered
// with that broker epoch, lead the partition at the leader and partition
// epochs it names, and keep itself in an ISR of eligible replicas. A valid
// change is a PartitionChangeRecord (the partition epoch moves on, the
// leader epoch does not); an ISR that now holds every target replica of a
// reassignment completes it in the same record.
alter_partition_result plan_alter_partition(const image& img, const alter_partition_request& req,
                                            std::vector<record>& out);

// ---- producer ids (AllocateProducerIds)

// The size of the block of producer ids a broker gets at a time (Kafka's
// ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE).
inline constexpr int32_t producer_id_block_size = 1000;

struct producer_ids_result {
  protocol::error_code error = protocol::error_code::none;
  std::string message;
  int64_t producer_id_start = -1;  // the block: [start, start + len)
  int32_t producer_id_len = 0;
};

// A broker asks for the next block of producer ids, as Kafka's
// ProducerIdControlManager answers it: the broker must be registered with
// that broker epoch (else STALE_BROKER_EPOCH); it gets the block starting at
// the image's next_producer_id, written as a ProducerIdsRecord whose
// next_producer_id is the block's end. Ids come from the replicated log, so
// no block is handed out twice, across controller failovers and restarts.
// UNKNOWN_SERVER_ERROR once the int64 range is used up.
producer_ids_result plan_allocate_producer_ids(const image& img, int32_t broker_id, int64_t broker_epoch,
                                               std::vector<record>& out);

// ---- checks (for tests and the simulation)

// Why the image breaks the controller's invariant (a fenced or
// unregistered leader, a leader outside its replicas or ISR), or nullopt.
std::optional<std::string> leadership_violation(const image& img);

}  // namespace gregor::metadata
