#include "broker/topic_configs.h"

#include "metadata/topic_config.h"

namespace gregor::broker {

namespace {

// Kafka's broker synonyms of a key, the winner first (ms over minutes over hours).
std::vector<std::string> broker_synonyms(const std::string& key) {
  if (key == "log.retention.ms" || key == "log.retention.minutes" || key == "log.retention.hours")
    return {"log.retention.ms", "log.retention.minutes", "log.retention.hours"};
  if (key == "log.roll.ms" || key == "log.roll.hours") return {"log.roll.ms", "log.roll.hours"};
  if (key == "log.roll.jitter.ms" || key == "log.roll.jitter.hours") return {"log.roll.jitter.ms", "log.roll.jitter.hours"};
  return {key};
}

// Every value of the synonyms of `key`, by source, highest precedence first.
std::vector<config_synonym> synonyms_of(const broker_config_view& b, const std::string& key) {
  std::vector<config_synonym> out;
  auto names = broker_synonyms(key);
  auto dyn = [&](const std::string& resource, config_source src) {
    auto it = b.dynamic.find(resource);
    if (it == b.dynamic.end()) return;
    for (auto& n : names)
      if (auto v = it->second.find(n); v != it->second.end()) out.push_back({n, v->second, src});
  };
  dyn(std::to_string(b.static_config.node_id), config_source::dynamic_broker_config);
  dyn("", config_source::dynamic_default_broker_config);
  for (auto& n : names)
    if (auto v = b.static_config.supplied.find(n); v != b.static_config.supplied.end())
      out.push_back({n, v->second, config_source::static_broker_config});
  for (auto& n : names)
    if (auto* k = find_broker_config_key(n); k && k->has_default)
      out.push_back({n, k->default_value, config_source::default_config});
  return out;
}

// The effective value of a broker key (computed for the keys several keys decide).
std::optional<std::string> effective_value(const broker_config& eff, const std::string& key) {
  if (key == "log.retention.ms") return std::to_string(eff.log_retention_ms);
  if (key == "log.roll.ms") return std::to_string(eff.log_roll_ms);
  if (key == "log.flush.interval.ms") return std::to_string(eff.log_flush_interval_ms);
  if (auto v = eff.values.find(key); v != eff.values.end()) return v->second;
  return std::nullopt;
}

}  // namespace

std::vector<described_config> describe_topic_configs(const broker_config_view& b,
                                                     const std::map<std::string, std::string>& overrides) {
  broker_config eff = effective_broker_config(b.static_config, b.dynamic);
  std::vector<described_config> out;
  for (auto& def : metadata::topic_config_defs()) {
    described_config c;
    c.name = def.name;
    c.config_type = metadata::describe_config_type(def.type);
    c.doc = def.doc;
    if (auto it = overrides.find(def.name); it != overrides.end())
      c.synonyms.push_back({def.name, it->second, config_source::dynamic_topic_config});
    for (auto& s : synonyms_of(b, def.broker_synonym)) c.synonyms.push_back(s);
    if (!c.synonyms.empty() && c.synonyms.front().source == config_source::dynamic_topic_config) {
      c.value = *c.synonyms.front().value;
      c.source = config_source::dynamic_topic_config;
    } else if (auto v = effective_value(eff, def.broker_synonym)) {
      c.value = *v;
      c.source = c.synonyms.empty() ? config_source::default_config : c.synonyms.front().source;
    } else {
      c.value = def.default_value;
      c.source = config_source::default_config;
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<described_config> describe_topic_configs(const broker_config& broker,
                                                     const std::map<std::string, std::string>& overrides) {
  static const dynamic_broker_configs none;
  return describe_topic_configs(broker_config_view{broker, none}, overrides);
}

std::vector<described_config> describe_broker_configs(const broker_config_view& b, const std::string& resource) {
  std::vector<described_config> out;
  if (resource.empty()) {
    auto it = b.dynamic.find("");
    if (it == b.dynamic.end()) return out;
    for (auto& [k, v] : it->second) {
      described_config c;
      c.name = k;
      c.value = v;
      c.source = config_source::dynamic_default_broker_config;
      c.read_only = false;
      c.synonyms.push_back({k, v, config_source::dynamic_default_broker_config});
      out.push_back(std::move(c));
    }
    return out;
  }
  broker_config eff = effective_broker_config(b.static_config, b.dynamic);
  for (auto& key : broker_config_keys()) {
    described_config c;
    c.name = key.name;
    c.doc = key.doc;
    c.read_only = !is_dynamic_broker_config(key.name);
    c.config_type = 2;
    for (auto& s : synonyms_of(b, key.name))
      if (s.name == key.name || key.name == broker_synonyms(key.name).front()) c.synonyms.push_back(s);
    if (!c.synonyms.empty()) {
      c.source = c.synonyms.front().source;
      c.value = key.name == broker_synonyms(key.name).front() ? effective_value(eff, key.name).value_or(*c.synonyms.front().value)
                                                              : *c.synonyms.front().value;
    } else {
      c.source = config_source::default_config;
      c.value_is_null = true;
    }
    if (key.name == "log.retention.ms" || key.name == "log.roll.ms") {
      c.value = *effective_value(eff, key.name);
      c.value_is_null = false;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace gregor::broker
