#pragma once
// The group coordinator of the classic consumer-group protocol, as a state
// machine: requests and ticks (with the current time) go in; replies to send
// and records to append to __consumer_offsets come out. It never reads a
// clock, draws a random number or does I/O itself, so tests drive it as plain
// function calls with a fake clock (see group_service.h for the driver).
//
// Replies that depend on records (OffsetCommit, the leader's SyncGroup,
// DeleteGroups, OffsetDelete) are held until the driver reports the write
// durable with write_completed(); JoinGroup replies wait for the rebalance
// to complete. Every request carries an id chosen by the driver; a reply
// names the id it answers.
//
// The behaviour follows Kafka's GroupCoordinator (classic protocol): the
// states Empty, PreparingRebalance, CompletingRebalance, Stable and Dead,
// MEMBER_ID_REQUIRED from JoinGroup v4, static membership from v5, pending
// members, the initial rebalance delay, rebalance and session timeouts,
// pending-sync expiry, and Kafka's error codes in the same places.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "protocol/errors.h"
#include "protocol/messages.h"

namespace gregor::coordinator {

inline constexpr const char* offsets_topic_name = "__consumer_offsets";

enum class group_state : uint8_t { empty, preparing_rebalance, completing_rebalance, stable, dead };
// Kafka's names: "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead".
const char* state_name(group_state s);

struct group_config {
  int32_t offsets_topic_num_partitions = 50;
  int64_t group_initial_rebalance_delay_ms = 3000;
  int32_t group_min_session_timeout_ms = 6000;
  int32_t group_max_session_timeout_ms = 1800000;
  int64_t offsets_retention_ms = 10080LL * 60 * 1000;
  int64_t offsets_retention_check_interval_ms = 600000;
  int32_t offset_metadata_max_bytes = 4096;
  // A new member that never completes its first join is dropped after this.
  int64_t new_member_join_timeout_ms = 300000;
};

// Java's String.hashCode over the UTF-16 form of a UTF-8 string.
int32_t java_string_hash(std::string_view utf8);
// Kafka's partitionFor: Utils.abs(groupId.hashCode) % partitions.
int32_t partition_for_group(std::string_view group_id, int32_t partitions);

// Topic names a ConsumerProtocol subscription (any version) lists; nullopt if
// the bytes do not parse.
std::optional<std::set<std::string>> subscription_topics(bytes_view subscription);

// One record of __consumer_offsets, key and value as Kafka stores them (an
// int16 version, then the struct). A null value is a tombstone.
struct offsets_record {
  bytes key;
  std::optional<bytes> value;
};

struct write_request {
  uint64_t id = 0;
  int32_t partition = 0;
  std::vector<offsets_record> records;
  // TxnOffsetCommit: the records go in one transactional batch of this
  // producer (Kafka writes it with base sequence 0; the partition checks
  // only the epoch, as for its coordinator origin). -1: an ordinary batch.
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
};

using response = std::variant<protocol::join_group_response, protocol::sync_group_response,
                              protocol::heartbeat_response, protocol::leave_group_response,
                              protocol::offset_commit_response, protocol::offset_fetch_response,
                              protocol::describe_groups_response, protocol::list_groups_response,
                              protocol::delete_groups_response, protocol::offset_delete_response,
                              protocol::txn_offset_commit_response>;

struct reply {
  uint64_t request = 0;
  response body;
};

struct output {
  std::vector<write_request> writes;
  std::vector<reply> replies;
};

struct member_state {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t rebalance_timeout_ms = 0;
  int32_t session_timeout_ms = 0;
  std::string protocol_type;
  std::vector<std::pair<std::string, bytes>> protocols;  // name, metadata; in the member's order of preference
  bytes assignment;
  std::optional<uint64_t> awaiting_join;  // a parked JoinGroup
  int16_t join_version = 0;
  std::optional<uint64_t> awaiting_sync;  // a parked SyncGroup
  bool is_new = false;
  std::optional<int64_t> heartbeat_deadline;

  const bytes* metadata(const std::string& protocol) const;
};

struct committed_offset {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp = 0;
  std::optional<int64_t> expire_timestamp;
  // Where its record is in __consumer_offsets (the batch's base offset; -1
  // while unknown): a transaction's offsets apply at its COMMIT marker only
  // over offsets written before them (Kafka's olderThan).
  int64_t log_offset = -1;
};

using topic_partition = std::pair<std::string, int32_t>;

struct group {
  std::string id;
  group_state state = group_state::empty;
  int32_t generation = 0;
  std::optional<std::string> protocol_type;
  std::optional<std::string> protocol_name;
  std::optional<std::string> leader;
  std::map<std::string, member_state> members;
  std::map<std::string, std::string> static_members;  // group.instance.id -> member id
  std::map<std::string, int64_t> pending_members;     // member id -> session deadline
  std::set<std::string> pending_sync;                 // joined, SyncGroup not yet received
  std::optional<int64_t> sync_deadline;
  int32_t awaiting_join_count = 0;
  bool new_member_added = false;
  // The delayed join while PreparingRebalance.
  std::optional<int64_t> join_deadline;
  bool initial_delay = false;
  int64_t initial_delay_ms = 0;
  int64_t initial_remaining_ms = 0;
  std::optional<int64_t> state_timestamp;
  std::map<topic_partition, committed_offset> offsets;
  std::map<topic_partition, int> pending_commits;
  // TxnOffsetCommit offsets per producer id, waiting for the transaction's
  // marker (Kafka's pendingTransactionalOffsetCommits). Not visible to
  // OffsetFetch; with require_stable their partitions are UNSTABLE_OFFSET_COMMIT.
  std::map<int64_t, std::map<topic_partition, committed_offset>> pending_txn_offsets;
  std::optional<std::set<std::string>> subscribed_topics;

