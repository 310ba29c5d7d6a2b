#include "broker/meta_properties.h"

#include <algorithm>

#include "base/log.h"
#include "protocol/wire.h"
#include "broker/config.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::broker {

std::string cluster_id_from_voters(const std::vector<quorum_voter>& voters) {
  auto sorted = voters;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.id < b.id; });
  std::string key = "gregor-cluster";
  for (auto& v : sorted) key += "," + std::to_string(v.id) + "@" + v.host + ":" + std::to_string(v.port);
  // Two FNV-1a hashes with different offsets make the 16 bytes of a UUID.
  protocol::uuid id;
  uint64_t h1 = 1469598103934665603ULL, h2 = 7809847782465536322ULL;
  for (unsigned char c : key) {
    h1 = (h1 ^ c) * 1099511628211ULL;
    h2 = (h2 ^ c) * 1099511628211ULL;
  }
  for (int i = 0; i < 8; ++i) {
    id.data[static_cast<size_t>(i)] = static_cast<uint8_t>(h1 >> (8 * i));
    id.data[static_cast<size_t>(8 + i)] = static_cast<uint8_t>(h2 >> (8 * i));
  }
  id.data[6] = static_cast<uint8_t>((id.data[6] & 0x0f) | 0x40);  // version 4, as random ids have
  id.data[8] = static_cast<uint8_t>((id.data[8] & 0x3f) | 0x80);
  return id.to_string();
}

std::string wanted_cluster_id(const broker_config& config) {
  if (!config.cluster_id.empty()) return config.cluster_id;
  if (config.roles_given && !config.quorum_voters.empty()) return cluster_id_from_voters(config.quorum_voters);
  return "";
}

result<std::string> ensure_formatted(const std::vector<std::string>& log_dirs, int32_t node_id,
                                     const std::string& wanted_cluster_id) {
  std::string cluster_id;
  std::vector<std::string> unformatted;
  for (auto& dir : log_dirs) {
    std::string path = dir + "/meta.properties";
    if (!runtime::fs::exists(path)) {
      unformatted.push_back(dir);
      continue;
    }
    auto text = runtime::fs::read_file(path);
    if (!text) return text.err();
    auto props = parse_properties(text.value());
    if (!props) return error{path + ": " + props.err().message};
    auto& p = props.value();
    if (!p.count("cluster.id") || !p.count("node.id"))
      return error{path + " lacks cluster.id or node.id; it was not written by a KRaft broker. Move it away to reformat."};
    if (p["node.id"] != std::to_string(node_id))
      return error{path + " was formatted for node.id=" + p["node.id"] + " but this broker is node.id=" +
                   std::to_string(node_id) + ". Use the matching node.id or another log.dirs."};
    if (!cluster_id.empty() && p["cluster.id"] != cluster_id)
      return error{path + " belongs to cluster " + p["cluster.id"] + " but another log dir belongs to cluster " +
                   cluster_id + ". Every log dir of a broker must be of the same cluster."};
    cluster_id = p["cluster.id"];
  }
  if (!cluster_id.empty() && !wanted_cluster_id.empty() && cluster_id != wanted_cluster_id)
    return error{"the log dirs belong to cluster " + cluster_id + " but this node is configured for cluster " +
                 wanted_cluster_id + " (cluster.id, or the one controller.quorum.voters gives). Start it with "
                 "--override cluster.id=" + cluster_id + " to keep this data, or use empty log.dirs for the new "
                 "cluster."};
  if (cluster_id.empty()) cluster_id = wanted_cluster_id.empty() ? runtime::random_uuid_base64() : wanted_cluster_id;
  for (auto& dir : unformatted) {
    if (auto r = runtime::fs::create_directories(dir); !r) return r.err();
    std::string content = "#\n# Written by Gregor on first start; do not edit.\nversion=1\ncluster.id=" + cluster_id +
                          "\nnode.id=" + std::to_string(node_id) +
                          "\ndirectory.id=" + runtime::random_uuid_base64() + "\n";
    if (auto r = runtime::fs::write_file_atomic(dir + "/meta.properties", content); !r) return r.err();
    log::get("broker")->info("formatted log dir {} for cluster {} node {}", dir, cluster_id, node_id);
  }
  return cluster_id;
}

}  // namespace gregor::broker
