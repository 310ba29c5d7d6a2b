#pragma once
// Test helper: deterministic pseudo-random values for the generated fill_sample()
// functions (protocol/samples.h), which populate a message for round-trip tests.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>

#include "base/bytes.h"
#include "protocol/wire.h"

namespace gregor::protocol {

class sample_gen {
 public:
  // max_count bounds array lengths; small values keep samples short for tests
  // that are quadratic in the encoded size (truncation at every byte).
  explicit sample_gen(uint64_t seed, size_t max_count = 3) : state_(seed), max_count_(max_count) {}

  // splitmix64
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  template <class T>
  T value() {
    if constexpr (std::is_same_v<T, bool>) {
      return next() & 1;
    } else if constexpr (std::is_same_v<T, double>) {
      return static_cast<double>(static_cast<int64_t>(next() % 2000001) - 1000000) / 8.0;
    } else if constexpr (std::is_same_v<T, uuid>) {
      uuid u;
      if (next() % 5 == 0) return u;  // zero now and then: tagged uuids skip it
      for (auto& b : u.data) b = static_cast<uint8_t>(next());
      return u;
    } else {
      // Mostly small numbers, sometimes the extremes and -1 (a common default).
      switch (next() % 8) {
        case 0: return std::numeric_limits<T>::min();
        case 1: return std::numeric_limits<T>::max();
        case 2: return static_cast<T>(-1);
        case 3: return T{};
        default: return static_cast<T>(next());
      }
    }
  }

  // True (make it null) a quarter of the time, when null is allowed.
  bool null(bool allowed) { return allowed && next() % 4 == 0; }

  std::string string() {
    std::string s(next() % 9, '\0');
    for (auto& c : s) c = static_cast<char>('a' + next() % 26);
    return s;
  }

  gregor::bytes blob() {
    gregor::bytes b(next() % 12);
    for (auto& c : b) c = static_cast<uint8_t>(next());
    return b;
  }

  size_t count() { return max_count_ == 0 ? 0 : next() % (max_count_ + 1); }

  // Sometimes appends tagged fields with numbers no known field uses in this
  // version (-1 entries in `known` are placeholders), in ascending order as a
  // decoder would see them.
  void unknown_tags(raw_tagged_fields& out, std::initializer_list<int> known) {
    if (next() % 3 != 0) return;
    for (uint32_t tag = static_cast<uint32_t>(next() % 4); tag < 40; tag += 1 + static_cast<uint32_t>(next() % 20)) {
      if (std::find(known.begin(), known.end(), static_cast<int>(tag)) != known.end()) continue;
      raw_tagged_field f;
      f.tag = tag;
      f.data = blob();
      out.push_back(std::move(f));
    }
  }

 private:
  uint64_t state_;
  size_t max_count_;
};

}  // namespace gregor::protocol
