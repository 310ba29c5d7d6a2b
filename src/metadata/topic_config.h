#pragma once
// Topic-level configs: Kafka's names, which broker key each falls back to (its
// synonym), and how a value is checked. CreateTopics and later AlterConfigs
// validate through here; DescribeConfigs lists from here.
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gregor::metadata {

enum class config_type { boolean, int32, int64, dbl, string, list };

struct topic_config_def {
  std::string name;
  std::string broker_synonym;  // broker key whose value is the default ("" = none)
  config_type type;
  std::string default_value;  // used when the broker has no synonym value
  std::vector<std::string> valid_values;  // for enumerations; empty = any
  double min_value = -std::numeric_limits<double>::infinity();  // numeric range, as Kafka's validators
  double max_value = std::numeric_limits<double>::infinity();
  std::string doc;
};

const std::vector<topic_config_def>& topic_config_defs();
const topic_config_def* find_topic_config(const std::string& name);

// Checks a topic config value; returns the reason it is invalid, if it is.
std::optional<std::string> validate_topic_config(const std::string& name, const std::string& value);
// Checks a whole set of topic overrides together (each value, then the
// rules between them, such as min.compaction.lag.ms <= max.compaction.lag.ms).
std::optional<std::string> validate_topic_configs(const std::map<std::string, std::string>& configs);

// DescribeConfigs v3+ config_type values.
int8_t describe_config_type(config_type t);

// Items of a list config value ("compact, delete" -> {"compact", "delete"}).
std::vector<std::string> split_config_list(const std::string& value);

}  // namespace gregor::metadata
