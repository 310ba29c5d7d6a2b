#pragma once
// The idempotent producer's bookkeeping, as Kafka's TransactionManager keeps
// it for a producer without a transactional id: the producer id and epoch,
// and per partition the next sequence, the last acknowledged sequence and the
// batches sent but not yet acknowledged or failed. It takes the decisions the
// sender needs (may this batch be drained now, retry or fail after an error,
// bump the epoch, reset a partition's sequences) and does no I/O: the sender
// performs InitProducerId when needs_producer_id() says so and hands the
// answer to set_producer_id().
//
// Rules (Kafka's TransactionManager / RecordAccumulator / Sender):
//   - a batch gets its producer id, epoch and base sequence when it is drained
//     the first time; the partition's next sequence moves on by its record
//     count, wrapping at INT32_MAX. A retry resends it unchanged, so the broker
//     recognises a duplicate.
//   - a batch that already has a sequence (a retry) is drained only when it is
//     the partition's first unacknowledged batch: the batches after it wait, and
//     go again in order.
//   - OUT_OF_ORDER_SEQUENCE_NUMBER for a batch that is not the next expected one
//     is retried as is (an earlier batch failed); for the next expected one it
//     means a real gap: the epoch is bumped, the partition's unacknowledged
//     batches get sequences from 0 under the new id, and they are retried.
//     UNKNOWN_PRODUCER_ID likewise (retried; a bump unless the broker did not
//     say its log start offset or the batch was already rewritten).
//   - a batch that fails for good after being sent (other than for an unknown
//     producer) bumps the epoch, since the broker may or may not have it,
//     unless its retries were used up (Kafka's adjustSequenceNumbers).
//   - a batch that expires after being sent leaves its partition "unresolved":
//     no new batch is drained there until the batches in flight complete; if
//     none of them proves the expired one was written, the epoch is bumped.
//   - partitions that did not ask for the bump move to the new id lazily, when
//     they have no unacknowledged batch left (from sequence 0).
// An epoch bump here asks the broker for a new id (InitProducerId, which for a
// producer without a transactional id hands out a fresh id, epoch 0), where
// Kafka's Java client increments the epoch locally: either way the partition's
// sequences restart at 0 under an (id, epoch) the broker has not seen.
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "client/admin.h"

namespace gregor::client {

// Kafka's DefaultRecordBatch.incrementSequence: sequences wrap from INT32_MAX to 0.
int32_t increment_sequence(int32_t sequence, int32_t increment);

struct producer_id_and_epoch {
  int64_t producer_id = -1;
  int16_t epoch = -1;
  bool valid() const { return producer_id >= 0; }
  bool operator==(const producer_id_and_epoch&) const = default;
};

// What a batch carries; owned by the producer's batch. The state keeps
// pointers to the batches it tracks until on_acknowledged / on_failed.
struct batch_sequence {
  producer_id_and_epoch id;
  int32_t base_sequence = -1;
  int32_t record_count = 0;
  bool sequence_reset = false;  // rewritten after an epoch bump
  bool has_sequence() const { return base_sequence >= 0; }
  int32_t last_sequence() const { return increment_sequence(base_sequence, record_count - 1); }
};

class idempotence_state {
 public:
  const producer_id_and_epoch& producer_id() const { return id_; }
  // True while nothing may be sent: there is no producer id yet, or an epoch
  // bump was asked for.
  bool needs_producer_id() const { return !id_.valid() || bump_required_; }
  bool bump_required() const { return bump_required_; }
  // The answer of InitProducerId. The partitions that asked for the bump get
  // their unacknowledged batches rewritten from sequence 0 under the new id.
  void set_producer_id(producer_id_and_epoch id);

  // Whether the first queued batch of a partition may be drained now.
  bool may_drain(const topic_partition& tp, const batch_sequence& b) const;
  // Gives a batch drained for the first time its id, epoch and sequence.
  void assign(const topic_partition& tp, batch_sequence& b);

  // The broker acknowledged the batch (base_offset -1 when unknown, as for
  // DUPLICATE_SEQUENCE_NUMBER).
  void on_acknowledged(const topic_partition& tp, batch_sequence& b, int64_t base_offset);
  // Whether to retry a batch that got `error_code`, once the caller knows
  // retries and delivery.timeout.ms allow it. `retriable` says whether the
  // code is retriable in general; OUT_OF_ORDER_SEQUENCE_NUMBER and
  // UNKNOWN_PRODUCER_ID are decided here (and may ask for an epoch bump).
  bool can_retry(const topic_partition& tp, const batch_sequence& b, int16_t error_code, int64_t log_start_offset,
                 bool retriable);
  // The batch failed for good. `adjust_sequences`: it had retries left (so the
  // failure is definite and the sequences after it must move).
  void on_failed(const topic_partition& tp, batch_sequence& b, int16_t error_code, bool adjust_sequences);
  // The batch expired after being sent at least once (call on_failed too).
  void on_expired_in_retry(const topic_partition& tp, const batch_sequence& b);
  // Settles unresolved partitions whose batches have all completed.
  void maybe_resolve_sequences();

  // For tests and logs.
  int32_t next_sequence(const topic_partition& tp) const;
  int32_t last_acked_sequence(const topic_partition& tp) const;
  int32_t first_in_flight_sequence(const topic_partition& tp) const;
  bool has_unresolved_sequence(const topic_partition& tp) const { return unresolved_.count(tp) > 0; }
  bool rewrite_pending(const topic_partition& tp) const { return to_rewrite_.count(tp) > 0; }
  size_t in_flight(const topic_partition& tp) const;

 private:
  struct partition_entry {
    producer_id_and_epoch id;      // the id this partition's sequences belong to
    int32_t next_sequence = 0;
    int32_t last_acked_sequence = -1;
    int64_t last_acked_offset = -1;
    std::vector<batch_sequence*> in_flight;  // in sequence order
  };
  const partition_entry* find(const topic_partition& tp) const;
  void remove_in_flight(const topic_partition& tp, const batch_sequence& b);
  void start_sequences_at_beginning(partition_entry& e);
  bool is_next_sequence(const topic_partition& tp, int32_t sequence) const;
  void request_epoch_bump(const topic_partition& tp);

  producer_id_and_epoch id_;
  bool bump_required_ = false;
  std::map<topic_partition, partition_entry> partitions_;
  std::map<topic_partition, int32_t> unresolved_;  // the sequence after the expired batch
  std::set<topic_partition> to_rewrite_;  // asked for the bump
};

}  // namespace gregor::client
