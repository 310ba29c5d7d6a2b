// FindCoordinator: the coordinator of a group is the leader of its partition
// of __consumer_offsets (abs(String.hashCode) % partitions); on one node that
// is always us. The topic is created on the first lookup, as Kafka does.
#include "broker/broker.h"
#include "broker/handler.h"

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
  } else if (key_type != 1) {
    // 1 (transactional ids) is answered with this node too: the transaction
    // coordinator lives on every broker of a one-node cluster.
    err = error_code::invalid_request;
    message = "Unknown coordinator type " + std::to_string(key_type);
  }

  int32_t node_id = -1;
  std::string host;
  int32_t port = -1;
  if (err == error_code::none) {
    auto img = b.image();
    if (auto* br = img->broker(b.config().node_id); br && !br->fenced) {
      if (auto* ep = br->endpoint(ctx.listener)) {
        node_id = br->node_id;
        host = ep->host;
        port = ep->port;
      }
    }
    if (node_id < 0) err = error_code::coordinator_not_available;
  }

  response resp;
  if (v < 4) {
    resp.error_code = static_cast<int16_t>(err);
    if (err != error_code::none) resp.error_message = message.empty() ? protocol::error_name(err) : message;
    resp.node_id = node_id;
    resp.host = host;
    resp.port = port;
  } else {
    for (auto& k : keys) {
      auto& c = resp.coordinators.emplace_back();
      c.key = k;
      c.error_code = static_cast<int16_t>(err);
      if (err != error_code::none) c.error_message = message.empty() ? protocol::error_name(err) : message;
      c.node_id = node_id;
      c.host = host;
      c.port = port;
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
