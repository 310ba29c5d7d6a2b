// The metadata quorum's RPCs (controller listener): Vote, BeginQuorumEpoch,
// EndQuorumEpoch, FetchSnapshot, and DescribeQuorum (on any listener; a
// broker forwards it to the active controller, which leads the quorum).
// The quorum lives on shard 0.
#include "broker/broker.h"
#include "broker/handler.h"
#include "runtime/shards.h"

namespace gregor::broker {

namespace {

// Runs one of the driver's request handlers on shard 0, where the quorum lives.
template <class Resp, class Req>
runtime::task<std::optional<Resp>> on_quorum(request_context& ctx, Req& req,
                                             runtime::task<Resp> (raft::driver::*handle)(const Req&, int16_t)) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<Resp>> {
    co_return co_await (b.quorum().*handle)(req, v);
  });
}

}  // namespace

runtime::task<std::optional<protocol::vote_response>> handle_vote(request_context& ctx,
                                                                  protocol::vote_request& req) {
  return on_quorum(ctx, req, &raft::driver::handle_vote);
}

runtime::task<std::optional<protocol::begin_quorum_epoch_response>> handle_begin_quorum_epoch(
    request_context& ctx, protocol::begin_quorum_epoch_request& req) {
  return on_quorum(ctx, req, &raft::driver::handle_begin_quorum_epoch);
}

runtime::task<std::optional<protocol::end_quorum_epoch_response>> handle_end_quorum_epoch(
    request_context& ctx, protocol::end_quorum_epoch_request& req) {
  return on_quorum(ctx, req, &raft::driver::handle_end_quorum_epoch);
}

runtime::task<std::optional<protocol::fetch_snapshot_response>> handle_fetch_snapshot(
    request_context& ctx, protocol::fetch_snapshot_request& req) {
  return on_quorum(ctx, req, &raft::driver::handle_fetch_snapshot);
}

runtime::task<std::optional<protocol::describe_quorum_response>> handle_describe_quorum(
    request_context& ctx, protocol::describe_quorum_request&) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::describe_quorum_response>> {
    co_return b.quorum().describe_quorum(v);
  });
}

}  // namespace gregor::broker
