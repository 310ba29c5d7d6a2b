#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "runtime/blocking.h"
#include "runtime/clock.h"
#include "runtime/engine.h"
#include "runtime/shards.h"
#include "runtime/file.h"
#include "runtime/random.h"
#include "runtime/handle_cache.h"

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

namespace gregor::runtime {

// ---- the bounded cache of open file descriptors

namespace {
// A cache over real files in a scratch directory, counting the opens.
struct cache_fixture {
  std::filesystem::path dir = scratch_dir();
  int opens = 0;
  handle_cache::opener opener() {
    return [this](const std::string& p) -> result<int> {
      ++opens;
      int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return error{"cannot open " + p};
      return fd;
    };
  }
  std::string make(const std::string& name, const std::string& content) {
    auto p = (dir / name).string();
    EXPECT_TRUE(fs::write_file_atomic(p, content).ok());
    return p;
  }
  ~cache_fixture() { (void)fs::remove_all(dir.string()); }
};

std::string read_fd(int fd) {
  char buf[64];
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  return n < 0 ? std::string("<error>") : std::string(buf, static_cast<size_t>(n));
}
}  // namespace

TEST(HandleCache, EvictsLeastRecentlyUsedAndReopensOnUse) {
  cache_fixture fx;
  handle_cache cache(2);
  std::vector<handle_cache::slot_id> slots;
  for (int i = 0; i < 3; ++i) slots.push_back(cache.add(fx.make("f" + std::to_string(i), "data" + std::to_string(i)), fx.opener(), -1));
  for (auto s : slots) {  // opens 0, 1, then 2 evicts 0
    auto fd = cache.pin(s);
    ASSERT_TRUE(fd.ok());
    cache.unpin(s);
  }
  EXPECT_EQ(cache.open_count(), 2u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_EQ(fx.opens, 3);
  // 2 is cached: no open. 0 was evicted: reopened, and 1 (now least recent) goes.
  auto fd2 = cache.pin(slots[2]);
  cache.unpin(slots[2]);
  EXPECT_EQ(fx.opens, 3);
  auto fd0 = cache.pin(slots[0]);
  ASSERT_TRUE(fd0.ok());
  EXPECT_EQ(read_fd(fd0.value()), "data0");
  cache.unpin(slots[0]);
  EXPECT_EQ(fx.opens, 4);
  EXPECT_EQ(cache.open_count(), 2u);
  EXPECT_EQ(cache.evictions(), 2u);
  for (auto s : slots) cache.forget(s);
  EXPECT_EQ(cache.open_count(), 0u);
}

TEST(HandleCache, PinnedDescriptorIsNotClosedUnderItsUser) {
  // A read in flight holds its pin: filling the cache past the bound must not
  // close that descriptor (its number could be reused by another file).
  cache_fixture fx;
  handle_cache cache(1);
  auto a = cache.add(fx.make("a", "AAAA"), fx.opener(), -1);
  auto b = cache.add(fx.make("b", "BBBB"), fx.opener(), -1);
  auto fa = cache.pin(a);
  ASSERT_TRUE(fa.ok());
  auto fb = cache.pin(b);  // over the bound while both are pinned
  ASSERT_TRUE(fb.ok());
  EXPECT_EQ(cache.open_count(), 2u);
  EXPECT_EQ(read_fd(fa.value()), "AAAA");
  cache.unpin(b);  // a is less recently used but pinned: b is the one closed
  EXPECT_EQ(cache.open_count(), 1u);
  EXPECT_EQ(read_fd(fa.value()), "AAAA");
  cache.unpin(a);
  EXPECT_EQ(cache.open_count(), 1u);
  cache.forget(a);
  cache.forget(b);
}

TEST(HandleCache, FollowsRenamesAndKeepsRemovedFilesOpen) {
  cache_fixture fx;
  handle_cache cache(1);
  auto a = cache.add(fx.make("a", "AAAA"), fx.opener(), -1);
  auto b = cache.add(fx.make("b", "BBBB"), fx.opener(), -1);
  ASSERT_TRUE(cache.pin(a).ok());
  cache.unpin(a);
  ASSERT_TRUE(cache.pin(b).ok());  // evicts a
  cache.unpin(b);
  ASSERT_TRUE(fs::rename((fx.dir / "a").string(), (fx.dir / "a2").string()).ok());
  cache.renamed((fx.dir / "a").string(), (fx.dir / "a2").string());
  auto fa = cache.pin(a);  // reopened at its new path; evicts b
  ASSERT_TRUE(fa.ok());
  EXPECT_EQ(read_fd(fa.value()), "AAAA");
  cache.unpin(a);
  cache.removing((fx.dir / "b").string());  // b is reopened and kept
  ASSERT_TRUE(fs::remove((fx.dir / "b").string()).ok());
  auto fb = cache.pin(b);
  ASSERT_TRUE(fb.ok());
  EXPECT_EQ(read_fd(fb.value()), "BBBB");
  cache.unpin(b);
  cache.forget(a);
  cache.forget(b);
}

TEST(Files, ManyFilesStayCorrectUnderASmallBound) {
  // 300 files through the production filesystem with at most 16 descriptors
  // cached: every file still appends, reads back and regions read whole.
  auto dir = scratch_dir();
  ASSERT_FALSE(dir.empty());
  set_max_open_files(16);
  const size_t fds_before = open_fd_count();
  std::vector<std::shared_ptr<file>> files;
  for (int i = 0; i < 300; ++i) {
    auto f = file::open((dir / ("m" + std::to_string(i))).string(), file::mode::read_write_create);
    ASSERT_TRUE(f.ok());
    files.push_back(f.value());
  }
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 300; ++i) {
      std::string rec = std::to_string(i) + "/" + std::to_string(round) + ";";
      ASSERT_TRUE(files[i]->append(as_bytes(rec)).ok());
    }
  EXPECT_LE(cached_open_files(), 16u);
  EXPECT_LE(open_fd_count(), fds_before + 16);
  auto region = files[5]->region(0, 4);  // pins file 5 while queued
  for (int i = 0; i < 300; ++i) {
    auto all = files[i]->read_all();
    ASSERT_TRUE(all.ok());
    std::string want;
    for (int round = 0; round < 3; ++round) want += std::to_string(i) + "/" + std::to_string(round) + ";";
    EXPECT_EQ(std::string(all.value().begin(), all.value().end()), want);
  }
  EXPECT_GE(region.source->native_handle(), 0);
  auto bytes5 = read_region(region);
  ASSERT_TRUE(bytes5.ok());
  EXPECT_EQ(std::string(bytes5.value().begin(), bytes5.value().end()), "5/0;");
  files.clear();
  region = {};
  EXPECT_EQ(cached_open_files(), 0u);
  set_max_open_files(0);
  EXPECT_TRUE(fs::remove_all(dir.string()).ok());
}

}  // namespace gregor::runtime
