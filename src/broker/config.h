#pragma once
// The broker's configuration: Kafka's server.properties keys and defaults.
// Every key is declared once in config.cc's table (name, default, doc), from
// which parsing, validation and (later) DescribeConfigs are derived.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gregor::broker {

struct listener_endpoint {
  std::string name = "PLAINTEXT";  // listener name, also the security protocol for now
  std::string host;                // empty = all interfaces
  uint16_t port = 9092;
};

// A voter of the metadata quorum, from controller.quorum.voters (id@host:port).
struct quorum_voter {
  int32_t id = -1;
  std::string host;
  uint16_t port = 0;
};

// KIP-392's rack-aware selector, the one replica.selector.class Gregor knows.
inline constexpr std::string_view kRackAwareReplicaSelector = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

struct broker_config {
  int32_t node_id = 1;
  // process.roles. Not given: a single node that is broker and controller and
  // its own quorum of one, with no controller listener (Gregor's quickstart).
  bool roles_given = false;
  bool is_broker = true;
  bool is_controller = true;
  std::vector<quorum_voter> quorum_voters;                             // controller.quorum.voters
  std::vector<std::pair<std::string, uint16_t>> quorum_bootstrap_servers;  // controller.quorum.bootstrap.servers
  std::vector<std::string> controller_listener_names;                  // controller.listener.names
  std::string inter_broker_listener_name = "PLAINTEXT";
  std::optional<std::string> broker_rack;
  std::string cluster_id;  // cluster.id: the id a new cluster's nodes format with (else a random one)
  int64_t broker_session_timeout_ms = 9000;
  int64_t broker_heartbeat_interval_ms = 2000;
  int64_t initial_broker_registration_timeout_ms = 60000;
  int64_t quorum_election_timeout_ms = 1000;
  int64_t quorum_election_backoff_max_ms = 1000;
  int64_t quorum_fetch_timeout_ms = 2000;
  int64_t quorum_request_timeout_ms = 2000;
  int64_t quorum_retry_backoff_ms = 20;
  std::string metadata_log_dir;  // metadata.log.dir; defaults to the first of log.dirs
  int64_t metadata_log_max_record_bytes_between_snapshots = 20971520;
  int64_t metadata_log_max_snapshot_interval_ms = 3600000;
  bool auto_leader_rebalance_enable = true;
  int64_t leader_imbalance_check_interval_seconds = 300;
  int32_t leader_imbalance_per_broker_percentage = 10;
  int16_t offsets_topic_replication_factor = 3;

