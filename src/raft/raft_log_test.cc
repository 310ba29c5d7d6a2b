// raft_log on a real directory: what it makes of a snapshot found beside the
// log when it opens.
#include "raft/raft_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace gregor::raft {
namespace {

namespace fs = std::filesystem;

class RaftLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path("/tmp") / ("gregor-raft-log-test-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<raft_log> open() {
    auto l = raft_log::open(root_.string(), true, 0);
    EXPECT_TRUE(l) << (l ? "" : l.err().message);
    return l ? std::move(l.value()) : nullptr;
  }

  // A log of five one-record batches (offsets 0-4) in epoch 1, synced, and
  // beside it a snapshot `id` written without touching the log; then the log
  // as it opens again.
  std::unique_ptr<raft_log> reopen_with_snapshot(snapshot_id id) {
    {
      auto l = open();
      if (!l) return nullptr;
      for (int i = 0; i < 5; ++i) EXPECT_TRUE(l->append_records(1, {bytes{static_cast<uint8_t>(i)}}, 0));
      EXPECT_TRUE(l->flush());
      EXPECT_TRUE(l->write_snapshot(id, bytes{}));
      EXPECT_TRUE(l->close());
    }
    return open();
  }

  fs::path root_;
};

// What a crash leaves when it strikes while a follower installs the leader's
// snapshot (the snapshot durable, the log not yet dropped, or its deletes
// undone): the log's batches of an older epoch beside a snapshot of a newer
// one. Kafka's truncateToLatestSnapshot starts the log at the snapshot; so do
// we, or those batches pass for committed (the simulation's seed 8612).
TEST_F(RaftLogTest, ASnapshotOfANewerEpochReplacesTheLogOnOpen) {
  auto l = reopen_with_snapshot({3, 2});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->log_start_offset(), 3);
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->last_epoch(), 2);
  auto rest = l->read(3, 1 << 20, 100);
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest.value().empty());
}

TEST_F(RaftLogTest, ASnapshotPastTheEndOfTheSameEpochReplacesTheLogOnOpen) {
  auto l = reopen_with_snapshot({8, 1});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->log_start_offset(), 8);
  EXPECT_EQ(l->log_end_offset(), 8);
}

// The node's own snapshot, below its log end in the same epoch, leaves the log be.
TEST_F(RaftLogTest, AnOwnSnapshotInsideTheLogKeepsIt) {
  auto l = reopen_with_snapshot({3, 1});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->log_start_offset(), 0);
  EXPECT_EQ(l->log_end_offset(), 5);
  EXPECT_EQ(l->last_epoch(), 1);
}

}  // namespace
}  // namespace gregor::raft
