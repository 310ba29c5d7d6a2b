// The broker's blocks of producer ids (producer_id_blocks), as plain calls.
#include <gtest/gtest.h>

#include <limits>
#include <set>

#include "broker/producer_ids.h"

namespace gregor::broker {
namespace {

constexpr int32_t kBlock = 1000;

TEST(ProducerIdBlocks, NothingUntilTheFirstBlockThenAskOnce) {
  producer_id_blocks p;
  auto c = p.next(0);
  EXPECT_FALSE(c.id);
  EXPECT_TRUE(c.request_block);
  EXPECT_TRUE(p.request_in_flight());
  // One request at a time: later callers hear "not yet" and ask nothing.
  c = p.next(1);
  EXPECT_FALSE(c.id);
  EXPECT_FALSE(c.request_block);
  ASSERT_TRUE(p.block_received(0, kBlock, 2));
  EXPECT_FALSE(p.request_in_flight());
  c = p.next(3);
  ASSERT_TRUE(c.id);
  EXPECT_EQ(*c.id, 0);
  EXPECT_FALSE(c.request_block);
  EXPECT_EQ(p.remaining(), kBlock - 1);
}

TEST(ProducerIdBlocks, PrefetchesAtNinetyPercentAndMovesOnWithoutAGap) {
  producer_id_blocks p;
  p.next(0);
  ASSERT_TRUE(p.block_received(5000, kBlock, 0));
  int requests = 0;
  int64_t asked_at = -1;
  for (int64_t i = 0; i < kBlock; ++i) {
    auto c = p.next(0);
    ASSERT_TRUE(c.id);
    EXPECT_EQ(*c.id, 5000 + i);
    if (c.request_block) {
      ++requests;
      asked_at = *c.id;
    }
  }
  EXPECT_EQ(requests, 1);
  EXPECT_EQ(asked_at, 5900);  // the id at 90% of the block
  // The next block comes before this one runs out: no caller waits.
  ASSERT_TRUE(p.block_received(9000, kBlock, 0));
  EXPECT_TRUE(p.has_next_block());
  auto c = p.next(0);
  ASSERT_TRUE(c.id);
  EXPECT_EQ(*c.id, 9000);
  EXPECT_FALSE(c.request_block);
  EXPECT_FALSE(p.has_next_block());
}

TEST(ProducerIdBlocks, ExhaustedWithoutTheNextBlockIsNotYet) {
  producer_id_blocks p;
  p.next(0);
  ASSERT_TRUE(p.block_received(0, 10, 0));
  std::set<int64_t> ids;
  for (int i = 0; i < 10; ++i) {
    auto c = p.next(0);
    ASSERT_TRUE(c.id);
    ids.insert(*c.id);
  }
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_TRUE(p.request_in_flight());  // asked when id 9 (90%) went out
  auto c = p.next(0);
  EXPECT_FALSE(c.id);
  EXPECT_FALSE(c.request_block);
  ASSERT_TRUE(p.block_received(10, 10, 0));
  c = p.next(0);
  ASSERT_TRUE(c.id);
  EXPECT_EQ(*c.id, 10);
}

TEST(ProducerIdBlocks, FailureBacksOffThenAsksAgain) {
  producer_id_blocks p;
  ASSERT_TRUE(p.next(100).request_block);
  p.request_failed(100);
  EXPECT_FALSE(p.request_in_flight());
  auto c = p.next(100 + producer_id_blocks::retry_backoff_ms - 1);
  EXPECT_FALSE(c.id);
  EXPECT_FALSE(c.request_block);
  c = p.next(100 + producer_id_blocks::retry_backoff_ms);
  EXPECT_FALSE(c.id);
  EXPECT_TRUE(c.request_block);
}

TEST(ProducerIdBlocks, FailedPrefetchIsRetriedByLaterIds) {
  producer_id_blocks p;
  p.next(0);
  ASSERT_TRUE(p.block_received(0, kBlock, 0));
  int64_t now = 0;
  for (int i = 0; i < 900; ++i) EXPECT_FALSE(p.next(now).request_block);
  ASSERT_TRUE(p.next(now).request_block);  // id 900
  p.request_failed(now);
  EXPECT_FALSE(p.next(now).request_block);  // backing off
  now += producer_id_blocks::retry_backoff_ms;
  auto c = p.next(now);
  ASSERT_TRUE(c.id);
  EXPECT_EQ(*c.id, 902);
  EXPECT_TRUE(c.request_block);
}

TEST(ProducerIdBlocks, RefusesBlocksThatGoBackOrAreMalformed) {
  producer_id_blocks p;
  p.next(0);
  ASSERT_TRUE(p.block_received(2000, kBlock, 0));
  for (int i = 0; i < 950; ++i) p.next(0);
  ASSERT_TRUE(p.request_in_flight());
  // Overlapping what was already given: refused, and asked again after the backoff.
  EXPECT_FALSE(p.block_received(2500, kBlock, 0));
  EXPECT_FALSE(p.request_in_flight());
  EXPECT_FALSE(p.has_next_block());
  EXPECT_FALSE(p.next(1).request_block);
  ASSERT_TRUE(p.next(producer_id_blocks::retry_backoff_ms).request_block);
  EXPECT_FALSE(p.block_received(-5, kBlock, 100));
  ASSERT_TRUE(p.next(200).request_block);
  EXPECT_FALSE(p.block_received(4000, 0, 200));
  ASSERT_TRUE(p.next(300).request_block);
  EXPECT_FALSE(p.block_received(std::numeric_limits<int64_t>::max() - 10, kBlock, 300));
  ASSERT_TRUE(p.next(400).request_block);
  EXPECT_TRUE(p.block_received(3000, kBlock, 400));  // right after the last one
  EXPECT_TRUE(p.has_next_block());
}

}  // namespace
}  // namespace gregor::broker