  std::vector<listener_endpoint> listeners;
  std::vector<listener_endpoint> advertised_listeners;
  std::vector<std::string> log_dirs;
  int32_t num_partitions = 1;
  int16_t default_replication_factor = 1;
  bool auto_create_topics_enable = true;
  bool delete_topic_enable = true;
  int32_t message_max_bytes = 1048588;
  int32_t socket_request_max_bytes = 104857600;
  int64_t log_segment_bytes = 1073741824;
  int64_t log_roll_ms = 168LL * 3600 * 1000;
  int64_t log_retention_ms = 168LL * 3600 * 1000;
  int64_t log_retention_bytes = -1;
  int64_t log_retention_check_interval_ms = 300000;
  int64_t producer_id_expiration_ms = 86400000;
  int64_t producer_id_expiration_check_interval_ms = 600000;
  int64_t log_flush_interval_messages = INT64_MAX;
  int64_t log_flush_interval_ms = INT64_MAX;
  int32_t log_index_interval_bytes = 4096;
  int32_t log_index_size_max_bytes = 10485760;
  // Gregor's own key (Kafka keeps every segment file open): the bound on
  // segment files held open; idle ones are closed and reopened on use.
  int32_t log_max_open_files = 10000;
  std::string log_cleanup_policy = "delete";
  std::string log_message_timestamp_type = "CreateTime";
  int64_t log_message_timestamp_before_max_ms = INT64_MAX;
  int64_t log_message_timestamp_after_max_ms = INT64_MAX;
  bool log_cleaner_enable = true;
  int64_t log_cleaner_delete_retention_ms = 86400000;
  double log_cleaner_min_cleanable_ratio = 0.5;
  int64_t log_cleaner_min_compaction_lag_ms = 0;
  int64_t log_cleaner_max_compaction_lag_ms = INT64_MAX;
  int64_t log_cleaner_backoff_ms = 15000;
  int64_t log_cleaner_dedupe_buffer_size = 134217728;
  int32_t min_insync_replicas = 1;
  bool unclean_leader_election_enable = false;
  int64_t replica_lag_time_max_ms = 30000;
  std::string replica_selector_class;  // KIP-392: empty = consumers read from leaders
  int32_t replica_fetch_wait_max_ms = 500;
  int32_t replica_fetch_min_bytes = 1;
  int32_t replica_fetch_max_bytes = 1048576;
  int32_t replica_fetch_response_max_bytes = 10485760;
  int64_t replica_fetch_backoff_ms = 1000;
  int64_t replica_socket_timeout_ms = 30000;
  int64_t replica_high_watermark_checkpoint_interval_ms = 5000;
  int32_t num_shards = 0;  // 0 = one per core
  int32_t offsets_topic_num_partitions = 50;
  int64_t group_initial_rebalance_delay_ms = 3000;
  int32_t group_min_session_timeout_ms = 6000;
  int32_t group_max_session_timeout_ms = 1800000;
  int64_t offsets_retention_minutes = 10080;
  int64_t offsets_retention_check_interval_ms = 600000;
  int32_t offset_metadata_max_bytes = 4096;
  int32_t transaction_state_log_num_partitions = 50;
  int16_t transaction_state_log_replication_factor = 3;
  int32_t transaction_state_log_min_isr = 2;
  int32_t transaction_state_log_segment_bytes = 104857600;
  int32_t transaction_max_timeout_ms = 900000;
  int64_t transactional_id_expiration_ms = 604800000;
  int64_t transaction_remove_expired_transaction_cleanup_interval_ms = 3600000;
  int64_t transaction_abort_timed_out_transaction_cleanup_interval_ms = 10000;
  std::string log_level = "info";

  // Every key as given (file and overrides) or defaulted, for describing.
  std::map<std::string, std::string> values;
  // Keys supplied explicitly (from the file or --override).
  std::map<std::string, std::string> supplied;
};

struct config_key_info {
  std::string name;
  std::string default_value;  // as text; "" with has_default=false means null
  bool has_default = true;
  std::string doc;
};
const std::vector<config_key_info>& broker_config_keys();

// Parses server.properties text (Java properties subset: key=value or key:value,
// # and ! comments, backslash line continuation).
result<std::map<std::string, std::string>> parse_properties(const std::string& text);

// Builds a config from file properties then overrides (later wins). Unknown
// keys are kept and reported in `warnings`; bad values are errors naming the key.
result<broker_config> make_broker_config(const std::map<std::string, std::string>& props,
                                         std::vector<std::string>* warnings);

result<std::vector<listener_endpoint>> parse_listeners(const std::string& text);

// Listeners of a config by role: the controller listeners (controller.listener.names)
// and the others, which serve clients and other brokers.
bool is_controller_listener(const broker_config& c, const std::string& listener_name);
std::vector<listener_endpoint> broker_listeners(const broker_config& c);       // bound, for clients
std::vector<listener_endpoint> controller_listeners(const broker_config& c);   // bound, for the quorum
std::vector<listener_endpoint> advertised_broker_listeners(const broker_config& c);

// ---- dynamic broker configs (IncrementalAlterConfigs/AlterConfigs on a broker
// resource, kept as ConfigRecords in the metadata log)

// Dynamic configs by resource name: "" = cluster-wide default, "<id>" = one broker.
using dynamic_broker_configs = std::map<std::string, std::map<std::string, std::string>>;

// Keys that may be changed at runtime (Kafka's per-broker dynamic log and
// cleaner configs).
bool is_dynamic_broker_config(const std::string& name);
bool is_list_broker_config(const std::string& name);
const config_key_info* find_broker_config_key(const std::string& name);
// Why a dynamic value is refused (unknown, read-only or invalid), or "".
std::string validate_dynamic_broker_config(const broker_config& static_config, const std::string& name,
                                           const std::string& value);
// The static config with dynamic values layered on: the per-broker value
// wins over the cluster default, which wins over the static value.
broker_config effective_broker_config(const broker_config& static_config, const dynamic_broker_configs& dynamic);

}  // namespace gregor::broker
