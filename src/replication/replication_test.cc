// The replication state, as plain function calls: the leader's view of its followers (high watermark, ISR
// changes, acks=all), and how a follower finds where its log diverged.
#include <gtest/gtest.h>

#include "replication/divergence.h"
#include "replication/follower_state.h"
#include "replication/leader_state.h"

namespace gregor::replication {
namespace {

using V = std::vector<int32_t>;
using storage::epoch_end;
using storage::leader_epoch_cache;

// ------------------------------------------------------------------ the leader

leader_settings settings(int32_t min_isr, int64_t lag_ms = 10000) { return {min_isr, lag_ms}; }

TEST(LeaderState, AloneInTheIsrTheHighWatermarkFollowsAppends) {
  leader_state l(1, 3, V{1}, V{1}, 0, 0, 0, 0, settings(1));
  EXPECT_TRUE(l.on_append(5));
  EXPECT_EQ(l.high_watermark(), 5);
  EXPECT_EQ(l.ack_status_for(5), ack_status::done);
}

TEST(LeaderState, HighWatermarkIsTheSmallestIsrLogEndAndNeverGoesBack) {
  leader_state l(1, 3, V{1, 2, 3}, V{1, 2, 3}, 10, 10, 10, 0, settings(2));
  l.on_append(20);
  EXPECT_EQ(l.high_watermark(), 10);  // no follower fetched yet
  EXPECT_FALSE(l.on_follower_fetch(2, 15, 1));
  EXPECT_EQ(l.high_watermark(), 10);  // follower 3 still unknown
  EXPECT_TRUE(l.on_follower_fetch(3, 12, 1));
  EXPECT_EQ(l.high_watermark(), 12);
  EXPECT_EQ(l.ack_status_for(13), ack_status::wait);
  EXPECT_TRUE(l.on_follower_fetch(3, 20, 2));
  EXPECT_EQ(l.high_watermark(), 15);
  EXPECT_EQ(l.ack_status_for(13), ack_status::done);
  // A follower that restarted and fetches from an older offset does not pull it back.
  EXPECT_FALSE(l.on_follower_fetch(2, 11, 3));
  EXPECT_EQ(l.high_watermark(), 15);
}

TEST(LeaderState, AcksAllBelowMinInsyncReplicas) {
  leader_state l(1, 1, V{1, 2, 3}, V{1}, 0, 0, 0, 0, settings(2));
  EXPECT_EQ(l.check_append(-1), error_code::not_enough_replicas);
  EXPECT_EQ(l.check_append(1), error_code::none);  // acks=1 still appends
  l.on_append(3);
  // Nothing is committed on fewer copies than min.insync.replicas (KIP-966).
  EXPECT_EQ(l.high_watermark(), 0);
  EXPECT_EQ(l.ack_status_for(3), ack_status::not_enough_replicas_after_append);
}

TEST(LeaderState, ShrinkAfterTheLagTimeThenAppendsFailAfterAppend) {
  leader_state l(1, 1, V{1, 2, 3}, V{1, 2, 3}, 0, 0, 0, 0, settings(2, 10000));
  l.on_append(10);
  l.on_follower_fetch(2, 10, 100);
  l.on_follower_fetch(3, 10, 100);
  EXPECT_EQ(l.high_watermark(), 10);
  // Follower 2 keeps up with a moving leader: each fetch has what the leader
  // had at its previous one. Follower 3 stops fetching.
  // Follower 3 last caught up at 100: it may lag until 10100.
  for (int64_t t = 1000; t <= 20000; t += 1000) {
    l.on_append(10 + t / 100);
    int64_t had = l.followers().at(2).leader_leo_at_last_fetch;
    ASSERT_LT(had, l.log_end_offset());  // never quite caught up at fetch time
    l.on_follower_fetch(2, had, t);
    if (t <= 10000) EXPECT_FALSE(l.isr_change_needed(t)) << t;
  }
  EXPECT_EQ(l.followers().at(2).last_caught_up_ms, 19000);  // by the previous-fetch rule
  auto p = l.isr_change_needed(20000);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reason, isr_proposal::why::shrink);
  EXPECT_EQ(p->changed, V{3});
  EXPECT_EQ(p->isr, (V{1, 2}));
  l.proposal_sent(*p);
  EXPECT_FALSE(l.isr_change_needed(20000));  // one change at a time
  // Until the controller commits, the high watermark still waits for 3.
  int64_t hw = l.high_watermark();
  l.on_follower_fetch(2, l.log_end_offset(), 20001);
  EXPECT_EQ(l.high_watermark(), hw);
  EXPECT_TRUE(l.on_isr_committed(V{1, 2}));
  EXPECT_EQ(l.high_watermark(), l.log_end_offset());
  // Then 2 goes too: below min.insync.replicas.
  l.on_isr_committed(V{1});
  l.on_append(l.log_end_offset() + 1);
  EXPECT_EQ(l.ack_status_for(l.log_end_offset()), ack_status::not_enough_replicas_after_append);
  EXPECT_EQ(l.check_append(-1), error_code::not_enough_replicas);
}

TEST(LeaderState, ExpandOnceCaughtUpToTheHighWatermarkAndThisEpoch) {
  // Leader of epoch 5 whose own records start at 40.
  leader_state l(1, 5, V{1, 2, 3}, V{1, 2}, 50, 30, 40, 0, settings(2));
  l.on_follower_fetch(2, 50, 10);
  EXPECT_EQ(l.high_watermark(), 50);
  l.on_follower_fetch(3, 35, 10);  // behind the high watermark
  EXPECT_FALSE(l.isr_change_needed(10));
  l.on_follower_fetch(3, 50, 20);
  auto p = l.isr_change_needed(20);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reason, isr_proposal::why::expand);
  EXPECT_EQ(p->isr, (V{1, 2, 3}));
  l.proposal_sent(*p);
  // While the expansion is in flight the high watermark counts replica 3.
  l.on_append(60);
  l.on_follower_fetch(2, 60, 30);
  EXPECT_EQ(l.high_watermark(), 50);
  l.on_isr_committed(V{1, 2, 3});
  l.on_follower_fetch(3, 60, 31);
  EXPECT_EQ(l.high_watermark(), 60);
}

