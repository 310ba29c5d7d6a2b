#include "broker/producer_ids.h"

#include <limits>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/lifecycle.h"
#include "metadata/cluster_control.h"
#include "protocol/messages.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
constexpr int16_t kAllocateProducerIdsVersion = 0;
auto lg() { return log::get("producer-ids"); }
}  // namespace

// ---- producer_id_blocks

producer_id_blocks::claim producer_id_blocks::next(int64_t now_ms) {
  claim c;
  if (next_ >= end_ && prefetched_) {
    first_ = prefetched_->start;
    next_ = first_;
    end_ = first_ + prefetched_->len;
    prefetch_at_ = first_ + static_cast<int64_t>(prefetched_->len) * 9 / 10;
    prefetched_.reset();
  }
  if (next_ < end_) {
    c.id = next_++;
    // Kafka asks when the id at 90% of the block goes out; asking at any id
    // past it also covers a request refused or lost at that moment.
    if (*c.id < prefetch_at_) return c;
  }
  if (may_request(now_ms)) {
    c.request_block = true;
    in_flight_ = true;
  }
  return c;
}

bool producer_id_blocks::block_received(int64_t start, int32_t len, int64_t now_ms) {
  in_flight_ = false;
  if (start < 0 || len <= 0 || start > std::numeric_limits<int64_t>::max() - len || start < highest_end_) {
    backoff_until_ms_ = now_ms + retry_backoff_ms;
    return false;
  }
  highest_end_ = start + len;
  prefetched_ = block{start, len};
  return true;
}

void producer_id_blocks::request_failed(int64_t now_ms) {
  in_flight_ = false;
  backoff_until_ms_ = now_ms + retry_backoff_ms;
}

// ---- producer_id_manager

std::optional<int64_t> producer_id_manager::next_id() {
  auto c = blocks_.next(runtime::monotonic_ms());
  if (c.request_block) runtime::spawn(0, [this] { return request_block(); });
  return c.id;
}

runtime::task<void> producer_id_manager::request_block() {
  const int32_t node_id = b_.config().node_id;
  const int64_t broker_epoch = b_.lifecycle() ? b_.lifecycle()->broker_epoch() : -1;
  metadata::producer_ids_result result;
  if (b_.quorum().leader_id() == node_id && b_.controller()) {
    // The active controller is this node: decide here.
    auto d = co_await b_.controller_write(
        [&](const metadata::image& img, std::vector<metadata::record>& out) {
          result = metadata::plan_allocate_producer_ids(img, node_id, broker_epoch, out);
          return metadata::decision{};
        },
        false);
    if (!d.ok()) {
      result = {};
      result.error = d.error;
      result.message = d.message;
    }
  } else {
    protocol::allocate_producer_ids_request req;
    req.broker_id = node_id;
    req.broker_epoch = broker_epoch;
    auto r = co_await b_.call_controller<protocol::allocate_producer_ids_response>(
        req, kAllocateProducerIdsVersion, b_.config().quorum_request_timeout_ms);
    if (!r) {
      result.error = error_code::request_timed_out;
      result.message = r.err().message;
    } else {
      result.error = static_cast<error_code>(r->error_code);
      result.producer_id_start = r->producer_id_start;
      result.producer_id_len = r->producer_id_len;
    }
  }
  const int64_t now = runtime::monotonic_ms();
  if (result.error != error_code::none) {
    lg()->warn("cannot get producer ids from the controller: {}{}{}", protocol::error_name(result.error),
               result.message.empty() ? "" : ": ", result.message);
    blocks_.request_failed(now);
    co_return;
  }
  if (!blocks_.block_received(result.producer_id_start, result.producer_id_len, now)) {
    lg()->error("the controller gave an invalid block of producer ids: start {}, length {}", result.producer_id_start,
                result.producer_id_len);
    co_return;
  }
  lg()->info("got producer ids {} to {} from the controller", result.producer_id_start,
             result.producer_id_start + result.producer_id_len - 1);
}

}  // namespace gregor::broker
