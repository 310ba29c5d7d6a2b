#pragma once
// TCP as the node sees it: listeners that accept on one shard and hand each
// connection to the shard chosen for it, outbound connections, and
// connections that read exact byte counts and write iobufs (file regions go
// out with sendfile(2) in production). The backend supplies them: real TCP,
// or a simulated network that delays, drops, duplicates and partitions.
//
// A simulated network delivers each write() as a unit and may drop,
// duplicate or reorder units; so every write carries whole frames.
#include <cstdint>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/iobuf.h"
#include "base/result.h"
#include "runtime/task.h"

namespace gregor::runtime {

class connection {
 public:
  virtual ~connection() = default;
  // Reads exactly n bytes; an error on EOF, a reset or close().
  virtual task<result<void>> read_exact(uint8_t* dst, size_t n) = 0;
  // Writes every chunk of buf in order.
  virtual task<result<void>> write(const iobuf& buf) = 0;
  // Closes both directions; pending and later reads and writes fail.
  virtual void close() = 0;
  const std::string& peer() const { return peer_; }

 protected:
  std::string peer_ = "unknown";
};

class listener {
 public:
  virtual ~listener() = default;
  // Accepts the next connection; it belongs to `target_shard` of this node.
  virtual task<result<std::shared_ptr<connection>>> accept(size_t target_shard) = 0;
  virtual uint16_t port() const = 0;
  virtual void close() = 0;
};

// Binds host:port on the calling shard ("" or 0.0.0.0: every interface;
// port 0 picks a free port).
result<std::unique_ptr<listener>> listen(const std::string& host, uint16_t port);
// Connects to host:port, giving up after timeout_ms. The connection belongs
// to the calling shard.
task<result<std::shared_ptr<connection>>> connect(const std::string& host, uint16_t port, int64_t timeout_ms);

}  // namespace gregor::runtime