// A follower that stopped fetching is shrunk out, and progress it made long
// ago does not bring it back (the simulation saw a dead follower flap in and
// out of the ISR every 100 ms); a fresh fetch does.
TEST(LeaderState, AFollowerThatStoppedIsNotExpandedBackFromOldProgress) {
  leader_state l(1, 1, V{1, 2, 3}, V{1, 2, 3}, 10, 10, 0, 0, settings(2, 1000));
  l.on_follower_fetch(2, 10, 100);
  l.on_follower_fetch(3, 10, 100);
  for (int64_t t = 200; t <= 5000; t += 100) l.on_follower_fetch(2, 10, t);
  auto p = l.isr_change_needed(5000);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reason, isr_proposal::why::shrink);
  l.proposal_sent(*p);
  l.on_isr_committed(V{1, 2});
  for (int64_t t = 5100; t <= 8000; t += 100) {
    l.on_follower_fetch(2, 10, t);
    EXPECT_FALSE(l.isr_change_needed(t)) << "follower 3 has not fetched since 100, at " << t;
  }
  l.on_follower_fetch(3, 10, 8100);
  p = l.isr_change_needed(8100);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reason, isr_proposal::why::expand);
  EXPECT_EQ(p->changed, V{3});
}

TEST(LeaderState, NotAReplicaIsIgnoredAndReassignmentAddsFollowers) {
  leader_state l(1, 1, V{1, 2}, V{1, 2}, 0, 0, 0, 0, settings(1));
  EXPECT_FALSE(l.on_follower_fetch(9, 0, 1));
  EXPECT_EQ(l.followers().count(9), 0u);
  l.on_replicas_changed(V{1, 2, 4});
  EXPECT_EQ(l.followers().count(4), 1u);
  l.on_replicas_changed(V{1, 4});
  EXPECT_EQ(l.followers().count(2), 0u);
}

// ------------------------------------------------------------------ divergence

TEST(Divergence, LeaderEpochsFenceStaleAndAheadRequests) {
  EXPECT_EQ(check_leader_epoch(-1, 5), error_code::none);
  EXPECT_EQ(check_leader_epoch(5, 5), error_code::none);
  EXPECT_EQ(check_leader_epoch(4, 5), error_code::fenced_leader_epoch);
  EXPECT_EQ(check_leader_epoch(6, 5), error_code::unknown_leader_epoch);
}

// KIP-101's scenario: A leads epoch 1 and writes m1, m2; B has only m1 when A
// dies; B leads epoch 2 and writes m3 at offset 1. A comes back as a follower
// and must drop its m2 instead of keeping a log that differs from B's.
TEST(Divergence, AReturningLeaderDropsWhatTheNewLeaderNeverHad) {
  leader_epoch_cache a({{1, 0}});
  leader_epoch_cache b({{1, 0}, {2, 1}});
  auto d = diverging_epoch(b, 2, /*fetch_offset=*/2, /*last_fetched_epoch=*/1);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (epoch_end{1, 1}));
  auto t = truncation_for(a, 2, *d, /*high_watermark=*/1);
  EXPECT_EQ(t.offset, 1);
  EXPECT_TRUE(t.complete);
  // After truncating, A's fetch at 1 with epoch 1 is consistent.
  a.truncate_from_end(1);
  EXPECT_FALSE(diverging_epoch(b, 2, 1, 1));
}

