#pragma once
// The records both coordinators write to their internal topics
// (__consumer_offsets, __transaction_state): a key or value is an int16
// version followed by the struct encoded at that version, as Kafka writes them.
#include <cstdint>
#include <variant>

#include "base/bytes.h"
#include "base/iobuf.h"
#include "protocol/wire.h"

namespace gregor::coordinator {

template <class T>
bytes encode_versioned(const T& s, int16_t version) {
  iobuf out;
  protocol::wire_writer w(out);
  w.write_int16(version);
  s.encode(w, version);
  bytes b;
  for (auto& c : out.chunks()) {
    auto& chunk = std::get<bytes>(c);
    b.insert(b.end(), chunk.begin(), chunk.end());
  }
  return b;
}

}  // namespace gregor::coordinator
