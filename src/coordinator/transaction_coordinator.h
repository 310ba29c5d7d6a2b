#pragma once
// The transaction coordinator, as a state machine: the state of every
// transactional id whose partition of __transaction_state this broker leads,
// and the transitions Kafka's TransactionCoordinator / TransactionMetadata
// allow. It never reads a clock or does I/O: each request comes in with the
// current time and gets back either an error to answer now or the new state
// (a `txn_transition`) to persist first. The driver (transaction_service.h)
// appends that state to __transaction_state, then calls complete() (or
// abandon() if the write failed) and answers.
//
// One transition per id is in flight at a time (Kafka's pendingState);
// requests for an id with one pending get CONCURRENT_TRANSACTIONS.
//
// States (Kafka's TransactionState, with its on-disk ids):
//   Empty 0, Ongoing 1, PrepareCommit 2, PrepareAbort 3, CompleteCommit 4,
//   CompleteAbort 5, Dead 6, PrepareEpochFence 7 (never written: a pending
//   state only, as in Kafka).
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "coordinator/group_coordinator.h"
#include "protocol/errors.h"
#include "protocol/messages.h"

namespace gregor::coordinator {

inline constexpr const char* transaction_state_topic_name = "__transaction_state";

enum class txn_state : int8_t {
  empty = 0,
  ongoing = 1,
  prepare_commit = 2,
  prepare_abort = 3,
  complete_commit = 4,
  complete_abort = 5,
  dead = 6,
  prepare_epoch_fence = 7,
};
// Kafka's names: "Empty", "Ongoing", "PrepareCommit", ...
const char* txn_state_name(txn_state s);
std::optional<txn_state> txn_state_from_name(std::string_view name);

// Kafka's TransactionStateManager.partitionFor:
// Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions.
int32_t partition_for_transactional_id(std::string_view transactional_id, int32_t partitions);

struct txn_config {
  int32_t transaction_state_log_num_partitions = 50;
  int32_t transaction_max_timeout_ms = 900000;
  int32_t offsets_topic_num_partitions = 50;  // for AddOffsetsToTxn
  int64_t transactional_id_expiration_ms = 604800000;
};

struct txn_metadata {
  std::string transactional_id;
  int64_t producer_id = -1;
  int64_t previous_producer_id = -1;
  int64_t next_producer_id = -1;
  int16_t producer_epoch = -1;
  int16_t last_producer_epoch = -1;
  int32_t timeout_ms = 0;
  txn_state state = txn_state::empty;
  std::set<topic_partition> partitions;
  int64_t start_ms = -1;
  int64_t last_update_ms = -1;
};

// One record of __transaction_state (key and value each after an int16
// version, as Kafka writes them: key v0, value v0); a Dead id is a tombstone.
offsets_record transaction_log_record(const txn_metadata& m);
// Decodes a record; nullopt for a tombstone or a record that is not ours.
// `id` gets the key's transactional id when the key decodes.
std::optional<txn_metadata> decode_transaction_log_record(bytes_view key, std::optional<bytes_view> value,
                                                          std::string* id);

// What a request does: an error to answer now, or a state to persist.
struct txn_step {
  protocol::error_code error = protocol::error_code::none;
  std::optional<txn_metadata> target;  // persist, then complete()
  // The persisted state is a PrepareCommit/PrepareAbort: once written, the
  // driver sends the markers and then persists the Complete* state.
  bool then_markers = false;
  // InitProducerId found an ongoing transaction: it is aborted with a bumped
  // epoch (fencing the old producer) and the client gets
  // CONCURRENT_TRANSACTIONS to retry.
  bool fenced_ongoing = false;
  // An answer without a write (InitProducerId retried after a lost answer):
  // this producer id and epoch.
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
};

class transaction_coordinator {
 public:
  explicit transaction_coordinator(txn_config config) : config_(config) {}

  const txn_config& config() const { return config_; }
  void set_partition_count(int32_t n) { config_.transaction_state_log_num_partitions = n; }
  void set_offsets_partition_count(int32_t n) { config_.offsets_topic_num_partitions = n; }
  int32_t partition_for(std::string_view id) const {
    return partition_for_transactional_id(id, config_.transaction_state_log_num_partitions);
  }

