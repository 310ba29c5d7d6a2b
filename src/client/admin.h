#pragma once
// The admin client: topics, partitions, configs, groups, offsets, records.
// Thread-safe. Each call blocks until the broker answers or the request
// timeout passes. Per-item Kafka errors are returned as values (error_code in
// the item); result<> errors are failures of the call as a whole (no broker
// reachable, unsupported API).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/cluster.h"

namespace gregor::client {

struct admin_config : common_config {};

struct new_topic {
  std::string name;
  int32_t num_partitions = -1;      // -1: the broker's default
  int16_t replication_factor = -1;  // -1: the broker's default
  std::map<std::string, std::string> configs;
};

struct item_result {
  std::string name;
  int16_t error_code = 0;
  std::string error_message;
  bool ok() const { return error_code == 0; }
  // "TOPIC_ALREADY_EXISTS (36): message"
  std::string describe() const;
};

enum class resource_type : int8_t { topic = 2, broker = 4, broker_logger = 8 };

struct config_entry {
  std::string name;
  std::optional<std::string> value;
  bool read_only = false;
  bool is_default = false;
  int8_t source = -1;
  bool is_sensitive = false;
};
// Kafka's names for config sources: DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG...
const char* config_source_name(int8_t source);

enum class alter_op : int8_t { set = 0, remove = 1, append = 2, subtract = 3 };
struct config_alteration {
  std::string name;
  alter_op op = alter_op::set;
  std::optional<std::string> value;
};

struct group_listing {
  std::string group_id;
  std::string protocol_type;
  std::string state;
};

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
};

struct member_description {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  std::vector<topic_partition> assignment;  // decoded for the consumer protocol
};

struct group_description {
  std::string group_id;
  int16_t error_code = 0;
  std::string state;
  std::string protocol_type;
  std::string protocol;
  std::vector<member_description> members;
};

struct offset_and_metadata {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int16_t error_code = 0;
};

// ListOffsets timestamps.
constexpr int64_t latest_timestamp = -1;
constexpr int64_t earliest_timestamp = -2;

struct listed_offset {
  int64_t offset = -1;
  int64_t timestamp = -1;
  int16_t error_code = 0;
};

// ListOffsets against each partition's leader, one request per leader.
// `timestamp` is a time in ms or latest_timestamp / earliest_timestamp.
// Partitions without a leader come back with UNKNOWN_TOPIC_OR_PARTITION or
// LEADER_NOT_AVAILABLE; a leader that cannot be reached fails the call.
// isolation_level 1 (read_committed): latest is the last stable offset.
result<std::map<topic_partition, listed_offset>> list_offsets(cluster& c, const std::vector<topic_partition>& partitions,
                                                             int64_t timestamp, int8_t isolation_level = 0);

// DescribeQuorum: the metadata quorum as its leader sees it.
struct quorum_replica {
  int32_t id = -1;
  int64_t log_end_offset = -1;
  int64_t last_fetch_timestamp = -1;      // ms since the epoch, -1 if unknown
  int64_t last_caught_up_timestamp = -1;
};
struct quorum_description {
  int32_t leader_id = -1;
  int32_t leader_epoch = -1;
  int64_t high_watermark = -1;
  std::vector<quorum_replica> voters;
  std::vector<quorum_replica> observers;
};

enum class election_type : int8_t { preferred = 0, unclean = 1 };

struct reassignment {
  topic_partition partition;
  std::vector<int32_t> replicas, adding, removing;
};

class admin_client {
 public:
  explicit admin_client(admin_config config);

  cluster& cluster_ref() { return cluster_; }

  // Checks that a broker answers; the error says which and why not.
  result<std::shared_ptr<const cluster_metadata>> describe_cluster();

  result<std::vector<item_result>> create_topics(const std::vector<new_topic>& topics, bool validate_only = false);
  result<std::vector<item_result>> delete_topics(const std::vector<std::string>& names);
  result<std::vector<std::string>> list_topics(bool include_internal = false);
  // Metadata for the named topics (all topics when empty). Unknown topics come
  // back with UNKNOWN_TOPIC_OR_PARTITION in error_code.
  result<std::vector<topic_info>> describe_topics(const std::vector<std::string>& names);
  result<std::vector<item_result>> create_partitions(const std::map<std::string, int32_t>& new_totals);

  result<std::vector<config_entry>> describe_configs(resource_type type, const std::string& name,
                                                     const std::vector<std::string>& keys = {});
  result<item_result> incremental_alter_configs(resource_type type, const std::string& name,
                                                const std::vector<config_alteration>& ops);

  result<std::vector<group_listing>> list_groups();
  result<std::vector<group_description>> describe_groups(const std::vector<std::string>& groups);
  result<std::vector<item_result>> delete_groups(const std::vector<std::string>& groups);
  // Committed offsets of a group (all partitions when `partitions` is empty).
  result<std::map<topic_partition, offset_and_metadata>> list_group_offsets(
      const std::string& group, const std::vector<topic_partition>& partitions = {});
  // Commits offsets for a group that has no active members.
  result<std::map<topic_partition, int16_t>> alter_group_offsets(const std::string& group,
                                                                 const std::map<topic_partition, int64_t>& offsets);

  // ListOffsets against each partition's leader. `timestamp` is a time in ms
  // or latest_timestamp / earliest_timestamp.
  result<std::map<topic_partition, listed_offset>> list_offsets(const std::vector<topic_partition>& partitions,
                                                                int64_t timestamp);
  // Deletes records before the given offsets; returns the new low watermarks.
  result<std::map<topic_partition, listed_offset>> delete_records(const std::map<topic_partition, int64_t>& before);

  // The metadata quorum (any broker forwards the request to its leader).
  result<quorum_description> describe_quorum();
  // Elects leaders (all partitions when `partitions` is empty); per-partition errors.
  result<std::map<topic_partition, item_result>> elect_leaders(election_type type,
                                                              const std::vector<topic_partition>& partitions);
  // Starts (replicas given) or cancels (nullopt) reassignments.
  result<std::map<topic_partition, item_result>> alter_partition_reassignments(
      const std::map<topic_partition, std::optional<std::vector<int32_t>>>& moves);
  result<std::vector<reassignment>> list_partition_reassignments();

 private:
  admin_config config_;
  cluster cluster_;
};

// The consumer protocol's Subscription and Assignment (ConsumerProtocol),
// shared by the consumer and by admin tools that decode group members.
struct consumer_subscription {
  int16_t version = 1;
  std::vector<std::string> topics;
  std::optional<bytes> user_data;
  std::vector<topic_partition> owned_partitions;  // v1+
  int32_t generation_id = -1;                     // v2+
};
bytes encode_subscription(const consumer_subscription& s);
std::optional<consumer_subscription> decode_subscription(bytes_view b);

struct consumer_assignment {
  int16_t version = 1;
  std::vector<topic_partition> partitions;
  std::optional<bytes> user_data;
};
bytes encode_assignment(const consumer_assignment& a);
std::optional<consumer_assignment> decode_assignment(bytes_view b);

}  // namespace gregor::client
