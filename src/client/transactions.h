#pragma once
// The transactional producer's state machine, as Kafka's TransactionManager
// keeps it for a producer with a transactional.id. It takes no locks and does
// no I/O: the producer calls it under its own mutex and performs the
// FindCoordinator / InitProducerId / AddPartitionsToTxn / AddOffsetsToTxn /
// TxnOffsetCommit / EndTxn round trips it asks for.
//
// States (Kafka's TransactionManager.State):
//   uninitialized --init_transactions--> initializing --> ready
//   ready --begin_transaction--> in_transaction
//   in_transaction --commit--> committing --EndTxn--> ready
//   in_transaction | abortable_error --abort--> aborting --EndTxn--> ready
//   any --fenced or another fatal error--> fatal_error (only close() is left)
// A failed send or AddPartitionsToTxn inside a transaction moves it to
// abortable_error: nothing more is sent in it, commit fails, and the
// application must abort_transaction() before the next begin_transaction().
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "client/admin.h"

namespace gregor::client {

enum class txn_state : uint8_t {
  uninitialized,
  initializing,
  ready,
  in_transaction,
  committing,
  aborting,
  abortable_error,
  fatal_error,
};
const char* txn_state_name(txn_state s);

// How the producer treats an error code from a transactional request.
enum class txn_error_kind : uint8_t {
  none,
  retriable,  // again after a backoff (coordinator moving or loading, a previous txn completing)
  abortable,  // this transaction is lost: abort it, then go on
  fatal,      // the producer is done: fenced, or not allowed to use this transactional id
};
txn_error_kind classify_txn_error(int16_t error_code);
// True for the two codes that mean another producer with the same
// transactional.id has a newer epoch.
bool is_fenced(int16_t error_code);

class transaction_manager {
 public:
  txn_state state() const { return state_; }
  const std::string& last_error() const { return last_error_; }

  // Application calls: each checks the state and moves it, or says why not.
  result<void> begin_init();
  void on_initialized();
  // InitProducerId timed out: init_transactions may be called again.
  void on_init_failed();
  result<void> begin_transaction();
  result<void> begin_commit();
  result<void> begin_abort();
  // EndTxn answered (or the transaction was empty and ended locally).
  void on_completed();
  // EndTxn (or the wait before it) failed: abort is what is left (or
  // nothing, when the producer is fatally failed).
  void on_end_failed(std::string message);
  // May a record be sent now? (only inside a transaction)
  result<void> check_send() const;
  // May send_offsets_to_transaction run now?
  result<void> check_send_offsets() const;

  // The partitions that batches are waiting to be added to the transaction.
  // The producer drains a partition's batches only once it is in the
  // transaction (Kafka's TransactionManager.isSendToPartitionAllowed).
  bool in_transaction(const topic_partition& tp) const { return partitions_.count(tp) > 0; }
  void on_partitions_added(const std::vector<topic_partition>& tps);
  void on_offsets_added() { started_ = true; }
  // Whether the coordinator knows of this transaction (a partition or a
  // group was added): an empty transaction ends without EndTxn.
  bool started() const { return started_; }
  // Whether AddPartitionsToTxn may be sent (inside a transaction that is not
  // failing: also while committing, when flush drains the last batches).
  bool may_add_partitions() const { return state_ == txn_state::in_transaction || state_ == txn_state::committing; }

  // A failure inside the transaction: from in_transaction or committing to
  // abortable_error (a fatal error stays fatal).
  void set_abortable(std::string message);
  void set_fatal(std::string message);
  bool failed() const { return state_ == txn_state::abortable_error || state_ == txn_state::fatal_error; }

 private:
  result<void> wrong_state(const char* operation) const;

  txn_state state_ = txn_state::uninitialized;
  std::string last_error_;
  std::set<topic_partition> partitions_;
  bool started_ = false;
};

}  // namespace gregor::client
