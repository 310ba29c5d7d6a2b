#pragma once
// runtime's blocking backend, for code that runs on somebody else's threads:
// the client library lives inside an application, so it cannot take over an
// event loop or ask the caller to run one. It gets plain blocking sockets with
// poll() deadlines, sleeps, random numbers and threads from here, and the
// clocks of runtime/clock.h, so that every clock read, sleep, thread and system
// call of the project still goes through runtime/.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/bytes.h"
#include "base/result.h"
#include "runtime/clock.h"

namespace gregor::runtime::blocking {

using runtime::monotonic_ms;
using runtime::wall_clock_ms;

// A background thread of a blocking component (the producer's sender, the
// consumer's heartbeat).
using thread = std::thread;
thread start_thread(std::function<void()> body);

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

}  // namespace gregor::runtime::blocking
