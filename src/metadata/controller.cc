#include "metadata/controller.h"

#include <algorithm>
#include <set>

#include "metadata/cluster_control.h"
#include "metadata/topic_config.h"

namespace gregor::metadata {

using protocol::error_code;

std::optional<std::string> invalid_topic_name(const std::string& name) {
  if (name.empty()) return "Topic name is illegal, it can't be empty";
  if (name == "." || name == "..") return "Topic name cannot be \".\" or \"..\"";
  if (name.size() > 249) return "Topic name is illegal, it can't be longer than 249 characters, topic name: " + name;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok)
      return "Topic name \"" + name +
             "\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'";
  }
  return std::nullopt;
}

decision plan_create_topic(const image& img, const topic_spec& spec, const uuid& new_topic_id,
                           const controller_defaults& defaults, std::vector<record>& out) {
  if (auto why = invalid_topic_name(spec.name)) return {error_code::invalid_topic_exception, *why};
  if (img.topic(spec.name)) return {error_code::topic_already_exists, "Topic '" + spec.name + "' already exists."};
  // Kafka refuses names that collide once '.' and '_' are treated alike (metric names).
  auto canonical = [](std::string s) {
    std::replace(s.begin(), s.end(), '.', '_');
    return s;
  };
  for (auto& [other, _] : img.topics)
    if (canonical(other) == canonical(spec.name))
      return {error_code::invalid_topic_exception,
              "Topic '" + spec.name + "' collides with existing topic: " + other};

  for (auto& [k, v] : spec.configs)
    if (auto why = validate_topic_config(k, v)) return {error_code::invalid_config, *why};

  std::vector<int32_t> broker_ids;
  for (auto& [id, _] : img.brokers) broker_ids.push_back(id);

  std::map<int32_t, std::vector<int32_t>> placement;
  if (!spec.assignments.empty()) {
    if (spec.num_partitions != -1 || spec.replication_factor != -1)
      return {error_code::invalid_request,
              "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the "
              "same time."};
    for (int32_t p = 0; p < static_cast<int32_t>(spec.assignments.size()); ++p) {
      auto it = spec.assignments.find(p);
      if (it == spec.assignments.end())
        return {error_code::invalid_replica_assignment, "Partitions should be a consecutive 0-based integer sequence"};
      std::set<int32_t> seen;
      for (int32_t b : it->second) {
        if (!std::binary_search(broker_ids.begin(), broker_ids.end(), b))
          return {error_code::invalid_replica_assignment, "Replica assignment has an unknown broker " + std::to_string(b)};
        if (!seen.insert(b).second)
          return {error_code::invalid_replica_assignment, "Replica assignment has duplicate brokers"};
      }
      if (it->second.empty()) return {error_code::invalid_replica_assignment, "Replica assignment is empty"};
      placement[p] = it->second;
    }
  } else {
    int32_t partitions = spec.num_partitions == -1 ? defaults.num_partitions : spec.num_partitions;
    int16_t rf = spec.replication_factor == -1 ? defaults.replication_factor : spec.replication_factor;
    if (partitions <= 0) return {error_code::invalid_partitions, "Number of partitions must be larger than 0."};
    auto placed = place_replicas(img, partitions, rf, defaults.placement_start);
    if (!placed.outcome.ok()) return placed.outcome;
    for (int32_t p = 0; p < partitions; ++p) placement[p] = placed.replicas[static_cast<size_t>(p)];
  }

  protocol::topic_record topic;
  topic.name = spec.name;
  topic.topic_id = new_topic_id;
  out.push_back(topic);
  for (auto& [p, replicas] : placement) {
    protocol::partition_record pr;
    pr.partition_id = p;
    pr.topic_id = new_topic_id;
    pr.replicas = replicas;
    // Replicas that cannot serve yet (fenced) are left out of the ISR; the
    // leader is the first in-sync one.
    for (int32_t r : replicas)
      if (img.is_usable(r)) pr.isr.push_back(r);
    if (pr.isr.empty()) pr.isr = replicas;
    pr.leader = img.is_usable(pr.isr.front()) ? pr.isr.front() : -1;
    pr.leader_epoch = 0;
    pr.partition_epoch = 0;
    out.push_back(pr);
  }
  for (auto& [k, v] : spec.configs) {
    protocol::config_record c;
    c.resource_type = 2;  // TOPIC
    c.resource_name = spec.name;
    c.name = k;
    c.value = v;
    out.push_back(c);
  }
  return {};
}

decision plan_delete_topic(const image& img, const std::string& name, std::vector<record>& out) {
  auto* t = img.topic(name);
  if (!t) return {error_code::unknown_topic_or_partition, "This server does not host this topic-partition."};
  protocol::remove_topic_record r;
  r.topic_id = t->topic_id;
  out.push_back(r);
  return {};
}

