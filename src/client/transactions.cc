#include "client/transactions.h"

#include <fmt/format.h>

#include "protocol/errors.h"

namespace gregor::client {

namespace pr = protocol;

const char* txn_state_name(txn_state s) {
  switch (s) {
    case txn_state::uninitialized: return "UNINITIALIZED";
    case txn_state::initializing: return "INITIALIZING";
    case txn_state::ready: return "READY";
    case txn_state::in_transaction: return "IN_TRANSACTION";
    case txn_state::committing: return "COMMITTING_TRANSACTION";
    case txn_state::aborting: return "ABORTING_TRANSACTION";
    case txn_state::abortable_error: return "ABORTABLE_ERROR";
    case txn_state::fatal_error: return "FATAL_ERROR";
  }
  return "?";
}

bool is_fenced(int16_t code) {
  return code == pr::code(pr::error_code::producer_fenced) || code == pr::code(pr::error_code::invalid_producer_epoch);
}

txn_error_kind classify_txn_error(int16_t code) {
  using E = pr::error_code;
  if (code == 0) return txn_error_kind::none;
  if (is_fenced(code)) return txn_error_kind::fatal;
  switch (static_cast<E>(code)) {
    case E::coordinator_load_in_progress:
    case E::coordinator_not_available:
    case E::not_coordinator:
    case E::concurrent_transactions:
    case E::request_timed_out:
    case E::network_exception:
    // The partitions of an AddPartitionsToTxn that were not looked at
    // because another one failed: they go again with it.
    case E::operation_not_attempted:
    case E::unknown_topic_or_partition:
      return txn_error_kind::retriable;
    case E::transactional_id_authorization_failed:
    case E::invalid_producer_id_mapping:
    case E::invalid_txn_state:
    case E::invalid_transaction_timeout:
    case E::unsupported_version:
    case E::transaction_coordinator_fenced:
      return txn_error_kind::fatal;
    default:
      return txn_error_kind::abortable;
  }
}

result<void> transaction_manager::wrong_state(const char* operation) const {
  std::string s = fmt::format("cannot {}: the transactional producer is in state {}", operation, txn_state_name(state_));
  if (state_ == txn_state::abortable_error)
    s += fmt::format(" (the transaction failed and must be aborted: {})", last_error_);
  else if (state_ == txn_state::fatal_error)
    s += fmt::format(" (a fatal error; close the producer: {})", last_error_);
  else if (state_ == txn_state::uninitialized)
    s += " (call init_transactions() first)";
  else if (state_ == txn_state::ready)
    s += " (no transaction: call begin_transaction() first)";
  return error{std::move(s)};
}

result<void> transaction_manager::begin_init() {
  if (state_ != txn_state::uninitialized) return wrong_state("initialize transactions");
  state_ = txn_state::initializing;
  return ok();
}

void transaction_manager::on_initialized() {
  if (state_ == txn_state::fatal_error) return;
  state_ = txn_state::ready;
}

void transaction_manager::on_init_failed() {
  if (state_ == txn_state::initializing) state_ = txn_state::uninitialized;
}

void transaction_manager::on_end_failed(std::string message) {
  if (state_ == txn_state::fatal_error) return;
  state_ = txn_state::abortable_error;
  last_error_ = std::move(message);
}

result<void> transaction_manager::begin_transaction() {
  if (state_ != txn_state::ready) return wrong_state("begin a transaction");
  state_ = txn_state::in_transaction;
  partitions_.clear();
  started_ = false;
  return ok();
}

result<void> transaction_manager::begin_commit() {
  if (state_ != txn_state::in_transaction) return wrong_state("commit the transaction");
  state_ = txn_state::committing;
  return ok();
}

result<void> transaction_manager::begin_abort() {
  // Kafka allows an abort after a failed commit too (the commit then moved
  // to abortable_error); from committing itself it would race the EndTxn.
  if (state_ != txn_state::in_transaction && state_ != txn_state::abortable_error)
    return wrong_state("abort the transaction");
  state_ = txn_state::aborting;
  return ok();
}

void transaction_manager::on_completed() {
  if (state_ == txn_state::fatal_error) return;
  state_ = txn_state::ready;
  partitions_.clear();
  started_ = false;
  last_error_.clear();
}

result<void> transaction_manager::check_send() const {
  if (state_ != txn_state::in_transaction) return wrong_state("send");
  return ok();
}

result<void> transaction_manager::check_send_offsets() const {
  if (state_ != txn_state::in_transaction) return wrong_state("send offsets to the transaction");
  return ok();
}

void transaction_manager::on_partitions_added(const std::vector<topic_partition>& tps) {
  for (auto& tp : tps) partitions_.insert(tp);
  if (!tps.empty()) started_ = true;
}

void transaction_manager::set_abortable(std::string message) {
  if (state_ == txn_state::fatal_error || state_ == txn_state::abortable_error) return;
  // An abort in progress has already given up the transaction.
  if (state_ == txn_state::aborting) return;
  state_ = txn_state::abortable_error;
  last_error_ = std::move(message);
}

void transaction_manager::set_fatal(std::string message) {
  if (state_ == txn_state::fatal_error) return;
  state_ = txn_state::fatal_error;
  last_error_ = std::move(message);
}

}  // namespace gregor::client
