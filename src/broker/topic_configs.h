#pragma once
// The effective value of each topic config and where it came from (the
// topic's own override, the broker's config, or Kafka's default): what
// CreateTopics v5+ and DescribeConfigs report.
#include <cstdint>
#include <map>
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

struct described_config {
  std::string name;
  std::string value;
  config_source source;
};

std::vector<described_config> describe_topic_configs(const broker_config& broker,
                                                     const std::map<std::string, std::string>& overrides);

}  // namespace gregor::broker
