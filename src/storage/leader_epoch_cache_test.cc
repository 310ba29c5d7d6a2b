// The leader epoch cache and its leader-epoch-checkpoint file, as plain
// function calls.
#include <gtest/gtest.h>

#include "storage/leader_epoch_cache.h"

namespace gregor::storage {
namespace {

TEST(LeaderEpochCache, AssignKeepsEpochsAndOffsetsIncreasing) {
  leader_epoch_cache c;
  c.assign(1, 0);
  c.assign(1, 5);   // same epoch again: known
  c.assign(0, 7);   // older epoch: ignored
  c.assign(3, 10);
  c.assign(4, 10);  // epoch 3 wrote nothing: 4 takes its place
  c.assign(5, 8);   // an offset before the latest start: ignored
  EXPECT_EQ(c.entries(), (std::vector<epoch_entry>{{1, 0}, {4, 10}}));
  EXPECT_EQ(c.latest_epoch(), 4);
  EXPECT_EQ(c.start_offset_of(4), 10);
  EXPECT_EQ(c.start_offset_of(3), -1);
  EXPECT_EQ(c.epoch_for(0), 1);
  EXPECT_EQ(c.epoch_for(9), 1);
  EXPECT_EQ(c.epoch_for(10), 4);
  EXPECT_EQ(c.epoch_for(1000), 4);
  EXPECT_EQ(leader_epoch_cache({{2, 5}}).epoch_for(4), -1);
}

TEST(LeaderEpochCache, EndOffsetForAnswersAsKafkaDoes) {
  leader_epoch_cache c({{2, 0}, {4, 10}, {7, 25}});
  EXPECT_EQ(c.end_offset_for(7, 40), (epoch_end{7, 40}));  // the latest ends at the log end
  EXPECT_EQ(c.end_offset_for(4, 40), (epoch_end{4, 25}));
  EXPECT_EQ(c.end_offset_for(5, 40), (epoch_end{4, 25}));  // never led here: the one before it
  EXPECT_EQ(c.end_offset_for(1, 40), (epoch_end{1, 0}));   // older than all: ends where the first starts
  EXPECT_EQ(c.end_offset_for(9, 40), (epoch_end{}));       // newer than all: unknown
  EXPECT_EQ(c.end_offset_for(-1, 40), (epoch_end{}));
  EXPECT_EQ(leader_epoch_cache().end_offset_for(3, 40), (epoch_end{}));
}

TEST(LeaderEpochCache, TruncationFromEitherEnd) {
  leader_epoch_cache c({{2, 0}, {4, 10}, {7, 25}});
  c.truncate_from_end(25);  // epoch 7's first record is gone: so is epoch 7
  EXPECT_EQ(c.entries(), (std::vector<epoch_entry>{{2, 0}, {4, 10}}));
  c.truncate_from_end(30);  // nothing starts at or after 30
  EXPECT_EQ(c.entries().size(), 2u);
  c.truncate_from_start(12);  // log start moved into epoch 4
  EXPECT_EQ(c.entries(), (std::vector<epoch_entry>{{4, 12}}));
  c.truncate_from_start(5);  // behind the first entry: nothing to do
  EXPECT_EQ(c.entries(), (std::vector<epoch_entry>{{4, 12}}));
}

TEST(LeaderEpochCache, CheckpointRoundTripsInKafkasFormat) {
  leader_epoch_cache c;
  EXPECT_FALSE(c.changed());
  c.assign(0, 0);
  c.assign(3, 120);
  EXPECT_TRUE(c.changed());
  std::string text = c.to_checkpoint();
  EXPECT_EQ(text, "0\n2\n0 0\n3 120\n");
  EXPECT_FALSE(c.changed());
  auto back = leader_epoch_cache::from_checkpoint(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->entries(), c.entries());
}

TEST(LeaderEpochCache, MalformedCheckpointsAreRefusedWithAReason) {
  for (const char* bad : {"", "1\n0\n", "0\n", "0\nx\n", "0\n2\n0 0\n", "0\n1\n0\n", "0\n1\n-1 0\n",
                          "0\n2\n3 10\n2 20\n", "0\n2\n1 10\n2 5\n", "0\n1\n1 2 3\n"}) {
    auto r = leader_epoch_cache::from_checkpoint(bad);
    ASSERT_FALSE(r) << "accepted: " << bad;
    EXPECT_NE(r.err().message.find("leader-epoch-checkpoint"), std::string::npos);
  }
}

}  // namespace
}  // namespace gregor::storage
