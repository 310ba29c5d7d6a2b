// Kafka's offset checkpoint files (replication-offset-checkpoint).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "storage/offset_checkpoint.h"

namespace gregor::storage {
namespace {

namespace fs = std::filesystem;

struct OffsetCheckpoint : ::testing::Test {
  void SetUp() override {
    dir = fs::temp_directory_path() / ("gregor-ckpt-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    path = (dir / "replication-offset-checkpoint").string();
  }
  void TearDown() override { fs::remove_all(dir); }
  void write_raw(const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }
  fs::path dir;
  std::string path;
};

TEST_F(OffsetCheckpoint, RoundTripsInKafkasFormat) {
  partition_offsets o{{{"orders", 0}, 120}, {{"orders", 3}, 7}, {{"__consumer_offsets", 12}, 0}};
  ASSERT_TRUE(write_offset_checkpoint(path, o).ok());
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "0\n3\n__consumer_offsets 12 0\norders 0 120\norders 3 7\n");
  auto back = read_offset_checkpoint(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), o);
}

TEST_F(OffsetCheckpoint, MissingIsEmptyAndMalformedIsRefusedByLine) {
  auto none = read_offset_checkpoint(path);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.value().empty());
  for (const char* bad : {"1\n0\n", "0\nx\n", "0\n2\nt 0 1\n", "0\n1\nt 0\n", "0\n1\nt -1 5\n", "0\n1\nt 0 x\n",
                          "0\n1\n 0 5\n"}) {
    write_raw(bad);
    auto r = read_offset_checkpoint(path);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.err().message.find("replication-offset-checkpoint"), std::string::npos);
  }
}

}  // namespace
}  // namespace gregor::storage
