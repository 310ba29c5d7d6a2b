#pragma once
// What one partition knows about its idempotent producers (Kafka's
// ProducerStateManager): for each producer id, its epoch and the sequence
// ranges and offsets of its last five batches. The leader checks each
// incoming batch against it (a retried batch is a duplicate and is answered
// with its original offsets; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older
// epoch INVALID_PRODUCER_EPOCH), and every replica updates it from the
// batches it appends, so a new leader has it without anything else being
// replicated.
//
// Pure state: the log (log.cc) decides when it is snapshotted and rebuilt.
// Snapshots are Kafka's .snapshot files, byte for byte:
//   version int16 (1), crc uint32 (crc32c of everything after it),
//   entries: int32 count, then per producer
//     producer_id int64, epoch int16, last_sequence int32, last_offset int64,
//     offset_delta int32, timestamp int64, coordinator_epoch int32,
//     current_txn_first_offset int64
// A snapshot keeps only each producer's last batch, as Kafka's does: after a
// restart only the last batch is recognised as a duplicate.
//
// Transactions: a producer's first transactional batch opens its transaction
// on this partition; the COMMIT or ABORT control batch (the marker) the
// transaction coordinator has written closes it. Until then, and until the
// high watermark passes the marker, the transaction's first offset bounds the
// last stable offset (LSO) that read_committed consumers read up to.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/result.h"
#include "protocol/record_batch.h"

namespace gregor::storage {

// One batch of a producer, as remembered for duplicate detection.
struct producer_batch {
  int32_t first_sequence = -1;
  int32_t last_sequence = -1;
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  int64_t timestamp = -1;  // the batch's max timestamp
};

struct producer_entry {
  int64_t producer_id = -1;
  int16_t epoch = -1;
  std::deque<producer_batch> batches;  // the last few, oldest first
  int64_t last_timestamp = -1;         // max timestamp of its last batch: expiration counts from it
  int32_t coordinator_epoch = -1;      // transactions (not kept yet)
  int64_t current_txn_first_offset = -1;

  int32_t last_sequence() const { return batches.empty() ? -1 : batches.back().last_sequence; }
};

// Kafka keeps the last 5 batches: max.in.flight.requests.per.connection <= 5
// is what idempotence allows, so a retry is always among them.
inline constexpr size_t kProducerBatchesKept = 5;

// The marker's control record: key (version int16 0, type int16: 0 ABORT,
// 1 COMMIT) and value (version int16 0, coordinator_epoch int32).
struct txn_marker {
  bool commit = false;
  int32_t coordinator_epoch = 0;
};
// Parses the marker of a whole control batch; nullopt if it is not one.
std::optional<txn_marker> parse_txn_marker(bytes_view batch);
// A whole control batch holding one marker, for a partition leader to append.
bytes build_txn_marker_batch(int64_t producer_id, int16_t producer_epoch, const txn_marker& marker, int64_t timestamp);

// A transaction a marker has just closed on this partition.
struct completed_txn {
  int64_t producer_id = -1;
  int64_t first_offset = -1;
  int64_t last_offset = -1;  // the marker's offset
  bool aborted = false;
};

// An aborted transaction as Kafka's .txnindex keeps it (34 bytes on disk:
// version int16 0, producer_id, first_offset, last_offset, last_stable_offset).
struct aborted_txn {
  int64_t producer_id = -1;
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  int64_t last_stable_offset = -1;
};

enum class sequence_verdict {
  ok,              // append it
  duplicate,       // already in the log: answer with `original`, do not append
  out_of_order,    // OUT_OF_ORDER_SEQUENCE_NUMBER
  invalid_epoch,   // INVALID_PRODUCER_EPOCH
  coordinator_fenced,  // TRANSACTION_COORDINATOR_FENCED (markers)
};

struct sequence_check {
  sequence_verdict verdict = sequence_verdict::ok;
  producer_batch original;  // for duplicates
  std::string message;      // for refusals
};

class producer_state {
 public:
  // The leader's check of a client's batch (Kafka's ProducerAppendInfo with
  // client origin and findDuplicateBatch). Batches without a producer id are ok.
  sequence_check check(const protocol::batch_header& h) const;
  // Records a batch written to the log at its assigned offsets, whoever wrote
  // it (leader, follower, recovery): no checks, as Kafka's replica origin.
  // A control batch needs its marker; it closes the producer's transaction,
  // which is returned (nothing when none was open).
  std::optional<completed_txn> update(const protocol::batch_header& h, const txn_marker* marker = nullptr);
  // A partition leader's check of a marker before writing it (Kafka's
  // appendEndTxnMarker): an older producer epoch is INVALID_PRODUCER_EPOCH,
  // an older coordinator epoch TRANSACTION_COORDINATOR_FENCED.
  sequence_check check_marker(int64_t producer_id, int16_t producer_epoch, int32_t coordinator_epoch) const;
  // The epoch rule alone (an older epoch is INVALID_PRODUCER_EPOCH): what a
  // coordinator's own transactional write (Kafka's coordinator origin) is
  // checked against.
  sequence_check check_epoch(int64_t producer_id, int16_t producer_epoch) const;

