#include <gtest/gtest.h>

#include <filesystem>

#include "runtime/blocking.h"
#include "runtime/clock.h"
#include "runtime/engine.h"
#include "runtime/shards.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::runtime {

TEST(Engine, SubmitToRunsOnTargetShardAndReturns) {
  engine e(2);
  size_t ran_on = 99, resumed_on = 99;
  int value = 0;
  e.spawn(0, [&]() -> task<void> {
    value = co_await submit_to(1, [&]() -> task<int> {
      ran_on = this_shard();
      co_return 42;
    });
    resumed_on = this_shard();
    engine::current().stop();
  });
  e.run();
  EXPECT_EQ(value, 42);
  EXPECT_EQ(ran_on, 1u);
  EXPECT_EQ(resumed_on, 0u);
}

TEST(Notifier, WakesWaiterBeforeTimeoutAndTimesOutOtherwise) {
  engine e(1);
  bool first = false, second = true;
  notifier n;
  e.spawn(0, [&]() -> task<void> {
    first = co_await n.wait_for(10'000) ;
    second = co_await n.wait_for(20);
    engine::current().stop();
  });
  e.spawn(0, [&]() -> task<void> {
    co_await sleep_for(5);
    n.notify_all();
  });
  int64_t start = monotonic_ms();
  e.run();
  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  EXPECT_LT(monotonic_ms() - start, 5'000);
}

// A new, empty directory under the system's temp directory (empty path if it cannot be made).
std::filesystem::path scratch_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("gregor-rt-" + std::to_string(random_u64()));
  return fs::create_directories(dir.string()).ok() ? dir : std::filesystem::path{};
}

TEST(Files, AppendReadTruncateAndAtomicWrite) {
  auto dir = scratch_dir();
  ASSERT_FALSE(dir.empty());
  auto f = file::open((dir / "a.log").string(), file::mode::read_write_create);
  ASSERT_TRUE(f.ok());
  auto& fp = f.value();
  EXPECT_EQ(fp->append(as_bytes("hello ")).value(), 0u);
  EXPECT_EQ(fp->append(as_bytes("world")).value(), 6u);
  EXPECT_EQ(fp->size(), 11u);
  ASSERT_TRUE(fp->truncate(5).ok());
  auto all = fp->read_all();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(as_string(all.value()), "hello");

  ASSERT_TRUE(fs::write_file_atomic((dir / "meta").string(), "x=1\n").ok());
  EXPECT_EQ(fs::read_file((dir / "meta").string()).value(), "x=1\n");
  ASSERT_TRUE(fs::lock_exclusive((dir / ".lock").string()).ok());
  EXPECT_TRUE(fs::remove_all(dir.string()).ok());
}

TEST(Files, WritesSpanningManyPiecesLandWhole) {
  // pwrite hands the kernel 32 KiB-aligned pieces; unaligned starts and
  // lengths across several pieces must still land byte for byte.
  auto dir = scratch_dir();
  ASSERT_FALSE(dir.empty());
  auto f = file::open((dir / "b.log").string(), file::mode::read_write_create);
  ASSERT_TRUE(f.ok());
  auto& fp = f.value();
  bytes expect;
  for (size_t len : {size_t{1}, size_t{32767}, size_t{32769}, size_t{100'003}, size_t{65536}, size_t{7}}) {
    bytes chunk(len);
    for (size_t i = 0; i < len; ++i) chunk[i] = static_cast<uint8_t>((expect.size() + i) * 31 + len);
    EXPECT_EQ(fp->append(chunk).value(), expect.size());
    expect.insert(expect.end(), chunk.begin(), chunk.end());
  }
  EXPECT_EQ(fp->size(), expect.size());
  auto all = fp->read_all();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all.value() == expect);
  EXPECT_EQ(std::filesystem::file_size(dir / "b.log"), expect.size());
  EXPECT_TRUE(fs::remove_all(dir.string()).ok());
}

size_t open_fd_count() {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(Files, QueuedWritebackLetsFilesCloseAndKeepsTheirData) {
  // The background writeback holds each file open until its call is made and
  // then lets it go, also for the ranges a full queue turns away.
  auto dir = scratch_dir();
  ASSERT_FALSE(dir.empty());
  const size_t fds_before = open_fd_count();
  bytes data(1 << 20, 7);
  for (int i = 0; i < 300; ++i) {
    auto f = file::open((dir / ("w" + std::to_string(i))).string(), file::mode::read_write_create);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f.value()->append(data).ok());
    f.value()->start_writeback(0, data.size());
  }  // the last reference here is dropped while its writeback may still be queued
  size_t fds_now = open_fd_count();
  for (int waited_ms = 0; fds_now > fds_before && waited_ms < 10'000; waited_ms += 10) {
    blocking::sleep_ms(10);
    fds_now = open_fd_count();
  }
  EXPECT_LE(fds_now, fds_before);
  auto again = file::open((dir / "w299").string(), file::mode::read_only);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.value()->read_all().value() == data);
  EXPECT_TRUE(fs::remove_all(dir.string()).ok());
}

TEST(Random, UuidIsKafkaBase64) {
  auto u = random_uuid_base64();
  EXPECT_EQ(u.size(), 22u);
  EXPECT_NE(u, random_uuid_base64());
}

}  // namespace gregor::runtime
