// DescribeCluster: cluster id, controller and brokers (AdminClient.describeCluster).
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::describe_cluster_response;

runtime::task<std::optional<response>> handle_describe_cluster(request_context& ctx,
                                                               protocol::describe_cluster_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  response resp;
  resp.endpoint_type = req.endpoint_type;
  if (ctx.version() >= 1 && req.endpoint_type != 1) {
    // Brokers answer for broker endpoints; controllers are not reachable as such here.
    resp.error_code = static_cast<int16_t>(error_code::unsupported_endpoint_type);
    resp.error_message = "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type " +
                         std::string(req.endpoint_type == 2 ? "CONTROLLER" : "UNKNOWN");
    co_return resp;
  }
  resp.cluster_id = img->cluster_id;
  resp.controller_id = img->controller_id;
  for (auto& [id, br] : img->brokers) {
    if (br.fenced) continue;
    auto* ep = br.endpoint(ctx.listener);
    if (!ep) continue;
    auto& out = resp.brokers.emplace_back();
    out.broker_id = id;
    out.host = ep->host;
    out.port = ep->port;
    out.rack = br.rack;
  }
  co_return resp;
}

}  // namespace gregor::broker
