#pragma once
// TCP for the broker: a listener that accepts on one shard and hands each
// connection to the shard chosen for it, and connections that read exact byte
// counts and write iobufs, sending file regions with sendfile(2).
#include <cstdint>
#include <memory>
#include <string>

#include <asio/ip/tcp.hpp>

#include "base/bytes.h"
#include "base/iobuf.h"
#include "base/result.h"
#include "runtime/task.h"

namespace gregor::runtime {

class connection {
 public:
  explicit connection(asio::ip::tcp::socket s);
  // Reads exactly n bytes; an error on EOF or a reset.
  task<result<void>> read_exact(uint8_t* dst, size_t n);
  // Writes every chunk of buf in order.
  task<result<void>> write(const iobuf& buf);
  void close();
  const std::string& peer() const { return peer_; }

 private:
  task<result<void>> send_file_region(const file_region& r);
  asio::ip::tcp::socket socket_;
  std::string peer_;
};

class listener {
 public:
  // Binds host:port on the calling shard's executor. port 0 picks a free port.
  static result<std::unique_ptr<listener>> bind(asio::any_io_executor ex, const std::string& host, uint16_t port);
  // Accepts the next connection; its socket belongs to `target_shard`'s loop.
  task<result<std::shared_ptr<connection>>> accept(size_t target_shard);
  uint16_t port() const;
  void close();

 private:
  explicit listener(asio::ip::tcp::acceptor a) : acceptor_(std::move(a)) {}
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace gregor::runtime
