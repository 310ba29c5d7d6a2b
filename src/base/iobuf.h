#pragma once
// iobuf: an outgoing message as a list of chunks, each either bytes we own or
// a region of an open file. File regions let a fetch response carry log data
// that the network layer sends with sendfile, straight from the page cache.
#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace gregor {

// What a file_region reads from: an open file of runtime/ (a real file, or a
// file on a simulated disk). Base only knows it can be read.
class region_source {
 public:
  virtual ~region_source() = default;
  // The OS file descriptor, for sendfile(2); -1 for a file that has none.
  virtual int native_handle() const = 0;
  // Reads exactly n bytes at position (an error if the file is shorter).
  virtual result<void> read_exact_at(uint64_t position, uint8_t* dst, size_t n) const = 0;
};

struct file_region {
  std::shared_ptr<const region_source> source;  // also keeps the file open while queued
  uint64_t position = 0;
  uint32_t size = 0;
};

class iobuf {
 public:
  using chunk = std::variant<bytes, file_region>;

  // The bytes chunk at the tail, created if the tail is a file region.
  bytes& tail() {
    if (chunks_.empty() || !std::holds_alternative<bytes>(chunks_.back())) chunks_.emplace_back(bytes{});
    return std::get<bytes>(chunks_.back());
  }
  void append(bytes_view b) {
    auto& t = tail();
    t.insert(t.end(), b.begin(), b.end());
  }
  void append(file_region r) {
    if (r.size > 0) chunks_.emplace_back(std::move(r));
  }
  void append(iobuf&& other) {
    for (auto& c : other.chunks_) {
      if (auto* b = std::get_if<bytes>(&c)) append(bytes_view(*b));
      else append(std::get<file_region>(std::move(c)));
    }
  }
  size_t size() const {
    size_t n = 0;
    for (auto& c : chunks_) n += std::holds_alternative<bytes>(c) ? std::get<bytes>(c).size() : std::get<file_region>(c).size;
    return n;
  }
  bool empty() const { return size() == 0; }
  std::vector<chunk>& chunks() { return chunks_; }
  const std::vector<chunk>& chunks() const { return chunks_; }

 private:
  std::vector<chunk> chunks_;
};

}  // namespace gregor
