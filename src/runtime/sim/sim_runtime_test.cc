// The simulated backend: virtual time, the network model and its faults,
// the disk's crash model, process crashes, and determinism by seed.
#include <gtest/gtest.h>

#include "runtime/clock.h"
#include "runtime/file.h"
#include "runtime/net.h"
#include "runtime/random.h"
#include "runtime/shards.h"
#include "runtime/sim/disk.h"
#include "runtime/sim/world.h"

namespace gregor::runtime::sim {
namespace {

iobuf frame(const std::string& s) {
  iobuf b;
  b.append(as_bytes(s));
  return b;
}

// A process that echoes every 5-byte frame it reads, on one port.
struct echo_server {
  std::unique_ptr<listener> l;
  int served = 0;
};

std::shared_ptr<void> start_echo(uint16_t port) {
  auto s = std::make_shared<echo_server>();
  auto bound = listen("", port);
  EXPECT_TRUE(bound.ok());
  s->l = std::move(bound.value());
  spawn(0, [s]() -> task<void> {
    for (;;) {
      auto c = co_await s->l->accept(0);
      if (!c) co_return;
      ++s->served;
      spawn(0, [conn = c.value()]() -> task<void> {
        uint8_t buf[5];
        while (co_await conn->read_exact(buf, 5)) {
          iobuf out;
          out.append(bytes_view(buf, 5));
          if (!co_await conn->write(out)) break;
        }
      });
    }
  });
  return s;
}

TEST(SimWorld, VirtualTimeRunsSleepsInstantly) {
  world w(1);
  auto& n = w.add_node(1, "n1", 1);
  int64_t woke_at = -1;
  n.start([&] {
    spawn(0, [&]() -> task<void> {
      co_await sleep_for(60'000);
      woke_at = monotonic_ms();
    });
    return std::shared_ptr<void>();
  });
  int64_t started = 1'000'000;
  w.run_for(59'999);
  EXPECT_EQ(woke_at, -1);
  w.run_for(2);
  EXPECT_GE(woke_at, started + 60'000);
  EXPECT_EQ(w.now_ms(), 60'001);
}

TEST(SimWorld, EchoOverTheNetworkAndSubmitAcrossShards) {
  world w(2);
  auto& server = w.add_node(1, "n1", 2);
  auto& client = w.add_node(2, "n2", 2);
  server.start([] { return start_echo(9092); });
  std::string got;
  size_t hopped_to = 99;
  client.start([&] {
    spawn(0, [&]() -> task<void> {
      auto c = co_await connect("n1", 9092, 1000);
      EXPECT_TRUE(c.ok());
      if (!c) co_return;
      for (auto s : {"hello", "world"}) {
        EXPECT_TRUE(co_await c.value()->write(frame(s)));
        uint8_t buf[5];
        EXPECT_TRUE(co_await c.value()->read_exact(buf, 5));
        got += std::string(reinterpret_cast<char*>(buf), 5);
      }
      hopped_to = co_await submit_to(1, []() -> task<size_t> { co_return this_shard(); });
    });
    return std::shared_ptr<void>();
  });
  w.run_for(1000);
  EXPECT_EQ(got, "helloworld");
  EXPECT_EQ(hopped_to, 1u);
}

TEST(SimWorld, PartitionBlackholesConnectsAndCrashResetsConnections) {
  world w(3);
  auto& server = w.add_node(1, "n1", 1);
  auto& client = w.add_node(2, "n2", 1);
  server.start([] { return start_echo(9092); });
  w.partition(1, 2);
  std::optional<result<std::shared_ptr<connection>>> attempt;
  int64_t gave_up_at = 0;
  client.start([&] {
    spawn(0, [&]() -> task<void> {
      attempt = co_await connect("n1", 9092, 2000);
      gave_up_at = monotonic_ms();
    });
    return std::shared_ptr<void>();
  });
  w.run_for(5000);
  ASSERT_TRUE(attempt.has_value());
  EXPECT_FALSE(attempt->ok());
  EXPECT_NE(attempt->err().message.find("timed out"), std::string::npos);
  EXPECT_EQ(gave_up_at, 1'000'000 + 2000);

  // Healed: the connection works until the server's process dies.
  w.heal_all();
  client.crash();
  std::string read_error;
  client.start([&] {
    spawn(0, [&]() -> task<void> {
      auto c = co_await connect("n1", 9092, 2000);
      EXPECT_TRUE(c.ok());
      if (!c) co_return;
      uint8_t buf[5];
      auto r = co_await c.value()->read_exact(buf, 5);  // nothing sent: waits
      read_error = r ? "no error" : r.err().message;
    });
    return std::shared_ptr<void>();
  });
  w.run_for(100);
  EXPECT_TRUE(read_error.empty());
  server.crash();
  w.run_for(100);
  EXPECT_EQ(read_error, "connection reset by peer");

  // A restarted server listens again; nobody listens on another port.
  server.start([] { return start_echo(9092); });
  std::string refused;
  client.crash();
  client.start([&] {
    spawn(0, [&]() -> task<void> {
      auto c = co_await connect("n1", 9093, 2000);
      refused = c ? "connected" : c.err().message;
    });
    return std::shared_ptr<void>();
  });
  w.run_for(100);
  EXPECT_NE(refused.find("Connection refused"), std::string::npos) << refused;
}

TEST(SimWorld, DroppedDuplicatedAndReorderedFramesStayWholeFrames) {
  world w(4);
  w.net_faults().drop = 0.2;
  w.net_faults().duplicate = 0.2;
  w.net_faults().reorder = 0.3;
  auto& server = w.add_node(1, "n1", 1);
  auto& client = w.add_node(2, "n2", 1);
  auto seen = std::make_shared<std::vector<std::string>>();
  server.start([seen] {
    auto l = std::shared_ptr<listener>(listen("", 1).value().release());
    spawn(0, [l, seen]() -> task<void> {
      auto c = co_await l->accept(0);
      if (!c) co_return;
      uint8_t buf[3];
      while (co_await c.value()->read_exact(buf, 3)) seen->push_back(std::string(reinterpret_cast<char*>(buf), 3));
    });
    return l;
  });
  client.start([&] {
    spawn(0, [&]() -> task<void> {
      auto c = co_await connect("n1", 1, 1000);
      if (!c) co_return;
      for (int i = 100; i < 300; ++i) (void)co_await c.value()->write(frame(std::to_string(i)));
      co_await sleep_for(60'000);
    });
    return std::shared_ptr<void>();
  });
  w.run_for(2000);
  // Every frame that arrived is one that was sent; some were lost, some
  // came twice, some out of order.
  std::map<std::string, int> count;
  bool out_of_order = false;
  for (size_t i = 0; i < seen->size(); ++i) {
    int v = std::stoi((*seen)[i]);
    EXPECT_GE(v, 100);
    EXPECT_LT(v, 300);
    ++count[(*seen)[i]];
    if (i > 0 && v < std::stoi((*seen)[i - 1])) out_of_order = true;
  }
  EXPECT_LT(count.size(), 200u);
  bool twice = false;
  for (auto& [_, c] : count) twice = twice || c > 1;
  EXPECT_TRUE(twice);
  EXPECT_TRUE(out_of_order);
}

TEST(SimDisk, CrashKeepsSyncedDataAndAPrefixOfTheRest) {
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    world w(seed);
    auto& n = w.add_node(1, "n1", 1);
    n.start([] {
      EXPECT_TRUE(fs::create_directories("/data/log").ok());
      auto f = file::open("/data/log/a", file::mode::read_write_create).value();
      EXPECT_TRUE(f->append(as_bytes("synced-")).ok());
      EXPECT_TRUE(f->sync().ok());
      EXPECT_TRUE(f->append(as_bytes("one-")).ok());
      EXPECT_TRUE(f->append(as_bytes("two-")).ok());
      EXPECT_TRUE(f->append(as_bytes("three")).ok());
      return std::shared_ptr<void>();
    });
    n.crash();
    std::string after;
    n.start([&] {
      after = fs::read_file("/data/log/a").value();
      return std::shared_ptr<void>();
    });
    SCOPED_TRACE(seed);
    ASSERT_EQ(after.rfind("synced-", 0), 0u);
    EXPECT_EQ(std::string("synced-one-two-three").rfind(after, 0), 0u) << after;
  }
}

TEST(SimDisk, FaultsGiveErrorsAndAHaltedNodeCrashes) {
  world w(5);
  auto& n = w.add_node(1, "n1", 1);
  n.faults().capacity_bytes = 10;
  std::string full;
  n.start([&] {
    auto f = file::open("/x", file::mode::read_write_create).value();
    EXPECT_TRUE(f->append(as_bytes("12345")).ok());
    auto r = f->append(as_bytes("1234567"));
    full = r ? "" : r.err().message;
    spawn(0, [f]() -> task<void> {
      co_await sleep_for(10);
      if (!f->sync()) current().halt("fsync failed");
      co_return;
    });
    return std::shared_ptr<void>();
  });
  EXPECT_NE(full.find("No space left on device"), std::string::npos);
  n.faults().sync_error = 1.0;
  w.run_for(100);
  EXPECT_FALSE(n.running());
  EXPECT_EQ(n.halt_reason(), "fsync failed");
}

TEST(SimWorld, SameSeedSameRun) {
  auto run = [](uint64_t seed) {
    world w(seed);
    w.net_faults().drop = 0.1;
    w.net_faults().reorder = 0.2;
    auto& server = w.add_node(1, "n1", 2);
    auto& client = w.add_node(2, "n2", 2);
    server.start([] { return start_echo(7); });
    auto trace = std::make_shared<std::vector<int64_t>>();
    client.start([trace] {
      spawn(1, [trace]() -> task<void> {
        for (int i = 0; i < 20; ++i) {
          auto c = co_await connect("n1", 7, 50);
          if (!c) continue;
          (void)co_await c.value()->write(frame("abcde"));
          co_await sleep_for(static_cast<int64_t>(random_below(10)));
          trace->push_back(monotonic_ms());
        }
      });
      return trace;
    });
    w.run_for(5000);
    return *trace;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

}  // namespace
}  // namespace gregor::runtime::sim
