#pragma once
// The producer. Thread-safe: any number of application threads call send();
// one background sender thread per producer drains the accumulator, builds
// record batch v2 produce requests per broker and completes the futures and
// callbacks (callbacks run on the sender thread, as in Kafka's Java client:
// keep them short).
//
// Partitioning (Kafka's DefaultPartitioner / BuiltInPartitioner):
//   - an explicit partition wins;
//   - a record with a key goes to toPositive(murmur2(key)) % partitions,
//     exactly as the Java client and librdkafka's murmur2_random do;
//   - a record without a key goes to the topic's "sticky" partition, which
//     changes (at random) each time its batch fills up, so keyless records
//     fill whole batches.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/admin.h"
#include "client/cluster.h"
#include "client/idempotence.h"
#include "client/transactions.h"
#include "protocol/record_batch.h"

namespace gregor::client {

// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), and the
// partition a key maps to.
int32_t murmur2(bytes_view data);
inline int32_t to_positive(int32_t n) { return n & 0x7fffffff; }
inline int32_t partition_for_key(bytes_view key, int32_t num_partitions) {
  return to_positive(murmur2(key)) % num_partitions;
}

struct producer_config : common_config {
  int16_t acks = -1;  // 0, 1 or -1 ("all")
  int64_t linger_ms = 5;
  int32_t batch_size = 16384;
  protocol::compression_type compression = protocol::compression_type::none;
  int compression_level = -1;
  int32_t retries = 2147483647;
  int64_t delivery_timeout_ms = 120000;
  int32_t max_in_flight_requests_per_connection = 5;
  int64_t max_block_ms = 60000;
  int32_t max_request_size = 1048576;
  int64_t buffer_memory = 32 << 20;  // send() blocks (up to max.block.ms) while more is queued
  bool allow_auto_create_topics = true;
  // enable.idempotence. Unset (the default) means on, as in Kafka's Java
  // client since 3.0, unless acks, retries or max.in.flight conflict with it:
  // then it is silently off. Set to true, a conflict is an error (validate).
  std::optional<bool> enable_idempotence;
  // transactional.id: makes the producer transactional (Kafka's
  // TransactionManager; see init_transactions). Implies idempotence, so an
  // explicit enable.idempotence=false with it is a configuration error.
  std::optional<std::string> transactional_id;
  // transaction.timeout.ms: how long the coordinator lets a transaction stay
  // open before it aborts it (and fences this producer's epoch).
  int32_t transaction_timeout_ms = 60000;

  // Sets a Kafka-named property ("acks", "linger.ms", "compression.type",
  // "bootstrap.servers", ...). Unknown names and bad values are errors.
  result<void> set(const std::string& key, const std::string& value);
  // Checks the properties together (enable.idempotence=true needs acks=all,
  // retries > 0 and max.in.flight.requests.per.connection <= 5; so does
  // transactional.id, which also rules out enable.idempotence=false).
  result<void> validate() const;
  // Whether the producer will be idempotent (if the brokers support it).
  bool idempotence() const;
};

struct producer_record {
  std::string topic;
  std::optional<int32_t> partition;
  std::optional<bytes> key;
  std::optional<bytes> value;
  std::vector<protocol::record_header> headers;
  std::optional<int64_t> timestamp;  // default: now

  static producer_record of(std::string topic, std::optional<std::string_view> key, std::optional<std::string_view> value);
};

struct record_metadata {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;     // -1 with acks=0
  int64_t timestamp = -1;  // CreateTime, or the broker's LogAppendTime
  int16_t error_code = 0;  // a Kafka error code; -1 with a message for client-side failures
  std::string error_message;
  bool ok() const { return error_code == 0; }
  std::string describe_error() const;
};

using delivery_callback = std::function<void(const record_metadata&)>;

// The consumer group whose offsets a transaction commits (Kafka's
// ConsumerGroupMetadata). With generation and member id the coordinator
// refuses a commit from a member that was rebalanced away (KIP-447); with
// only a group id it takes any.
struct consumer_group_metadata {
  std::string group_id;
  int32_t generation_id = -1;
  std::string member_id;
  std::optional<std::string> group_instance_id;
};

// Whether a producer is idempotent and under which producer id.
struct idempotence_status {
  bool enabled = false;
  int64_t producer_id = -1;  // -1 until InitProducerId answered
  int16_t producer_epoch = -1;
  std::string note;  // why it is off, or why sends fail
};

class producer {
 public:
  explicit producer(producer_config config);
  ~producer();  // close() with no timeout
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  // Queues a record. The future (and the callback, if any) completes when the
  // broker acknowledged it or it failed for good.
  std::future<record_metadata> send(producer_record record, delivery_callback callback = {});

