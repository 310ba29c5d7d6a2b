// The metadata quorum's RPCs (controller listener): Vote, BeginQuorumEpoch,
// EndQuorumEpoch, FetchSnapshot, and DescribeQuorum (on any listener; a
// broker forwards it to the active controller, which leads the quorum).
// The quorum lives on shard 0.
#include "broker/broker.h"
#include "broker/handler.h"
#include "runtime/shards.h"

namespace gregor::broker {

runtime::task<std::optional<protocol::vote_response>> handle_vote(request_context& ctx,
                                                                  protocol::vote_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::vote_response>> {
    co_return co_await b.quorum().handle_vote(req, v);
  });
}

runtime::task<std::optional<protocol::begin_quorum_epoch_response>> handle_begin_quorum_epoch(
    request_context& ctx, protocol::begin_quorum_epoch_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::begin_quorum_epoch_response>> {
    co_return co_await b.quorum().handle_begin_quorum_epoch(req, v);
  });
}

runtime::task<std::optional<protocol::end_quorum_epoch_response>> handle_end_quorum_epoch(
    request_context& ctx, protocol::end_quorum_epoch_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::end_quorum_epoch_response>> {
    co_return co_await b.quorum().handle_end_quorum_epoch(req, v);
  });
}

runtime::task<std::optional<protocol::fetch_snapshot_response>> handle_fetch_snapshot(
    request_context& ctx, protocol::fetch_snapshot_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::fetch_snapshot_response>> {
    co_return co_await b.quorum().handle_fetch_snapshot(req, v);
  });
}

runtime::task<std::optional<protocol::describe_quorum_response>> handle_describe_quorum(
    request_context& ctx, protocol::describe_quorum_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  (void)req;
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::describe_quorum_response>> {
    co_return b.quorum().describe_quorum(v);
  });
}

}  // namespace gregor::broker
