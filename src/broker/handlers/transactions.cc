// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, ListTransactions and
// DescribeTransactions: answered by the transaction coordinator
// (coordinator/transaction_service.h), which lives on shard 0.
#include "broker/broker.h"
#include "broker/handler.h"
#include "coordinator/transaction_service.h"

namespace gregor::broker {

runtime::task<std::optional<protocol::add_partitions_to_txn_response>> handle_add_partitions_to_txn(
    request_context& ctx, protocol::add_partitions_to_txn_request& req) {
  auto img = ctx.b.image();
  auto exists = [img](const std::string& topic, int32_t partition) {
    auto* t = img->topic(topic);
    return t && partition >= 0 && static_cast<size_t>(partition) < t->partitions.size();
  };
  co_return co_await ctx.b.transactions().add_partitions_to_txn(ctx.version(), std::move(req), std::move(exists));
}

runtime::task<std::optional<protocol::add_offsets_to_txn_response>> handle_add_offsets_to_txn(
    request_context& ctx, protocol::add_offsets_to_txn_request& req) {
  auto img = ctx.b.image();
  int32_t partitions = ctx.b.config().offsets_topic_num_partitions;
  if (auto* t = img->topic(std::string(coordinator::offsets_topic_name)); t && !t->partitions.empty())
    partitions = static_cast<int32_t>(t->partitions.size());
  co_return co_await ctx.b.transactions().add_offsets_to_txn(ctx.version(), std::move(req), partitions);
}

runtime::task<std::optional<protocol::end_txn_response>> handle_end_txn(request_context& ctx,
                                                                       protocol::end_txn_request& req) {
  co_return co_await ctx.b.transactions().end_txn(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::list_transactions_response>> handle_list_transactions(
    request_context& ctx, protocol::list_transactions_request& req) {
  co_return co_await ctx.b.transactions().list_transactions(ctx.version(), std::move(req));
}

runtime::task<std::optional<protocol::describe_transactions_response>> handle_describe_transactions(
    request_context& ctx, protocol::describe_transactions_request& req) {
  co_return co_await ctx.b.transactions().describe_transactions(ctx.version(), std::move(req));
}

}  // namespace gregor::broker
