#pragma once
// The client's own small runtime: clocks, sleeps, random numbers and a blocking
// TCP socket with deadlines.
//
// Why not runtime/: runtime/ is the broker's per-core event loop (one Asio
// executor per shard, coroutine tasks, submit_to). A client library runs inside
// somebody else's program, on the application's threads, and must not take over
// an event loop or require the caller to run one. So the client uses plain
// blocking sockets with poll() deadlines and std::thread for its background work
// (the producer's sender, the consumer's heartbeat). DESIGN's rule "no threads,
// clocks, randomness or system calls outside runtime/" is kept in spirit:
// clock reads, sleeps, random numbers and sockets of the client live in this
// file (sys.h / sys.cc) only; the two background threads are plain
// std::thread + std::condition_variable in producer.cc and consumer.cc.
#include <cstdint>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/result.h"

namespace gregor::client::sys {

int64_t wall_clock_ms();
int64_t monotonic_ms();
void sleep_ms(int64_t ms);
// Uniform in [0, n).
uint32_t random_below(uint32_t n);
std::string hostname();

// A connected TCP socket. Reads and writes wait at most until the given
// monotonic deadline; any failure closes the socket.
class tcp_socket {
 public:
  static result<std::unique_ptr<tcp_socket>> connect(const std::string& host, int port, int64_t timeout_ms);
  ~tcp_socket();
  tcp_socket(const tcp_socket&) = delete;
  tcp_socket& operator=(const tcp_socket&) = delete;

  result<void> write_all(bytes_view data, int64_t deadline_ms);
  result<void> read_exact(uint8_t* out, size_t n, int64_t deadline_ms);
  bool is_open() const { return fd_ >= 0; }
  void close();

 private:
  explicit tcp_socket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace gregor::client::sys
