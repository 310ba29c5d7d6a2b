#pragma once
// The effective value of each topic config and where it came from (the
// topic's own override, a dynamic broker config, the broker's static config,
// or Kafka's default): what CreateTopics v5+ and DescribeConfigs report, with
// the synonyms DescribeConfigs v1+ lists.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/config.h"

namespace gregor::broker {

// DescribeConfigs config_source values.
enum class config_source : int8_t {
  unknown = 0,
  dynamic_topic_config = 1,
  dynamic_broker_config = 2,
  dynamic_default_broker_config = 3,
  static_broker_config = 4,
  default_config = 5,
};

struct config_synonym {
  std::string name;
  std::optional<std::string> value;
  config_source source;
};

struct described_config {
  std::string name;
  std::string value;
  config_source source;
  bool value_is_null = false;  // broker keys without a value
  bool read_only = false;
  int8_t config_type = 0;  // DescribeConfigs v3+ (UNKNOWN 0, BOOLEAN 1, STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7)
  std::string doc;
  std::vector<config_synonym> synonyms;  // in precedence order, the winner first
};

// Static and dynamic broker configs together.
struct broker_config_view {
  const broker_config& static_config;
  const dynamic_broker_configs& dynamic;
};

std::vector<described_config> describe_topic_configs(const broker_config_view& broker,
                                                     const std::map<std::string, std::string>& overrides);
// Without dynamic broker configs (CreateTopics).
std::vector<described_config> describe_topic_configs(const broker_config& broker,
                                                     const std::map<std::string, std::string>& overrides);
// A broker resource: "<node id>" lists every key with its effective value;
// "" (the cluster default) lists only the dynamic cluster defaults.
std::vector<described_config> describe_broker_configs(const broker_config_view& broker, const std::string& resource);

}  // namespace gregor::broker