  // Sends everything queued now, ignoring linger.ms, and waits until every
  // record sent so far completed. False on timeout.
  bool flush(int64_t timeout_ms = -1);
  // Flushes, then stops the sender. Records still queued when the timeout
  // passes fail. Idempotent.
  void close(int64_t timeout_ms = -1);

  // Partitions of a topic (fetching metadata if needed).
  result<std::vector<partition_info>> partitions_for(const std::string& topic);

  cluster& cluster_ref() { return cluster_; }

  idempotence_status idempotence() const;

  // ---- transactions (with transactional.id; Kafka's KafkaProducer API) ----
  // Each returns an error that says what went wrong; after a fatal one (this
  // producer was fenced by a newer one with the same transactional.id, or may
  // not use it) every later call fails and only close() is left. A timeout
  // of -1 means max.block.ms.
  //
  // Finds the transaction coordinator and gets the producer id and epoch
  // for the transactional id (InitProducerId), which fences older producers
  // with the same id and completes (aborts) a transaction they left open.
  result<void> init_transactions(int64_t timeout_ms = -1);
  result<void> begin_transaction();
  // Adds the consumer's offsets to the transaction: AddOffsetsToTxn to the
  // transaction coordinator, then TxnOffsetCommit to the group coordinator.
  // The offsets become visible as committed when the transaction commits.
  result<void> send_offsets_to_transaction(const std::map<topic_partition, offset_and_metadata>& offsets,
                                           const consumer_group_metadata& group, int64_t timeout_ms = -1);
  // Flushes, then EndTxn(commit). Any record of the transaction that failed
  // makes it fail: the transaction must then be aborted.
  result<void> commit_transaction(int64_t timeout_ms = -1);
  // Drops the records not sent yet (their futures fail), waits for those in
  // flight, then EndTxn(abort).
  result<void> abort_transaction(int64_t timeout_ms = -1);
  txn_state transaction_state() const;
  int64_t transactions_committed() const;

 private:
  struct pending;
  struct batch;
  struct partition_queue;

  result<int32_t> choose_partition(const producer_record& r, const topic_info& t);
  result<std::shared_ptr<const topic_info>> wait_for_topic(const std::string& topic, int64_t deadline);
  void run_sender();
  void fail_batch(batch& b, int16_t code, const std::string& message, bool adjust_sequences = false);
  void complete_batch(batch& b, int64_t base_offset, int64_t log_append_time);
  void init_producer_id();
  void set_fatal(std::string message);
  // Transactions.
  bool transactional() const { return config_.transactional_id.has_value(); }
  int64_t deadline_for(int64_t timeout_ms) const;
  result<void> init_transactional_producer_id(int64_t deadline);
  result<void> end_transaction(bool commit, int64_t deadline);
  // Sender thread: AddPartitionsToTxn for partitions with batches that are
  // not in the transaction yet (one attempt; the sender loop retries).
  void add_partitions_to_txn(const std::vector<topic_partition>& tps);
  // A transactional request or batch failed: fatal or abortable by its code.
  void fail_transaction(int16_t code, const std::string& message);

  producer_config config_;
  cluster cluster_;

  // Idempotence: idem_ and next_init_ms_ belong to the sender thread;
  // idempotent_, fatal_error_ and status_ are written under mu_.
  idempotence_state idem_;
  int64_t next_init_ms_ = 0;
  std::string init_error_;  // the last InitProducerId failure
  bool idempotent_ = false;
  std::string fatal_error_;  // every send fails with it
  idempotence_status status_;

  // Transactions: txn_ and the fields below are under mu_. A producer id
  // from init_transactions is handed to the sender (which owns idem_) in
  // pending_producer_id_.
  transaction_manager txn_;
  std::optional<producer_id_and_epoch> pending_producer_id_;
  bool epoch_bump_needed_ = false;  // the sender's idem_ asked for one: after the abort
  int64_t next_add_partitions_ms_ = 0;
  int64_t transactions_committed_ = 0;

  mutable std::mutex mu_;
  std::condition_variable sender_cv_;  // wakes the sender
  std::condition_variable done_cv_;    // records completed (flush, close, buffer space)
  std::map<topic_partition, std::deque<std::unique_ptr<batch>>> queues_;
  std::map<std::string, int32_t> sticky_;
  int64_t incomplete_ = 0;       // records sent but not completed
  int64_t queued_bytes_ = 0;     // approximate bytes in the accumulator and in flight
  int flushing_ = 0;
  bool closing_ = false;
  std::atomic<bool> force_close_{false};
  bool metadata_stale_ = false;
  sys::thread sender_;
};

}  // namespace gregor::client
