#include "broker/topic_configs.h"

#include "metadata/topic_config.h"

namespace gregor::broker {

std::vector<described_config> describe_topic_configs(const broker_config& broker,
                                                     const std::map<std::string, std::string>& overrides) {
  // Broker keys whose effective value is computed from several keys.
  std::map<std::string, std::string> computed = {
      {"log.retention.ms", std::to_string(broker.log_retention_ms)},
      {"log.roll.ms", std::to_string(broker.log_roll_ms)},
      {"log.flush.interval.ms", std::to_string(broker.log_flush_interval_ms)},
  };
  std::vector<described_config> out;
  for (auto& def : metadata::topic_config_defs()) {
    if (auto it = overrides.find(def.name); it != overrides.end()) {
      out.push_back({def.name, it->second, config_source::dynamic_topic_config});
      continue;
    }
    bool supplied = broker.supplied.count(def.broker_synonym) > 0;
    if (auto c = computed.find(def.broker_synonym); c != computed.end()) {
      bool any = supplied || broker.supplied.count("log.retention.hours") || broker.supplied.count("log.retention.minutes") ||
                 broker.supplied.count("log.roll.hours");
      out.push_back({def.name, c->second, any ? config_source::static_broker_config : config_source::default_config});
      continue;
    }
    if (auto v = broker.values.find(def.broker_synonym); v != broker.values.end()) {
      out.push_back({def.name, v->second, supplied ? config_source::static_broker_config : config_source::default_config});
      continue;
    }
    out.push_back({def.name, def.default_value, config_source::default_config});
  }
  return out;
}

}  // namespace gregor::broker
