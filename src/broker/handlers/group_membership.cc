// JoinGroup, SyncGroup, Heartbeat, LeaveGroup: handed to the group
// coordinator (its state lives on one shard); the reply comes back when the
// coordinator releases it (a JoinGroup waits for the rebalance).
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

namespace {
// Kafka reports a member's host as InetAddress.toString(): "/127.0.0.1".
std::string client_host(const std::string& peer) {
  auto colon = peer.rfind(':');
  return "/" + (colon == std::string::npos ? peer : peer.substr(0, colon));
}
}  // namespace

runtime::task<std::optional<protocol::join_group_response>> handle_join_group(request_context& ctx,
                                                                             protocol::join_group_request& req) {
  coordinator::client_info client{ctx.header.client_id.value_or(""), client_host(ctx.peer)};
  co_return co_await ctx.b.groups().join_group(ctx.version(), std::move(req), std::move(client));
}

runtime::task<std::optional<protocol::sync_group_response>> handle_sync_group(request_context& ctx,
                                                                             protocol::sync_group_request& req) {
  co_return co_await ctx.b.groups().sync_group(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::heartbeat_response>> handle_heartbeat(request_context& ctx,
                                                                           protocol::heartbeat_request& req) {
  co_return co_await ctx.b.groups().heartbeat(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::leave_group_response>> handle_leave_group(request_context& ctx,
                                                                               protocol::leave_group_request& req) {
  co_return co_await ctx.b.groups().leave_group(ctx.version(), std::move(req));
}

}  // namespace gregor::broker
