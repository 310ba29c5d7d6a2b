// FindCoordinator: the coordinator of a group is the leader of its partition
// of __consumer_offsets (abs(String.hashCode) % partitions), that of a
// transactional id the leader of its partition of __transaction_state (the
// same hash). Each topic is created on its first lookup, as Kafka does.
#include "broker/broker.h"
#include "broker/handler.h"
#include "coordinator/group_coordinator.h"
#include "coordinator/transaction_service.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::find_coordinator_response;

runtime::task<std::optional<response>> handle_find_coordinator(request_context& ctx,
                                                               protocol::find_coordinator_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  int8_t key_type = v >= 1 ? req.key_type : 0;
  std::vector<std::string> keys = v >= 4 ? req.coordinator_keys : std::vector<std::string>{req.key};

  error_code err = error_code::none;
  std::string message;
  if (key_type == 0) {
    auto r = co_await b.groups().ensure_topic();
    if (!r) {
      err = error_code::coordinator_not_available;
      message = r.err().message;
    }
  } else if (key_type == 1) {
    auto r = co_await b.transactions().ensure_topic();
    if (!r) {
      err = error_code::coordinator_not_available;
      message = r.err().message;
    }
  } else {
    err = error_code::invalid_request;
    message = "Unknown coordinator type " + std::to_string(key_type);
  }

  struct found {
    error_code err;
    int32_t node_id = -1;
    std::string host;
    int32_t port = -1;
  };
  auto img = b.image();
  auto at = [&](int32_t id) -> found {
    if (auto* br = img->broker(id); br && !br->fenced)
      if (auto* ep = br->endpoint(ctx.listener)) return {error_code::none, id, ep->host, ep->port};
    return {error_code::coordinator_not_available};
  };
  // A group's coordinator is the leader of its partition of
  // __consumer_offsets, a transactional id's that of __transaction_state.
  auto coordinator_for = [&](const std::string& key) -> found {
    if (err != error_code::none) return {err};
    auto* t = img->topic(std::string(key_type == 1 ? coordinator::transaction_state_topic_name
                                                   : coordinator::offsets_topic_name));
    if (!t || t->partitions.empty()) return {error_code::coordinator_not_available};
    auto n = static_cast<int32_t>(t->partitions.size());
    int32_t p = key_type == 1 ? coordinator::partition_for_transactional_id(key, n)
                              : coordinator::partition_for_group(key, n);
    int32_t leader = t->partitions[static_cast<size_t>(p)].leader;
    return leader < 0 ? found{error_code::coordinator_not_available} : at(leader);
  };

  response resp;
  auto message_for = [&](error_code e) { return message.empty() ? protocol::error_name(e) : message; };
  if (v < 4) {
    auto f = coordinator_for(keys.empty() ? std::string() : keys.front());
    resp.error_code = static_cast<int16_t>(f.err);
    if (f.err != error_code::none) resp.error_message = message_for(f.err);
    resp.node_id = f.node_id;
    resp.host = f.host;
    resp.port = f.port;
  } else {
    for (auto& k : keys) {
      auto f = coordinator_for(k);
      auto& c = resp.coordinators.emplace_back();
      c.key = k;
      c.error_code = static_cast<int16_t>(f.err);
      if (f.err != error_code::none) c.error_message = message_for(f.err);
      c.node_id = f.node_id;
      c.host = f.host;
      c.port = f.port;
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
