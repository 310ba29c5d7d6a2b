#pragma once
// The driver of the transaction coordinator: it owns the state machine
// (transaction_coordinator.h) on one shard (the home shard), persists each
// transition to __transaction_state (through an offsets_log, written
// acks=all) before it answers, sends the markers of a PrepareCommit /
// PrepareAbort through a txn_marker_sender and then persists the Complete*
// state, loads the ids of the __transaction_state partitions this broker
// comes to lead (finishing their Prepare* transactions), and aborts
// transactions older than their timeout.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "coordinator/group_service.h"
#include "coordinator/transaction_coordinator.h"
#include "runtime/task.h"

namespace gregor::coordinator {

// Writes a transaction's COMMIT or ABORT markers (WriteTxnMarkers v1) on the
// leaders of its partitions. Called on the coordinator's home shard.
class txn_marker_sender {
 public:
  struct markers {
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    bool commit = false;
    // The leader epoch of the id's __transaction_state partition.
    int32_t coordinator_epoch = 0;
    std::vector<topic_partition> partitions;
  };
  virtual ~txn_marker_sender() = default;
  // Returns true once every partition's leader wrote the marker (or the
  // partition no longer exists); retries everything else (no leader,
  // NOT_LEADER_OR_FOLLOWER, network errors) with fresh metadata. Returns
  // false if the coordinator was fenced (TRANSACTION_COORDINATOR_FENCED) or
  // `still_current` turned false (this broker no longer coordinates the id).
  virtual runtime::task<bool> send(markers m, std::function<bool()> still_current) = 0;
};

struct txn_service_config {
  txn_config coordinator;
  int64_t abort_timed_out_transaction_cleanup_interval_ms = 10000;
  int64_t remove_expired_transaction_cleanup_interval_ms = 3600000;
};

class transaction_service {
 public:
  // new_producer_id runs on the home shard: a fresh producer id, or nullopt
  // if none is ready yet.
  transaction_service(txn_service_config config, offsets_log& log, txn_marker_sender& markers, size_t home_shard,
                      std::function<std::optional<int64_t>()> new_producer_id);
  ~transaction_service();

  void start();
  void stop();
  size_t home_shard() const { return home_; }
  // On the home shard: the leader epoch of each partition of
  // __transaction_state this broker leads, -1 for the others. Partitions led
  // here since the last call are loaded; the others are unloaded.
  void set_owned_partitions(const std::vector<int32_t>& leader_epochs);
  // Creates __transaction_state if needed (FindCoordinator). Any shard.
  runtime::task<result<void>> ensure_topic();

  // The APIs, from any shard.
  runtime::task<protocol::init_producer_id_response> init_producer_id(int16_t version,
                                                                      protocol::init_producer_id_request req);
  // partition_exists: UNKNOWN_TOPIC_OR_PARTITION for the others (and
  // OPERATION_NOT_ATTEMPTED for the rest of that transaction), as Kafka does.
  runtime::task<protocol::add_partitions_to_txn_response> add_partitions_to_txn(
      int16_t version, protocol::add_partitions_to_txn_request req,
      std::function<bool(const std::string&, int32_t)> partition_exists);
  // offsets_partitions: the partition count of __consumer_offsets.
  runtime::task<protocol::add_offsets_to_txn_response> add_offsets_to_txn(int16_t version,
                                                                          protocol::add_offsets_to_txn_request req,
                                                                          int32_t offsets_partitions);
  runtime::task<protocol::end_txn_response> end_txn(int16_t version, protocol::end_txn_request req);
  runtime::task<protocol::list_transactions_response> list_transactions(int16_t version,
                                                                        protocol::list_transactions_request req);
  runtime::task<protocol::describe_transactions_response> describe_transactions(
      int16_t version, protocol::describe_transactions_request req);

  // Inspection (tests), home shard.
  const transaction_coordinator& state() const { return sm_; }

 private:
  runtime::task<result<void>> ensure_topic_here();
  runtime::task<protocol::error_code> persist(txn_metadata target);
  runtime::task<protocol::error_code> run_step(txn_step step);
  runtime::task<void> finish(std::string id);
  runtime::task<void> load_partition(int32_t partition, uint64_t generation);
  runtime::task<void> abort_loop();
  runtime::task<void> expire_loop();
  runtime::task<protocol::error_code> add_one(const std::string& id, int64_t pid, int16_t epoch,
                                              const std::vector<topic_partition>& tps);
  bool current(int32_t partition, uint64_t generation) const;

  transaction_coordinator sm_;
  offsets_log& log_;
  txn_marker_sender& markers_;
  size_t home_;
  std::function<std::optional<int64_t>()> new_producer_id_;
  int64_t abort_interval_ms_;
  int64_t expire_interval_ms_;
  bool stopping_ = false;
  bool topic_ready_ = false;
  bool creating_ = false;
  struct owned_partition {
    uint64_t generation = 0;
    int32_t leader_epoch = 0;
  };
  std::map<int32_t, owned_partition> owned_;
  uint64_t next_generation_ = 1;
};

}  // namespace gregor::coordinator
