// ListGroups, DescribeGroups and DeleteGroups, answered by the group coordinator.
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

runtime::task<std::optional<protocol::list_groups_response>> handle_list_groups(request_context& ctx,
                                                                               protocol::list_groups_request& req) {
  co_return co_await ctx.b.groups().list_groups(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::describe_groups_response>> handle_describe_groups(
    request_context& ctx, protocol::describe_groups_request& req) {
  co_return co_await ctx.b.groups().describe_groups(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::delete_groups_response>> handle_delete_groups(
    request_context& ctx, protocol::delete_groups_request& req) {
  co_return co_await ctx.b.groups().delete_groups(ctx.version(), std::move(req));
}

}  // namespace gregor::broker