  bool has_member(const std::string& id) const { return members.count(id) != 0; }
  bool is_leader(const std::string& id) const { return leader && *leader == id; }
  int32_t rebalance_timeout_ms() const;
  bool has_pending_offsets(const topic_partition& tp) const;
  bool has_pending_txn_offsets() const { return !pending_txn_offsets.empty(); }
  bool all_members_joined() const {
    return awaiting_join_count == static_cast<int32_t>(members.size()) && pending_members.empty();
  }
};

struct client_info {
  std::string client_id;
  std::string client_host;
};

class group_coordinator {
 public:
  // new_uuid: a fresh random UUID string for member ids (the driver draws it
  // from runtime; tests pass a counter).
  group_coordinator(group_config config, std::function<std::string()> new_uuid);

  const group_config& config() const { return config_; }
  // The actual partition count of __consumer_offsets, once known.
  void set_partition_count(int32_t n) { config_.offsets_topic_num_partitions = n; }
  int32_t partition_for(std::string_view group_id) const {
    return partition_for_group(group_id, config_.offsets_topic_num_partitions);
  }

  // Loading a partition of __consumer_offsets: begin, replay every record in
  // offset order, end. While loading, requests for its groups get
  // COORDINATOR_LOAD_IN_PROGRESS.
  // `log_offset` is the base offset of the record's batch; `producer_id` is
  // the batch's producer when it is transactional (-1 otherwise): its offset
  // commits stay pending until replay_marker() closes that transaction.
  void begin_load(int32_t partition);
  void replay(int32_t partition, bytes_view key, std::optional<bytes_view> value, int64_t log_offset = -1,
              int64_t producer_id = -1);
  // A COMMIT or ABORT control batch of `producer_id` in the partition's log.
  void replay_marker(int32_t partition, int64_t producer_id, bool committed);
  output end_load(int32_t partition, int64_t now);
  bool loading(int32_t partition) const { return loading_.count(partition) != 0; }
  // Partitions of __consumer_offsets another broker leads: their groups
  // answer NOT_COORDINATOR here (the client asks FindCoordinator again).
  void set_owned(int32_t partition, bool owned) {
    if (owned) not_owned_.erase(partition);
    else not_owned_.insert(partition);
  }
  bool any_loading() const { return !loading_.empty(); }
  // This broker stopped leading the partition: its groups go (the new
  // coordinator loads them from the log), as Kafka's removeGroupsForPartition.
  void unload(int32_t partition);

  output join_group(uint64_t rid, int16_t version, const protocol::join_group_request& req, const client_info& client,
                    int64_t now);
  output sync_group(uint64_t rid, int16_t version, const protocol::sync_group_request& req, int64_t now);
  output heartbeat(uint64_t rid, int16_t version, const protocol::heartbeat_request& req, int64_t now);
  output leave_group(uint64_t rid, int16_t version, const protocol::leave_group_request& req, int64_t now);
  // partition_exists answers UNKNOWN_TOPIC_OR_PARTITION for the rest, as Kafka does.
  output offset_commit(uint64_t rid, int16_t version, const protocol::offset_commit_request& req,
                       const std::function<bool(const std::string&, int32_t)>& partition_exists, int64_t now);
  // TxnOffsetCommit: validated like OffsetCommit (v3+ with generation,
  // member and instance id); the offsets are written in a transactional
  // batch of the request's producer and held as pending until
  // on_txn_marker() for that producer.
  output txn_offset_commit(uint64_t rid, int16_t version, const protocol::txn_offset_commit_request& req,
                           const std::function<bool(const std::string&, int32_t)>& partition_exists, int64_t now);
  // A COMMIT (committed) or ABORT marker of `producer_id` is in partition
  // `partition` of __consumer_offsets (appended and replicated): its pending
  // offsets for the groups of that partition apply (over offsets written
  // before them) or go (Kafka's handleTxnCompletion).
  output on_txn_marker(int32_t partition, int64_t producer_id, bool committed, int64_t now);
  output offset_fetch(uint64_t rid, int16_t version, const protocol::offset_fetch_request& req, int64_t now);
  output describe_groups(uint64_t rid, int16_t version, const protocol::describe_groups_request& req, int64_t now);
  output list_groups(uint64_t rid, int16_t version, const protocol::list_groups_request& req, int64_t now);
  output delete_groups(uint64_t rid, int16_t version, const protocol::delete_groups_request& req, int64_t now);
  output offset_delete(uint64_t rid, int16_t version, const protocol::offset_delete_request& req, int64_t now);

