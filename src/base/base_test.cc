#include <gtest/gtest.h>

#include "base/crc32c.h"
#include "base/result.h"
#include "base/varint.h"

namespace gregor {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  bytes zeros(32, 0x00), ones(32, 0xff);
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(crc32c(as_bytes("123456789")), 0xE3069283u);
}

TEST(Crc32c, IncrementalEqualsWhole) {
  auto s = as_bytes("the quick brown fox jumps over the lazy dog");
  uint32_t part = crc32c(s.data(), 10);
  EXPECT_EQ(crc32c(s.data() + 10, s.size() - 10, part), crc32c(s));
}

TEST(Varint, ZigzagRoundTrip) {
  for (int64_t v : {0L, 1L, -1L, 63L, -64L, 64L, 300L, -300L, INT32_MAX + 0L, INT32_MIN + 0L, INT64_MAX, INT64_MIN}) {
    bytes b;
    put_varint(b, v);
    EXPECT_EQ(b.size(), varint_size(v));
    const uint8_t* p = b.data();
    auto got = get_varint(p, b.data() + b.size());
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, v);
    EXPECT_EQ(p, b.data() + b.size());
  }
}

TEST(Varint, KafkaEncodings) {
  bytes b;
  put_varint(b, -1);  // zigzag -1 == 1
  EXPECT_EQ(b, (bytes{0x01}));
  b.clear();
  put_uvarint(b, 300);
  EXPECT_EQ(b, (bytes{0xac, 0x02}));
}

TEST(Varint, TruncatedAndOverlongAreRejected) {
  bytes b{0x80, 0x80};
  const uint8_t* p = b.data();
  EXPECT_FALSE(get_uvarint(p, b.data() + b.size()).has_value());
  bytes overlong(6, 0x80);
  p = overlong.data();
  EXPECT_FALSE(get_uvarint(p, overlong.data() + overlong.size(), 5).has_value());
}

TEST(Result, ValueAndError) {
  result<int> good = 3;
  result<int> bad = error{"no"};
  EXPECT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().message, "no");
}

}  // namespace gregor
