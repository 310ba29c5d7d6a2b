#include "broker/quorum_bootstrap.h"

#include <memory>

#include "base/log.h"
#include "protocol/messages.h"
#include "protocol/rpc_client.h"
#include "runtime/clock.h"

namespace gregor::broker {

namespace {

// The voters and their endpoints from one DescribeQuorum v2 answer; empty
// when the server does not lead the quorum (or answered nothing usable).
std::vector<raft::voter_endpoint> voters_of(const protocol::describe_quorum_response& r,
                                            const std::string& listener) {
  std::vector<raft::voter_endpoint> out;
  if (r.error_code != 0 || r.topics.empty() || r.topics[0].partitions.empty()) return out;
  auto& p = r.topics[0].partitions[0];
  if (p.error_code != 0) return out;
  for (auto& v : p.current_voters) {
    const protocol::describe_quorum_response::quorum_listener* found = nullptr;
    for (auto& n : r.nodes)
      if (n.node_id == v.replica_id)
        for (auto& l : n.listeners)
          if (!found || l.name == listener) found = &l;
    if (!found) return {};  // a voter without an endpoint: cannot reach it
    out.push_back({v.replica_id, found->host, found->port});
  }
  return out;
}

}  // namespace

runtime::task<result<std::vector<raft::voter_endpoint>>> discover_voters(const broker_config& config,
                                                                        int64_t timeout_ms) {
  auto lg = log::get("broker");
  const std::string listener =
      config.controller_listener_names.empty() ? "CONTROLLER" : config.controller_listener_names.front();
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  std::vector<std::unique_ptr<protocol::rpc_client>> clients;
  for (auto& [host, port] : config.quorum_bootstrap_servers)
    clients.push_back(std::make_unique<protocol::rpc_client>(host, port, "gregor-bootstrap-" +
                                                                             std::to_string(config.node_id)));
  protocol::describe_quorum_request req;
  auto& t = req.topics.emplace_back();
  t.topic_name = raft::metadata_topic;
  t.partitions.emplace_back().partition_index = 0;
  std::string last = "no answer yet";
  while (runtime::monotonic_ms() < deadline) {
    for (auto& c : clients) {
      auto r = co_await c->call<protocol::describe_quorum_response>(req, 2, config.quorum_request_timeout_ms);
      if (!r) {
        last = r.err().message;
        continue;
      }
      auto voters = voters_of(r.value(), listener);
      if (!voters.empty()) {
        std::string names;
        for (auto& v : voters) names += (names.empty() ? "" : ",") + std::to_string(v.id) + "@" + v.host + ":" +
                                        std::to_string(v.port);
        lg->info("controller.quorum.bootstrap.servers: the quorum's voters are {}", names);
        co_return voters;
      }
      last = c->host() + ":" + std::to_string(c->port()) + " does not lead the quorum";
    }
    co_await runtime::sleep_for(200);
  }
  co_return error{"could not find the metadata quorum through controller.quorum.bootstrap.servers within " +
                  std::to_string(timeout_ms) + " ms (last: " + last + "): are the controllers up, and is that " +
                  "their controller listener?"};
}

}  // namespace gregor::broker
