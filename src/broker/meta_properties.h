#pragma once
// meta.properties: the identity written into every data directory on first
// start, as Kafka's `kafka-storage format` does. A directory formatted for
// another node or cluster is refused, so two brokers never mix their data.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace gregor::broker {

struct meta_properties {
  std::string cluster_id;
  int32_t node_id = -1;
  std::string directory_id;
};

// Reads meta.properties of each log dir, formats the ones that are new (with
// the cluster id of the others, or a new one) and checks they all agree with
// each other and with node_id. Returns the cluster id.
result<std::string> ensure_formatted(const std::vector<std::string>& log_dirs, int32_t node_id);

}  // namespace gregor::broker
