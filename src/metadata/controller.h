#pragma once
// The controller: decides metadata changes (create and delete topics, for
// now) against the current image and returns the records that make them. It
// is pure: ids and defaults come in as arguments, records go out, and the
// driver commits them to the metadata log before anyone is told.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "metadata/image.h"
#include "metadata/records.h"
#include "protocol/errors.h"

namespace gregor::metadata {

struct topic_spec {
  std::string name;
  int32_t num_partitions = -1;      // -1: the broker default
  int16_t replication_factor = -1;  // -1: the broker default
  std::map<int32_t, std::vector<int32_t>> assignments;  // explicit replica placement, if given
  std::map<std::string, std::string> configs;
};

struct controller_defaults {
  int32_t num_partitions = 1;
  int16_t replication_factor = 1;
  // Where replica placement starts among the brokers (Kafka picks it at
  // random, so topics' leaders spread over the cluster).
  uint64_t placement_start = 0;
};

// A leader elected from outside its partition's ISR, because no in-sync
// replica could lead and unclean.leader.election.enable allowed it: records
// the old ISR acknowledged may be lost. The caller logs it.
struct unclean_election {
  std::string topic;
  int32_t partition = 0;
  int32_t leader = -1;
  std::vector<int32_t> previous_isr;  // the in-sync replicas it replaced, all out of reach
  bool operator==(const unclean_election&) const = default;
};

struct decision {
  protocol::error_code error = protocol::error_code::none;
  std::string message;
  // What the caller must report once the records commit.
  std::vector<unclean_election> unclean_elections;
  bool ok() const { return error == protocol::error_code::none; }
};

// Kafka's topic name rules: 1-249 of [a-zA-Z0-9._-], not "." or "..".
std::optional<std::string> invalid_topic_name(const std::string& name);

decision plan_create_topic(const image& img, const topic_spec& spec, const uuid& new_topic_id,
                           const controller_defaults& defaults, std::vector<record>& out);
decision plan_delete_topic(const image& img, const std::string& name, std::vector<record>& out);

// ---- configs (AlterConfigs, IncrementalAlterConfigs)

// Config resource types, as DescribeConfigs and ConfigRecord number them.
inline constexpr int8_t topic_resource = 2;
inline constexpr int8_t broker_resource = 4;

// IncrementalAlterConfigs operations.
enum class config_op : int8_t { set = 0, remove = 1, append = 2, subtract = 3 };
struct config_change {
  std::string name;
  config_op op = config_op::set;
  std::optional<std::string> value;
};

// What the broker module knows about its own keys (metadata cannot see them).
struct broker_config_rules {
  // The reason a dynamic broker config value is refused (unknown key, not
  // dynamic, bad value), or nullopt.
  std::function<std::optional<std::string>(const std::string& name, const std::string& value)> validate;
  std::function<bool(const std::string& name)> is_list;
  std::function<std::string(const std::string& name)> default_value;  // for APPEND to an unset key
};

// IncrementalAlterConfigs on one resource: the changes apply to the
// resource's current dynamic configs; records go out only for keys that change.
decision plan_incremental_alter_configs(const image& img, int8_t resource_type, const std::string& resource_name,
                                        const std::vector<config_change>& changes, const broker_config_rules& rules,
                                        std::vector<record>& out);
// AlterConfigs on one resource: `configs` becomes its whole set of dynamic
// configs (keys not given are removed). A null value is refused.
decision plan_alter_configs(const image& img, int8_t resource_type, const std::string& resource_name,
                            const std::vector<std::pair<std::string, std::optional<std::string>>>& configs,
                            const broker_config_rules& rules, std::vector<record>& out);

// ---- partitions

// Grows a topic to `count` partitions (never fewer). `assignments`, if
// given, places each new partition (one replica list per new partition).
decision plan_create_partitions(const image& img, const std::string& topic, int32_t count,
                                const std::optional<std::vector<std::vector<int32_t>>>& assignments,
                                std::vector<record>& out, uint64_t placement_start = 0);

}  // namespace gregor::metadata