  // The first offset of the oldest transaction still open, or closed by a
  // marker the high watermark has not passed.
  std::optional<int64_t> first_unstable_offset() const;
  // The high watermark moved: closed transactions below it are stable.
  void on_high_watermark(int64_t high_watermark);
  // Kafka's lastStableOffset(completedTxn): where the LSO stands once `txn`
  // is closed (the first other open transaction, else just after its marker).
  int64_t last_stable_offset_after(const completed_txn& txn) const;
  bool has_open_transaction(int64_t producer_id) const;

  // KIP-890 verification (Kafka's VerificationStateEntry), leader only and
  // never snapshotted. Before its first transactional batch on this
  // partition is written, the leader asks the transaction coordinator whether
  // the partition is in the producer's ongoing transaction. The guard is
  // taken before that question and any marker for the producer drops it, so
  // a batch verified for a transaction that ended meanwhile is refused
  // instead of opening a transaction nobody will close ("hanging").
  // Returns the producer's guard, creating one if none is pending (requests
  // in flight together share it). remove_expired drops guards older than
  // the producer expiration, so failed verifications do not pile up.
  uint64_t begin_verification(int64_t producer_id, int64_t now_ms);
  // True while `guard` is still the producer's: no marker since it was taken.
  bool verification_holds(int64_t producer_id, uint64_t guard) const;

  const producer_entry* find(int64_t producer_id) const;
  const std::map<int64_t, producer_entry>& producers() const { return producers_; }
  // The offset the state is built up to (exclusive): the next batch to apply.
  int64_t map_end_offset() const { return map_end_offset_; }
  void set_map_end_offset(int64_t offset) { map_end_offset_ = offset; }
  void clear(int64_t map_end_offset);

  // producer.id.expiration.ms: forgets producers whose last batch is older
  // than that (by its max timestamp, as Kafka). Returns how many.
  size_t remove_expired(int64_t now_ms, int64_t expiration_ms);

  // Kafka's snapshot file content (see above).
  std::string to_snapshot() const;
  // Parses a snapshot taken at `offset`; an error names what is wrong.
  static result<producer_state> from_snapshot(std::string_view data, int64_t offset);

 private:
  void rebuild_open_transactions();

  std::map<int64_t, producer_entry> producers_;
  std::map<int64_t, int64_t> open_txns_;                 // first offset -> producer id
  std::map<int64_t, completed_txn> unreplicated_txns_;  // closed above the HW, by first offset
  struct verification_guard {
    uint64_t guard = 0;
    int64_t created_ms = 0;
  };
  std::map<int64_t, verification_guard> verification_guards_;  // by producer id
  uint64_t next_guard_ = 1;
  int64_t map_end_offset_ = 0;
};

}  // namespace gregor::storage