  // The driver appended (or failed to append) write `id`.
  // base_offset: where the batch went in the log (-1 unknown or failed).
  output write_completed(uint64_t id, protocol::error_code error, int64_t now, int64_t base_offset = -1);
  // Timers: session, rebalance, pending-sync and new-member timeouts, the
  // initial rebalance delay, and offset expiry.
  output tick(int64_t now);

  // Inspection (tests, tools).
  const group* find(const std::string& group_id) const;
  size_t group_count() const { return groups_.size(); }
  size_t pending_write_count() const { return pending_writes_.size(); }

 private:
  struct pending_write;
  struct join_params;

  group* find_group(const std::string& id);
  group& create_group(const std::string& id);
  std::optional<protocol::error_code> validate_status(const std::string& group_id, bool allow_empty_id) const;
  // The check of each partition of an offset commit (topic, partition,
  // metadata): UNKNOWN_TOPIC_OR_PARTITION, OFFSET_METADATA_TOO_LARGE, or fine.
  std::function<std::optional<protocol::error_code>(const std::string&, int32_t, const std::string&)> checker(
      const std::function<bool(const std::string&, int32_t)>& partition_exists) const;

  // Joins.
  void new_member_join(group& g, const join_params& p, output& out);
  void current_member_join(group& g, const join_params& p, output& out);
  void static_member_join(group& g, const join_params& p, const std::string& new_member_id, output& out);
  void add_member_and_rebalance(group& g, const join_params& p, const std::string& member_id, output& out);
  void update_member_and_rebalance(group& g, member_state& m, const join_params& p, output& out);
  void update_member(group& g, member_state& m, const join_params& p);
  void maybe_prepare_rebalance(group& g, int64_t now, output& out);
  void prepare_rebalance(group& g, int64_t now, output& out);
  void maybe_complete_join(group& g, int64_t now, output& out);
  void complete_join(group& g, int64_t now, output& out);
  bool maybe_elect_new_joined_leader(group& g);
  void init_next_generation(group& g, int64_t now);
  std::string select_protocol(const group& g) const;
  bool supports_protocols(const group& g, const std::string& type,
                          const std::vector<protocol::join_group_request::join_group_request_protocol>& ps) const;
  std::optional<std::set<std::string>> compute_subscribed_topics(const group& g) const;
  protocol::join_group_response join_result(const group& g, const member_state& m, int16_t version,
                                            bool with_members) const;
  void invoke_join(group& g, member_state& m, protocol::join_group_response resp, output& out);
  void invoke_sync(member_state& m, protocol::sync_group_response resp, output& out);

  // Members.
  void remove_member(group& g, const std::string& member_id, output& out);
  void remove_member_and_update_group(group& g, const std::string& member_id, int64_t now, output& out);
  void remove_pending_member_and_update_group(group& g, const std::string& member_id);
  bool static_member_fenced(const group& g, const std::optional<std::string>& instance_id,
                            const std::string& member_id) const;
  void schedule_heartbeat(group& g, member_state& m, int64_t now, int64_t timeout_ms);

  // Sync.
  void reset_and_propagate_assignment_error(group& g, protocol::error_code e, int64_t now, output& out);
  void propagate_assignment(group& g, protocol::error_code e, int64_t now, output& out);
  void on_expire_pending_sync(group& g, int64_t now, output& out);

  // Records.
  offsets_record group_metadata_record(const group& g, const std::map<std::string, bytes>& assignment,
                                       int64_t now) const;
  uint64_t add_write(int32_t partition, std::vector<offsets_record> records, pending_write pw, output& out);
  void transition(group& g, group_state to);
  void remove_group(const std::string& id);
  void expire_offsets(int64_t now, output& out);

  group_config config_;
  std::function<std::string()> new_uuid_;
  std::map<std::string, std::unique_ptr<group>> groups_;
  std::map<uint64_t, std::shared_ptr<pending_write>> pending_writes_;
  uint64_t next_write_id_ = 1;
  int64_t last_expiry_check_ms_ = -1;

  // Partitions being loaded, with what their records said so far.
  struct load_state {
    std::map<std::string, std::map<topic_partition, committed_offset>> offsets;
    // Transactional offsets without a marker yet: producer -> group -> offsets.
    std::map<int64_t, std::map<std::string, std::map<topic_partition, committed_offset>>> pending;
    std::map<std::string, std::optional<protocol::group_metadata_value>> groups;  // nullopt = tombstone
  };
  std::map<int32_t, load_state> loading_;
  // Removes a group's pending transactional offsets of `tp` (all of them
  // when null); true if there were any.
  bool drop_pending_txn_offsets(group& g, const topic_partition* tp);
  std::set<int32_t> not_owned_;
  // Groups with pending transactional offsets, per producer id (Kafka's
  // openGroupsForProducer).
  std::map<int64_t, std::set<std::string>> producer_groups_;
};

}  // namespace gregor::coordinator
