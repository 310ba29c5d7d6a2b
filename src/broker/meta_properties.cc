#include "broker/meta_properties.h"

#include "base/log.h"
#include "broker/config.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::broker {

result<std::string> ensure_formatted(const std::vector<std::string>& log_dirs, int32_t node_id) {
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
  if (cluster_id.empty()) cluster_id = runtime::random_uuid_base64();
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
