#pragma once
// meta.properties: the identity written into every data directory on first
// start, as Kafka's `kafka-storage format` does. A directory formatted for
// another node or cluster is refused, so two brokers never mix their data.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "broker/config.h"

namespace gregor::broker {

struct meta_properties {
  std::string cluster_id;
  int32_t node_id = -1;
  std::string directory_id;
};

// Reads meta.properties of each log dir, formats the ones that are new (with
// the cluster id of the others, else `wanted_cluster_id`, else a new random
// one) and checks they all agree with each other, with node_id and with
// `wanted_cluster_id` if given. Returns the cluster id.
result<std::string> ensure_formatted(const std::vector<std::string>& log_dirs, int32_t node_id,
                                     const std::string& wanted_cluster_id = "");

// The cluster id the nodes of a cluster agree on without being told one:
// derived from controller.quorum.voters, which every node of the cluster
// shares (Kafka's nodes get theirs from a format step instead).
std::string cluster_id_from_voters(const std::vector<quorum_voter>& voters);

// The cluster id a config asks for: cluster.id if set, else (a cluster)
// the one derived from the voters, else "" (a single node picks a random one).
std::string wanted_cluster_id(const broker_config& config);

}  // namespace gregor::broker
