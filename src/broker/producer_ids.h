#pragma once
// Producer ids for InitProducerId, as Kafka's RPCProducerIdManager hands
// them out: the active controller gives each broker blocks of ids
// (AllocateProducerIds, a ProducerIdsRecord in the metadata log, so no two
// blocks ever overlap), and the broker gives them out one by one. Once 90% of
// the current block is used it asks for the next one; when it has no id left
// and the next block has not come yet, the caller answers
// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
//
// producer_id_blocks is the bookkeeping, a pure state machine (times come in
// as arguments); producer_id_manager drives it on shard 0 and talks to the
// controller.
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/task.h"

namespace gregor::broker {

class broker;

class producer_id_blocks {
 public:
  // After a failed or refused request, the next one waits this long (Kafka's
  // ProducerIdManager.RetryBackoffMs).
  static constexpr int64_t retry_backoff_ms = 50;

  struct claim {
    std::optional<int64_t> id;  // none: no block ready (COORDINATOR_LOAD_IN_PROGRESS)
    // Ask the controller for the next block now, then report with
    // block_received or request_failed. At most one request is in flight.
    bool request_block = false;
  };

  // The next producer id.
  claim next(int64_t now_ms);

  // The controller's block [start, start + len). A block that is malformed
  // or starts below the end of one already received is refused (false) and
  // counts as a failure.
  bool block_received(int64_t start, int32_t len, int64_t now_ms);
  // The request failed (no controller, an error): another may go after the backoff.
  void request_failed(int64_t now_ms);

  bool request_in_flight() const { return in_flight_; }
  // Ids left in the current block, and whether the next block is here.
  int64_t remaining() const { return end_ - next_; }
  bool has_next_block() const { return prefetched_.has_value(); }

 private:
  struct block {
    int64_t start = 0;
    int32_t len = 0;
  };
  bool may_request(int64_t now_ms) const { return !in_flight_ && !prefetched_ && now_ms >= backoff_until_ms_; }

  // The current block: [first_, end_), next_ the next id to give.
  int64_t first_ = 0;
  int64_t next_ = 0;
  int64_t end_ = 0;
  int64_t prefetch_at_ = 0;  // asking for the next block once this id is given
  std::optional<block> prefetched_;
  int64_t highest_end_ = 0;  // blocks must start at or above it
  bool in_flight_ = false;
  int64_t backoff_until_ms_ = 0;
};

// Shard 0 of a broker.
class producer_id_manager {
 public:
  explicit producer_id_manager(broker& b) : b_(b) {}

  // A new producer id, or nullopt when none is ready yet (then a request for
  // a block is under way). Shard 0.
  std::optional<int64_t> next_id();

 private:
  runtime::task<void> request_block();

  broker& b_;
  producer_id_blocks blocks_;
};

}  // namespace gregor::broker