TEST(Divergence, AnEpochTheFollowerNeverHadTakesTwoRounds) {
  leader_epoch_cache leader({{1, 0}, {2, 8}, {4, 9}});
  leader_epoch_cache follower({{1, 0}, {3, 10}});
  auto d = diverging_epoch(leader, 15, 12, 3);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (epoch_end{2, 9}));
  auto t = truncation_for(follower, 12, *d, 0);
  EXPECT_EQ(t.offset, 10);
  EXPECT_FALSE(t.complete);
  follower.truncate_from_end(t.offset);
  d = diverging_epoch(leader, 15, 10, follower.latest_epoch());
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (epoch_end{1, 8}));
  t = truncation_for(follower, 10, *d, 0);
  EXPECT_EQ(t.offset, 8);
  EXPECT_TRUE(t.complete);
}

TEST(Divergence, NothingToCheckOrNothingKnown) {
  leader_epoch_cache leader({{1, 0}, {2, 8}});
  EXPECT_FALSE(diverging_epoch(leader, 20, 12, -1));  // the fetcher gave no epoch
  EXPECT_FALSE(diverging_epoch(leader, 20, 20, 2));   // in step
  EXPECT_FALSE(diverging_epoch(leader, 20, 8, 1));    // epoch 1 ends at 8: fine
  // The leader has no epochs at all (an old log): the follower keeps what is committed.
  auto d = diverging_epoch(leader_epoch_cache(), 20, 12, 1);
  ASSERT_TRUE(d);
  auto t = truncation_for(leader_epoch_cache({{1, 0}}), 12, *d, 7);
  EXPECT_EQ(t.offset, 7);
}

// ------------------------------------------------------------------ the follower

TEST(FollowerState, FetchesFromItsLogEndWithItsEpochs) {
  follower_state f(2, 7, 40, 30);
  auto p = f.next_fetch(40, 5);
  EXPECT_EQ(p.fetch_offset, 40);
  EXPECT_EQ(p.last_fetched_epoch, 5);
  EXPECT_EQ(p.current_leader_epoch, 7);
  EXPECT_EQ(f.high_watermark(), 30);
}

TEST(FollowerState, AppendsAndTakesTheLeadersHighWatermarkUpToWhatItHas) {
  follower_state f(2, 7, 40, 30);
  leader_epoch_cache local({{5, 0}});
  fetched_partition a;
  a.high_watermark = 55;
  a.has_records = true;
  EXPECT_EQ(f.on_fetch(a, local, 40).what, follower_action::kind::append);
  f.after_append(50);
  EXPECT_EQ(f.high_watermark(), 50);  // not past its own log end
  a.has_records = false;
  EXPECT_EQ(f.on_fetch(a, local, 60).what, follower_action::kind::nothing);
  EXPECT_EQ(f.high_watermark(), 55);
  a.high_watermark = 52;  // an older answer: the high watermark does not go back
  f.on_fetch(a, local, 60);
  EXPECT_EQ(f.high_watermark(), 55);
}

TEST(FollowerState, TruncatesWhereTheLeaderSaysItsLogDiverged) {
  // KIP-101's scenario from the follower's side (see Divergence above).
  follower_state f(2, 2, 2, 1);
  fetched_partition a;
  a.high_watermark = 2;
  a.diverging_epoch = epoch_end{1, 1};
  auto act = f.on_fetch(a, leader_epoch_cache({{1, 0}}), 2);
  EXPECT_EQ(act.what, follower_action::kind::truncate);
  EXPECT_EQ(act.offset, 1);
  f.after_truncate(1);
  EXPECT_EQ(f.high_watermark(), 1);
}

TEST(FollowerState, OutOfRangeRestartsAtTheLeadersLogStartOrFallsBackToTheHighWatermark) {
  follower_state f(2, 3, 10, 8);
  fetched_partition a;
  a.error = error_code::offset_out_of_range;
  a.log_start_offset = 500;  // retention on the leader moved past this replica
  auto act = f.on_fetch(a, leader_epoch_cache(), 10);
  EXPECT_EQ(act.what, follower_action::kind::restart_at);
  EXPECT_EQ(act.offset, 500);
  a.log_start_offset = 0;  // the leader is shorter than this replica
  act = f.on_fetch(a, leader_epoch_cache(), 10);
  EXPECT_EQ(act.what, follower_action::kind::truncate);
  EXPECT_EQ(act.offset, 8);
}

TEST(FollowerState, LeadershipErrorsWaitForMetadataOthersRetry) {
  follower_state f(2, 3, 10, 8);
  for (auto e : {error_code::not_leader_or_follower, error_code::fenced_leader_epoch, error_code::unknown_leader_epoch,
                 error_code::unknown_topic_or_partition}) {
    fetched_partition a;
    a.error = e;
    EXPECT_EQ(f.on_fetch(a, leader_epoch_cache(), 10).what, follower_action::kind::await_metadata);
  }
  fetched_partition a;
  a.error = error_code::kafka_storage_error;
  EXPECT_EQ(f.on_fetch(a, leader_epoch_cache(), 10).what, follower_action::kind::retry);
  EXPECT_EQ(f.high_watermark(), 8);
}

}  // namespace
}  // namespace gregor::replication