// ---- configs ----------------------------------------------------------------

namespace {

// The resource's current dynamic configs, or an error.
decision resolve_resource(const image& img, int8_t type, const std::string& name,
                          const std::map<std::string, std::string>** current) {
  static const std::map<std::string, std::string> none;
  if (type == topic_resource) {
    auto* t = img.topic(name);
    if (!t) return {error_code::unknown_topic_or_partition, "The topic '" + name + "' does not exist."};
    *current = &t->configs;
    return {};
  }
  if (type == broker_resource) {
    if (!name.empty()) {
      for (char c : name)
        if (c < '0' || c > '9')
          return {error_code::invalid_request, "Invalid broker id '" + name + "': expected an integer or an empty string"};
    }
    auto it = img.broker_configs.find(name);
    *current = it == img.broker_configs.end() ? &none : &it->second;
    return {};
  }
  return {error_code::invalid_request, "Unsupported resource type " + std::to_string(type)};
}

std::optional<std::string> validate_one(int8_t type, const std::string& name, const std::string& value,
                                        const broker_config_rules& rules) {
  if (type == topic_resource) return validate_topic_config(name, value);
  if (!rules.validate) return "Broker configs cannot be changed";
  return rules.validate(name, value);
}

decision emit_changes(int8_t type, const std::string& resource, const std::map<std::string, std::string>& before,
                      const std::map<std::string, std::string>& after, const broker_config_rules& rules,
                      std::vector<record>& out) {
  if (type == topic_resource) {
    if (auto why = validate_topic_configs(after)) return {error_code::invalid_config, *why};
  } else {
    for (auto& [k, v] : after) {
      auto b = before.find(k);
      if (b != before.end() && b->second == v) continue;
      if (auto why = validate_one(type, k, v, rules)) return {error_code::invalid_config, *why};
    }
  }
  auto add = [&](const std::string& k, std::optional<std::string> v) {
    protocol::config_record c;
    c.resource_type = type;
    c.resource_name = resource;
    c.name = k;
    c.value = std::move(v);
    out.push_back(std::move(c));
  };
  for (auto& [k, v] : after) {
    auto b = before.find(k);
    if (b == before.end() || b->second != v) add(k, v);
  }
  for (auto& [k, _] : before)
    if (!after.count(k)) add(k, std::nullopt);
  return {};
}

bool known_config(int8_t type, const std::string& name, const broker_config_rules& rules,
                  std::string* why) {
  if (type == topic_resource) {
    if (find_topic_config(name)) return true;
    *why = "Unknown topic config name: " + name;
    return false;
  }
  return true;  // broker keys are checked by the rules on SET; DELETE of an unknown key is harmless
  (void)rules;
}

}  // namespace

decision plan_incremental_alter_configs(const image& img, int8_t type, const std::string& resource,
                                        const std::vector<config_change>& changes, const broker_config_rules& rules,
                                        std::vector<record>& out) {
  const std::map<std::string, std::string>* current = nullptr;
  if (auto d = resolve_resource(img, type, resource, &current); !d.ok()) return d;
  std::set<std::string> seen;
  for (auto& c : changes)
    if (!seen.insert(c.name).second)
      return {error_code::invalid_request, "Error due to duplicate config keys: " + c.name};
  std::map<std::string, std::string> next = *current;
  for (auto& c : changes) {
    std::string why;
    if (!known_config(type, c.name, rules, &why)) return {error_code::invalid_config, why};
    bool is_list = type == topic_resource ? find_topic_config(c.name)->type == config_type::list
                                          : (rules.is_list && rules.is_list(c.name));
    switch (c.op) {
      case config_op::set:
        if (!c.value) return {error_code::invalid_request, "Null value not supported for : " + c.name};
        if (auto bad = validate_one(type, c.name, *c.value, rules)) return {error_code::invalid_config, *bad};
        next[c.name] = *c.value;
        break;
      case config_op::remove:
        next.erase(c.name);
        break;
      case config_op::append:
      case config_op::subtract: {
        if (!is_list)
          return {error_code::invalid_config, std::string("Config value ") +
                                                  (c.op == config_op::append ? "append" : "subtract") +
                                                  " is not allowed for config key: " + c.name};
        std::string base;
        if (auto it = next.find(c.name); it != next.end()) base = it->second;
        else if (type == topic_resource) base = find_topic_config(c.name)->default_value;
        else if (rules.default_value) base = rules.default_value(c.name);
        auto items = split_config_list(base);
        for (auto& v : split_config_list(c.value.value_or(""))) {
          auto it = std::find(items.begin(), items.end(), v);
          if (c.op == config_op::append && it == items.end()) items.push_back(v);
          if (c.op == config_op::subtract && it != items.end()) items.erase(it);
        }
        std::string joined;
        for (auto& i : items) joined += (joined.empty() ? "" : ",") + i;
        if (items.empty() && c.op == config_op::subtract) {
          next.erase(c.name);
          break;
        }
        if (auto bad = validate_one(type, c.name, joined, rules)) return {error_code::invalid_config, *bad};
        next[c.name] = joined;
        break;
      }
      default:
        return {error_code::invalid_request, "Unknown config operation " + std::to_string(static_cast<int>(c.op))};
    }
  }
  return emit_changes(type, resource, *current, next, rules, out);
}

