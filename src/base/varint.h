#pragma once
// Kafka's variable-length integers: unsigned varints (compact lengths, tagged
// fields) and zigzag varints/varlongs (record fields in batch v2).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/bytes.h"

namespace gregor {

inline void put_uvarint(bytes& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
inline void put_varint(bytes& out, int64_t v) { put_uvarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }

inline size_t uvarint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) { v >>= 7; ++n; }
  return n;
}
inline size_t varint_size(int64_t v) { return uvarint_size((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }

// Reads an unsigned varint of at most max_bytes (5 for 32-bit, 10 for 64-bit)
// from [p, end). Returns nullopt on truncation or overlong encoding; on success
// advances p.
inline std::optional<uint64_t> get_uvarint(const uint8_t*& p, const uint8_t* end, int max_bytes = 10) {
  uint64_t v = 0;
  for (int i = 0; i < max_bytes; ++i) {
    if (p == end) return std::nullopt;
    uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) return v;
  }
  return std::nullopt;
}
inline std::optional<int64_t> get_varint(const uint8_t*& p, const uint8_t* end, int max_bytes = 10) {
  auto u = get_uvarint(p, end, max_bytes);
  if (!u) return std::nullopt;
  return static_cast<int64_t>((*u >> 1) ^ (~(*u & 1) + 1));
}

}  // namespace gregor
