#pragma once
// Topic-level configs: Kafka's names, which broker key each falls back to (its
// synonym), and how a value is checked. CreateTopics and later AlterConfigs
// validate through here; DescribeConfigs lists from here.
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
};

const std::vector<topic_config_def>& topic_config_defs();
const topic_config_def* find_topic_config(const std::string& name);

// Checks a topic config value; returns the reason it is invalid, if it is.
std::optional<std::string> validate_topic_config(const std::string& name, const std::string& value);

}  // namespace gregor::metadata
