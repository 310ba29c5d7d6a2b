#pragma once
// The driver of the group coordinator: it owns the state machine on one
// shard (the home shard), feeds it requests and ticks with the current time,
// appends the records it asks for to __consumer_offsets (through
// offsets_log, which the broker implements) one write after the other, and
// hands each reply to the request waiting for it only when the state machine
// releases it (after the records it depends on are appended).
//
// On start it loads every partition of __consumer_offsets and rebuilds the
// groups; until a partition is loaded, its groups answer
// COORDINATOR_LOAD_IN_PROGRESS. The topic is created on first use.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "base/bytes.h"
#include "base/result.h"
#include "coordinator/group_coordinator.h"
#include "runtime/clock.h"
#include "runtime/task.h"

namespace gregor::coordinator {

// __consumer_offsets as the coordinator sees it. Called on the home shard only.
class offsets_log {
 public:
  virtual ~offsets_log() = default;
  // Partitions of the topic, 0 if it does not exist.
  virtual int32_t partition_count() = 0;
  // Creates the topic (if it does not exist yet); returns its partition count.
  virtual runtime::task<result<int32_t>> create_topic() = 0;
  struct append_result {
    protocol::error_code error = protocol::error_code::none;
    int64_t base_offset = -1;  // where the batch went
  };
  // Appends one record batch (v2, offsets assigned by the log) to a partition,
  // as the coordinator (a transactional batch of TxnOffsetCommit is accepted
  // with its producer epoch checked, not its sequence); returns once the
  // ISR has it.
  virtual runtime::task<append_result> append(int32_t partition, bytes batch) = 0;
  // Whole batches from `offset` (or the log start, if later) on; empty at the end.
  virtual runtime::task<result<bytes>> read(int32_t partition, int64_t offset) = 0;
  // Whether everything below `offset` is committed (below the partition's
  // high watermark here, as its leader).
  virtual runtime::task<bool> committed_up_to(int32_t partition, int64_t offset) = 0;
};

// A coordinator loads its partition to the log's end, as Kafka's do, and so
// may load a tail the ISR does not have yet. It answers from what it loaded
// only once that is committed: a new leader that answered from an
// uncommitted tail (e.g. "partition already in the transaction") could
// promise what the next failover drops (the simulation's seed 21962: a
// transaction's AddPartitionsToTxn record lost so, its partition left
// hanging). Kafka answers at once; here the partition stays "loading"
// (COORDINATOR_LOAD_IN_PROGRESS, which clients retry) until its high
// watermark reaches the loaded end, polled every this many ms.
inline constexpr int64_t loaded_tail_poll_ms = 20;

class group_service {
 public:
  group_service(group_config config, offsets_log& log, size_t home_shard);
  ~group_service();

  // On the home shard, before clients can connect: starts the timer.
  void start();
  void stop();
  // On the home shard: which partitions of __consumer_offsets this broker
  // leads now. Groups of the others answer NOT_COORDINATOR; a partition led
  // here since the last call is loaded from its log (its groups answer
  // COORDINATOR_LOAD_IN_PROGRESS meanwhile), one led no more is unloaded.
  // This is how the coordinator moves with the partition's leader.
  void set_owned_partitions(const std::vector<bool>& owned);
  size_t home_shard() const { return home_; }

  // Creates __consumer_offsets if needed (FindCoordinator). Any shard.
  runtime::task<result<void>> ensure_topic();

  // The APIs, from any shard; each returns the response to send.
  runtime::task<protocol::join_group_response> join_group(int16_t version, protocol::join_group_request req,
                                                          client_info client);
  runtime::task<protocol::sync_group_response> sync_group(int16_t version, protocol::sync_group_request req);
  runtime::task<protocol::heartbeat_response> heartbeat(int16_t version, protocol::heartbeat_request req);
  runtime::task<protocol::leave_group_response> leave_group(int16_t version, protocol::leave_group_request req);
  runtime::task<protocol::offset_commit_response> offset_commit(
      int16_t version, protocol::offset_commit_request req,
      std::function<bool(const std::string&, int32_t)> partition_exists);
  runtime::task<protocol::txn_offset_commit_response> txn_offset_commit(
      int16_t version, protocol::txn_offset_commit_request req,
      std::function<bool(const std::string&, int32_t)> partition_exists);
  // A COMMIT (committed) or ABORT marker of `producer_id` was appended to
  // partition `offsets_partition` of __consumer_offsets, which this broker
  // leads, and the ISR has it (its acks=all append is complete): the
  // producer's pending transactional offsets of the groups in that partition
  // become committed (each only over an offset written before it) or are
  // dropped. Callable from any shard: the state lives on the home shard and
  // this hops there; it returns once applied, so an OffsetFetch sent after
  // it sees the result. Partitions not led here (or led no more) are ignored;
  // during a load the marker is applied to what the load read so far.
  runtime::task<void> on_txn_marker(int32_t offsets_partition, int64_t producer_id, bool committed);
  runtime::task<protocol::offset_fetch_response> offset_fetch(int16_t version, protocol::offset_fetch_request req);
  runtime::task<protocol::describe_groups_response> describe_groups(int16_t version,
                                                                    protocol::describe_groups_request req);
  runtime::task<protocol::list_groups_response> list_groups(int16_t version, protocol::list_groups_request req);
  runtime::task<protocol::delete_groups_response> delete_groups(int16_t version, protocol::delete_groups_request req);
  runtime::task<protocol::offset_delete_response> offset_delete(int16_t version, protocol::offset_delete_request req);

 private:
  struct waiter {
    std::optional<response> body;
    runtime::notifier wake;
  };

  template <class Resp, class Fn>
  runtime::task<Resp> call(Fn fn);
  runtime::task<result<void>> ensure_topic_here();
  void deliver(output out);
  runtime::task<void> writer_loop();
  runtime::task<void> load_partition(int32_t partition, uint64_t generation);
  runtime::task<void> tick_loop();

  group_coordinator sm_;
  offsets_log& log_;
  size_t home_;
  bool stopping_ = false;
  bool topic_ready_ = false;
  bool creating_ = false;
  uint64_t next_request_ = 1;
  std::map<uint64_t, std::shared_ptr<waiter>> waiters_;
  std::deque<write_request> write_queue_;
  bool writer_running_ = false;
  // The partitions led here, each with the generation of its latest load
  // (a load that is no longer the latest stops and changes nothing).
  std::map<int32_t, uint64_t> owned_;
  uint64_t next_generation_ = 1;
};

}  // namespace gregor::coordinator
