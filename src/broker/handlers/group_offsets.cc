// OffsetCommit, OffsetFetch, OffsetDelete and TxnOffsetCommit: a group's
// committed offsets, kept by the group coordinator in __consumer_offsets.
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

namespace {
// Offsets of partitions that do not exist are refused (UNKNOWN_TOPIC_OR_PARTITION), as Kafka does.
std::function<bool(const std::string&, int32_t)> partition_exists(request_context& ctx) {
  auto img = ctx.b.image();
  return [img](const std::string& topic, int32_t partition) {
    auto* t = img->topic(topic);
    return t && partition >= 0 && static_cast<size_t>(partition) < t->partitions.size();
  };
}
}  // namespace

runtime::task<std::optional<protocol::offset_commit_response>> handle_offset_commit(
    request_context& ctx, protocol::offset_commit_request& req) {
  auto exists = partition_exists(ctx);
  co_return co_await ctx.b.groups().offset_commit(ctx.version(), std::move(req), std::move(exists));
}

runtime::task<std::optional<protocol::txn_offset_commit_response>> handle_txn_offset_commit(
    request_context& ctx, protocol::txn_offset_commit_request& req) {
  auto exists = partition_exists(ctx);
  co_return co_await ctx.b.groups().txn_offset_commit(ctx.version(), std::move(req), std::move(exists));
}

runtime::task<std::optional<protocol::offset_fetch_response>> handle_offset_fetch(request_context& ctx,
                                                                                 protocol::offset_fetch_request& req) {
  co_return co_await ctx.b.groups().offset_fetch(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::offset_delete_response>> handle_offset_delete(
    request_context& ctx, protocol::offset_delete_request& req) {
  co_return co_await ctx.b.groups().offset_delete(ctx.version(), std::move(req));
}

}  // namespace gregor::broker
