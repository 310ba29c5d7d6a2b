#pragma once
// Whole Gregor clusters under deterministic simulation: 3 or 5 voters
// (broker and controller) and optional broker-only nodes run the real node
// code on runtime's simulated backend, one thread, virtual time. A client
// issues CreateTopics, DeleteTopics and CreatePartitions to random brokers
// while faults drawn from the seed strike: crashes and restarts, partitions
// between nodes and isolated nodes, lost, duplicated and reordered frames,
// disk errors. After every event the run checks:
//
//   - at most one leader per epoch, ever;
//   - the committed metadata log never changes: every node's batches below
//     its high watermark are the same as every other node's at those offsets
//     (so each node's log is a prefix of the leader's committed log);
//   - a node's high watermark never goes back while it runs;
//   - every node's image at an offset equals every other node's at it;
//   - no fenced broker leads a partition, every leader is an in-sync replica.
//
// Data (unless --no-data): the client also creates a topic "data" (replication
// factor 3, or every node if fewer; min.insync.replicas=2; flush.messages=1),
// two producers send it one-record batches with acks=all, each with a value of
// its own, and a consumer fetches from its leaders (and now and then from a
// follower, which serves what it has below its own high watermark). Followers
// leave the ISR after 5 s without catching up (replica.lag.time.max.ms).
//
// The producers are idempotent (unless --no-idempotence): fixed producer ids
// (1001, 1002), epoch 0, a sequence per partition from 0, as a Kafka client
// numbers its batches. At most one batch per producer and partition is in
// flight, and one whose answer is lost, late or a retriable error is sent
// again, the same bytes, to whoever leads then, until it is acknowledged (also
// after the faults stop). After every event:
//
//   - an acknowledged record is in the log of every leader of its partition
//     whose leader epoch is at least the one that wrote it, at the offset the
//     producer was given, with its value (Kafka's promise for acks=all with
//     min.insync.replicas=2 and no unclean election); so is a record a
//     consumer read, in every leader from the epoch of the one it read it from;
//   - below its high watermark, every replica holds the same records (offset,
//     value and leader epoch) as every other replica ever held below its own
//     (so no two replicas disagree below the smaller of their high watermarks,
//     and nothing below a high watermark ever changes);
//   - a replica's high watermark never goes back while its process runs (a
//     restart starts from the checkpoint, which may be lower), and never passes
//     its log end;
//   - a consumer gets no record at or above the high watermark of the answer,
//     and never a value other than the one acknowledged or read before at
//     that offset.
//   - exactly once: no (producer, partition, sequence) is twice below any
//     replica's high watermark; a producer's records there have sequences
//     0, 1, 2, ... in offset order; an acknowledgement (first try or retry)
//     names the offset where that batch is; no broker answers
//     OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH (with one batch
//     in flight, no retention and no producer expiry within a run, every
//     leader knows a producer's last acknowledged batch).
//
// A transactional producer (unless --no-transactions) runs beside them: the
// transactional protocol by hand (FindCoordinator, InitProducerId,
// AddPartitionsToTxn, Produce, EndTxn), one transaction at a time of 1-3
// records over one or both data partitions, 2 in 3 committed; a transaction
// that cannot go on is given up (the next InitProducerId aborts it). Every
// node syncs each append (log.flush.interval.messages=1): a crash here loses
// unsynced writes on all replicas at once, which Kafka's model does not
// survive for any topic, __transaction_state included. After healing:
//
//   - every data partition's last stable offset reaches its high watermark
//     (no hanging transaction), and no transactional record is without a
//     marker of its producer after it;
//   - each transaction is atomic: all its records get the same marker;
//   - one whose EndTxn(commit) was answered is committed; one for which no
//     commit was asked is never committed.
//
// Then the faults stop, crashed nodes restart, and the run checks liveness:
// one active controller, every broker unfenced, every node caught up, a new
// topic created; and that every change the client had acknowledged is there;
// then the producers get every batch they made acknowledged, and a consumer
// reads every data partition from its start past the last record
// acknowledged or read, finds each of them at its offset, and (idempotent
// producers) every batch made exactly once.
//
// A run is a function of its options: a failing seed replays exactly.
#include <cstdint>
#include <string>

namespace gregor::sim {

struct options {
  uint64_t seed = 1;
  int voters = 3;             // broker,controller nodes
  int brokers = 0;            // broker-only nodes
  int64_t fault_ms = 30'000;  // virtual time with faults and workload
  int64_t heal_ms = 90'000;   // virtual time allowed to recover after that
  bool faults = true;
  bool data = true;           // the data workload (producers, a consumer) and its checks
  bool idempotence = true;    // idempotent producers that retry (else one attempt per record, no producer id)
  bool transactions = true;   // and a transactional producer (commits and aborts; checked from the log)
  std::string log_level = "off";
};

struct outcome {
  bool ok = true;
  std::string failure;  // the first broken property, with when and where
  uint64_t steps = 0;
  int64_t virtual_ms = 0;
  int crashes = 0;
  int partitions = 0;
  int max_epoch = 0;
  int topics_acked = 0;
  int64_t committed_offset = 0;
  int snapshots_installed = 0;
  int64_t records_acked = 0;     // batches acknowledged (acks=all)
  int64_t produce_attempts = 0;  // batches made (each one record), retries not counted
  int64_t produce_retries = 0;   // sends of a batch already sent before
  int64_t acked_on_retry = 0;    // batches whose acknowledgement answered a retry
  int64_t records_consumed = 0;  // distinct (partition, offset) a consumer read
  int max_data_epoch = 0;        // the highest leader epoch of a data partition seen
  int txns_committed = 0;        // transactions whose records the log shows committed
  int txns_aborted = 0;          // ... aborted
  int txns_empty = 0;            // ... none of whose records reached the log
};

outcome run(const options& opts);
// The command that replays a run (printed with every failure).
std::string replay_command(const options& opts);

}  // namespace gregor::sim
