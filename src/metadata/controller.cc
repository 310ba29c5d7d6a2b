#include "metadata/controller.h"

#include <algorithm>
#include <set>

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
  for (auto& b : img.brokers) broker_ids.push_back(b.node_id);
  std::sort(broker_ids.begin(), broker_ids.end());

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
    if (rf <= 0) return {error_code::invalid_replication_factor, "Replication factor must be larger than 0."};
    if (static_cast<size_t>(rf) > broker_ids.size())
      return {error_code::invalid_replication_factor,
              "Unable to replicate the partition " + std::to_string(rf) + " time(s): The target replication factor of " +
                  std::to_string(rf) + " cannot be reached because only " + std::to_string(broker_ids.size()) +
                  " broker(s) are registered."};
    // Round-robin placement starting at a different broker per partition.
    for (int32_t p = 0; p < partitions; ++p) {
      std::vector<int32_t> replicas;
      for (int16_t r = 0; r < rf; ++r) replicas.push_back(broker_ids[(p + r) % broker_ids.size()]);
      placement[p] = replicas;
    }
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
    pr.isr = replicas;
    pr.leader = replicas.front();
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

}  // namespace gregor::metadata
