// InitProducerId: a producer id and epoch for an idempotent producer, as
// Kafka's TransactionCoordinator.handleInitProducerId gives them to a
// producer without a transactional id: a new id from this broker's block
// (producer_ids.h), epoch 0, on every call, also when v3+ names the
// producer's current id and epoch (KIP-360: such a producer just gets a
// fresh id). With a transactional id it goes to the transaction
// coordinator (coordinator/transaction_service.h).
#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/producer_ids.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::code;
using protocol::error_code;

namespace {

// Up to about a second for a block from the controller before answering
// COORDINATOR_LOAD_IN_PROGRESS.
constexpr int kBlockWaitAttempts = 40;
constexpr int64_t kBlockWaitStepMs = 25;

protocol::init_producer_id_response error_response(error_code e) {
  protocol::init_producer_id_response resp;
  resp.error_code = code(e);
  resp.producer_id = -1;
  resp.producer_epoch = -1;
  return resp;
}

}  // namespace

runtime::task<std::optional<protocol::init_producer_id_response>> handle_init_producer_id(
    request_context& ctx, protocol::init_producer_id_request& req) {
  // v3+: the producer's current id and epoch come both or not at all.
  if ((req.producer_id == -1) != (req.producer_epoch == -1)) co_return error_response(error_code::invalid_request);
  if (req.transactional_id) {
    if (req.transactional_id->empty()) co_return error_response(error_code::invalid_request);
    co_return co_await ctx.b.transactions().init_producer_id(ctx.version(), std::move(req));
  }
  auto& b = ctx.b;
  // The first call on a broker starts the request for its first block: wait
  // for it a little (bounded) rather than make every fresh client retry.
  std::optional<int64_t> id;
  for (int attempt = 0; attempt < kBlockWaitAttempts && !id; ++attempt) {
    if (attempt > 0) co_await runtime::sleep_for(kBlockWaitStepMs);
    id = co_await runtime::submit_to(
        0, [&b]() -> runtime::task<std::optional<int64_t>> { co_return b.producer_ids().next_id(); });
  }
  // No block yet: retriable (older clients treat REQUEST_TIMED_OUT as fatal,
  // so Kafka answers this).
  if (!id) co_return error_response(error_code::coordinator_load_in_progress);
  protocol::init_producer_id_response resp;
  resp.producer_id = *id;
  resp.producer_epoch = 0;
  co_return resp;
}

}  // namespace gregor::broker
