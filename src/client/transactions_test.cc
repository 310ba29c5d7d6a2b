// The transactional producer's state machine (no broker): which calls each
// state allows, what a failure leaves behind, and how error codes are taken.
#include "client/transactions.h"

#include <gtest/gtest.h>

#include "protocol/errors.h"

namespace gregor::client {
namespace {

namespace pr = protocol;

transaction_manager ready() {
  transaction_manager t;
  EXPECT_TRUE(t.begin_init().ok());
  t.on_initialized();
  return t;
}

TEST(TransactionManager, NothingBeforeInitTransactions) {
  transaction_manager t;
  EXPECT_EQ(t.state(), txn_state::uninitialized);
  auto r = t.begin_transaction();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("init_transactions"), std::string::npos);
  EXPECT_FALSE(t.check_send().ok());
  EXPECT_FALSE(t.begin_commit().ok());
  EXPECT_FALSE(t.begin_abort().ok());
}

TEST(TransactionManager, InitOnceAndRetryAfterTimeout) {
  transaction_manager t;
  ASSERT_TRUE(t.begin_init().ok());
  EXPECT_FALSE(t.begin_init().ok());  // one at a time
  t.on_init_failed();
  ASSERT_TRUE(t.begin_init().ok());
  t.on_initialized();
  EXPECT_EQ(t.state(), txn_state::ready);
  EXPECT_FALSE(t.begin_init().ok());
}

TEST(TransactionManager, SendOnlyInsideATransaction) {
  auto t = ready();
  auto r = t.check_send();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("begin_transaction"), std::string::npos);
  ASSERT_TRUE(t.begin_transaction().ok());
  EXPECT_TRUE(t.check_send().ok());
  EXPECT_TRUE(t.check_send_offsets().ok());
  EXPECT_FALSE(t.begin_transaction().ok());  // no nesting
}

TEST(TransactionManager, CommitCycleForgetsThePartitions) {
  auto t = ready();
  ASSERT_TRUE(t.begin_transaction().ok());
  EXPECT_FALSE(t.started());
  topic_partition a{"t", 0}, b{"t", 1};
  EXPECT_FALSE(t.in_transaction(a));
  EXPECT_TRUE(t.may_add_partitions());
  t.on_partitions_added({a});
  EXPECT_TRUE(t.in_transaction(a));
  EXPECT_FALSE(t.in_transaction(b));
  EXPECT_TRUE(t.started());
  ASSERT_TRUE(t.begin_commit().ok());
  EXPECT_FALSE(t.check_send().ok());
  EXPECT_TRUE(t.may_add_partitions());  // flush during the commit still adds
  t.on_completed();
  EXPECT_EQ(t.state(), txn_state::ready);
  ASSERT_TRUE(t.begin_transaction().ok());
  EXPECT_FALSE(t.in_transaction(a));
  EXPECT_FALSE(t.started());
}

TEST(TransactionManager, OffsetsStartTheTransaction) {
  auto t = ready();
  ASSERT_TRUE(t.begin_transaction().ok());
  t.on_offsets_added();
  EXPECT_TRUE(t.started());
}

TEST(TransactionManager, AbortableErrorNeedsAbort) {
  auto t = ready();
  ASSERT_TRUE(t.begin_transaction().ok());
  t.set_abortable("a record for t-0 could not be written: MESSAGE_TOO_LARGE (10)");
  EXPECT_EQ(t.state(), txn_state::abortable_error);
  EXPECT_TRUE(t.failed());
  EXPECT_FALSE(t.may_add_partitions());
  auto r = t.begin_commit();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("must be aborted"), std::string::npos);
  EXPECT_NE(r.err().message.find("MESSAGE_TOO_LARGE"), std::string::npos);
  EXPECT_FALSE(t.check_send().ok());
  EXPECT_FALSE(t.begin_transaction().ok());
  ASSERT_TRUE(t.begin_abort().ok());
  t.set_abortable("dropped batch");  // failures while aborting change nothing
  EXPECT_EQ(t.state(), txn_state::aborting);
  t.on_completed();
  EXPECT_EQ(t.state(), txn_state::ready);
  EXPECT_TRUE(t.last_error().empty());
  EXPECT_TRUE(t.begin_transaction().ok());
}

TEST(TransactionManager, FailedCommitCanBeAborted) {
  auto t = ready();
  ASSERT_TRUE(t.begin_transaction().ok());
  ASSERT_TRUE(t.begin_commit().ok());
  t.set_abortable("a record failed during the flush");
  EXPECT_TRUE(t.begin_abort().ok());
  t.on_end_failed("EndTxn (abort) timed out");
  EXPECT_EQ(t.state(), txn_state::abortable_error);
  EXPECT_TRUE(t.begin_abort().ok());  // and again
}

TEST(TransactionManager, FatalIsFinal) {
  auto t = ready();
  ASSERT_TRUE(t.begin_transaction().ok());
  t.set_fatal("fenced");
  t.set_abortable("later");
  t.on_completed();
  t.on_end_failed("later");
  EXPECT_EQ(t.state(), txn_state::fatal_error);
  EXPECT_EQ(t.last_error(), "fenced");
  auto r = t.begin_abort();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("close the producer"), std::string::npos);
  EXPECT_FALSE(t.begin_transaction().ok());
  EXPECT_FALSE(t.check_send().ok());
}

TEST(TransactionManager, ErrorKinds) {
  auto kind = [](pr::error_code e) { return classify_txn_error(pr::code(e)); };
  EXPECT_EQ(classify_txn_error(0), txn_error_kind::none);
  EXPECT_EQ(kind(pr::error_code::producer_fenced), txn_error_kind::fatal);
  EXPECT_EQ(kind(pr::error_code::invalid_producer_epoch), txn_error_kind::fatal);
  EXPECT_EQ(kind(pr::error_code::transactional_id_authorization_failed), txn_error_kind::fatal);
  EXPECT_EQ(kind(pr::error_code::coordinator_load_in_progress), txn_error_kind::retriable);
  EXPECT_EQ(kind(pr::error_code::not_coordinator), txn_error_kind::retriable);
  EXPECT_EQ(kind(pr::error_code::coordinator_not_available), txn_error_kind::retriable);
  EXPECT_EQ(kind(pr::error_code::concurrent_transactions), txn_error_kind::retriable);
  EXPECT_EQ(kind(pr::error_code::operation_not_attempted), txn_error_kind::retriable);
  EXPECT_EQ(kind(pr::error_code::message_too_large), txn_error_kind::abortable);
  EXPECT_EQ(classify_txn_error(-1), txn_error_kind::abortable);  // a client-side failure
  EXPECT_TRUE(is_fenced(pr::code(pr::error_code::producer_fenced)));
  EXPECT_FALSE(is_fenced(pr::code(pr::error_code::not_coordinator)));
}

}  // namespace
}  // namespace gregor::client