decision plan_alter_configs(const image& img, int8_t type, const std::string& resource,
                            const std::vector<std::pair<std::string, std::optional<std::string>>>& configs,
                            const broker_config_rules& rules, std::vector<record>& out) {
  const std::map<std::string, std::string>* current = nullptr;
  if (auto d = resolve_resource(img, type, resource, &current); !d.ok()) return d;
  std::map<std::string, std::string> next;
  for (auto& [k, v] : configs) {
    if (!v) return {error_code::invalid_request, "Null value not supported for : " + k};
    if (next.count(k)) return {error_code::invalid_request, "Error due to duplicate config keys: " + k};
    if (auto bad = validate_one(type, k, *v, rules)) return {error_code::invalid_config, *bad};
    next[k] = *v;
  }
  return emit_changes(type, resource, *current, next, rules, out);
}

// ---- partitions -------------------------------------------------------------

decision plan_create_partitions(const image& img, const std::string& topic, int32_t count,
                                const std::optional<std::vector<std::vector<int32_t>>>& assignments,
                                std::vector<record>& out, uint64_t placement_start) {
  auto* t = img.topic(topic);
  if (!t) return {error_code::unknown_topic_or_partition, "The topic '" + topic + "' does not exist."};
  int32_t current = static_cast<int32_t>(t->partitions.size());
  if (count < current)
    return {error_code::invalid_partitions, "Topic currently has " + std::to_string(current) +
                                                " partitions, which is higher than the requested " +
                                                std::to_string(count) + "."};
  if (count == current)
    return {error_code::invalid_partitions, "Topic already has " + std::to_string(current) + " partitions."};
  std::vector<int32_t> broker_ids;
  for (auto& [id, _] : img.brokers) broker_ids.push_back(id);
  size_t rf = t->partitions.empty() ? 1 : t->partitions[0].replicas.size();
  int32_t added = count - current;
  std::vector<std::vector<int32_t>> placement;
  if (assignments) {
    if (static_cast<int32_t>(assignments->size()) != added)
      return {error_code::invalid_replica_assignment,
              "Attempted to add " + std::to_string(added) + " additional partitions but only " +
                  std::to_string(assignments->size()) + " assignments were provided."};
    for (auto& a : *assignments) {
      if (a.empty()) return {error_code::invalid_replica_assignment, "Replica assignment is empty"};
      std::set<int32_t> seen;
      for (int32_t b : a) {
        if (!std::binary_search(broker_ids.begin(), broker_ids.end(), b))
          return {error_code::invalid_replica_assignment, "Replica assignment has an unknown broker " + std::to_string(b)};
        if (!seen.insert(b).second) return {error_code::invalid_replica_assignment, "Replica assignment has duplicate brokers"};
      }
      if (a.size() != rf)
        return {error_code::invalid_replica_assignment,
                "Inconsistent replication factor between partitions, partition 0 has " + std::to_string(rf) +
                    " while the new partitions have " + std::to_string(a.size())};
      placement.push_back(a);
    }
  } else {
    auto placed = place_replicas(img, added, static_cast<int32_t>(rf), placement_start + static_cast<uint64_t>(current));
    if (!placed.outcome.ok()) return placed.outcome;
    placement = std::move(placed.replicas);
  }
  for (int32_t i = 0; i < added; ++i) {
    protocol::partition_record pr;
    pr.partition_id = current + i;
    pr.topic_id = t->topic_id;
    pr.replicas = placement[static_cast<size_t>(i)];
    for (int32_t r : pr.replicas)
      if (img.is_usable(r)) pr.isr.push_back(r);
    if (pr.isr.empty()) pr.isr = pr.replicas;
    pr.leader = img.is_usable(pr.isr.front()) ? pr.isr.front() : -1;
    pr.leader_epoch = 0;
    pr.partition_epoch = 0;
    out.push_back(pr);
  }
  return {};
}

}  // namespace gregor::metadata