  // Ownership of partitions of __transaction_state, as in group_coordinator.
  // Loading: begin_load, replay every record in order, end_load; end_load
  // returns the ids left in PrepareCommit/PrepareAbort (their markers must
  // be sent again).
  void begin_load(int32_t partition);
  void replay(int32_t partition, bytes_view key, std::optional<bytes_view> value);
  std::vector<std::string> end_load(int32_t partition);
  void unload(int32_t partition);
  bool owned(int32_t partition) const { return owned_.count(partition) != 0; }
  bool loading(int32_t partition) const { return loading_.count(partition) != 0; }

  // NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or none, for an id.
  protocol::error_code coordinator_error(std::string_view transactional_id) const;

  // The APIs. Errors are Kafka's newest (PRODUCER_FENCED); the driver maps
  // them to what older versions know (fenced_error_for_version).
  // new_producer_id: a fresh producer id (nullopt: none available now,
  // answered COORDINATOR_LOAD_IN_PROGRESS as Kafka's id manager does).
  txn_step init_producer_id(const std::string& id, int32_t timeout_ms, int64_t expected_producer_id,
                            int16_t expected_epoch, int64_t now,
                            const std::function<std::optional<int64_t>()>& new_producer_id);
  txn_step add_partitions(const std::string& id, int64_t producer_id, int16_t epoch,
                          const std::vector<topic_partition>& partitions, int64_t now);
  // KIP-890 verify-only: per partition, none if it is in the ongoing
  // transaction, else INVALID_TXN_STATE. A non-none `error` applies to all.
  struct verify_result {
    protocol::error_code error = protocol::error_code::none;
    std::vector<protocol::error_code> per_partition;
  };
  verify_result verify_partitions(const std::string& id, int64_t producer_id, int16_t epoch,
                                  const std::vector<topic_partition>& partitions) const;
  txn_step add_offsets(const std::string& id, int64_t producer_id, int16_t epoch, const std::string& group_id,
                       int64_t now);
  txn_step end_txn(const std::string& id, int64_t producer_id, int16_t epoch, bool commit, int64_t now);
  // After the markers of a PrepareCommit/PrepareAbort: the Complete* state.
  txn_step complete_commit_or_abort(const std::string& id, int64_t now);
  // Ongoing transactions older than their timeout, with no transition
  // pending; abort_timed_out() then fences and aborts one (epoch bumped).
  std::vector<std::string> timed_out(int64_t now) const;
  txn_step abort_timed_out(const std::string& id, int64_t now);
  // transactional.id.expiration.ms: ids with no transaction open (Empty,
  // CompleteCommit, CompleteAbort) not updated for that long; expire() then
  // writes the id's tombstone (state Dead), after which it is forgotten.
  std::vector<std::string> expired(int64_t now) const;
  txn_step expire(const std::string& id, int64_t now);

  // The driver persisted (or failed to persist) the pending transition.
  void complete(const txn_metadata& target);
  void abandon(const std::string& id);

  // ListTransactions / DescribeTransactions.
  protocol::list_transactions_response list(int16_t version, const protocol::list_transactions_request& req,
                                            int64_t now) const;
  protocol::describe_transactions_response::described_transaction describe(const std::string& id) const;

  const txn_metadata* find(const std::string& id) const;
  bool pending(const std::string& id) const { return pending_.count(id) != 0; }
  size_t size() const { return txns_.size(); }

 private:
  txn_step begin(const txn_metadata& target, bool markers = false);
  protocol::error_code validate(const std::string& id, int64_t producer_id, int16_t epoch,
                                const txn_metadata** out) const;
  txn_step add(const std::string& id, int64_t producer_id, int16_t epoch,
               const std::vector<topic_partition>& partitions, int64_t now);
  txn_step prepare_end(const txn_metadata& m, bool commit, bool bump_epoch, int64_t now);

  txn_config config_;
  std::map<std::string, txn_metadata> txns_;
  std::set<std::string> pending_;
  std::set<int32_t> owned_;
  std::map<int32_t, std::map<std::string, std::optional<txn_metadata>>> loading_;
};

// Kafka answers PRODUCER_FENCED only from these versions on (InitProducerId
// v4, AddPartitionsToTxn/AddOffsetsToTxn/EndTxn v2), INVALID_PRODUCER_EPOCH
// before.
protocol::error_code fenced_error_for_version(protocol::error_code e, int16_t version, int16_t first_fenced_version);

}  // namespace gregor::coordinator
