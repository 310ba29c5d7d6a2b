#include "runtime/blocking.h"

#include "runtime/file.h"
#include "runtime/random.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace gregor::runtime::blocking {

thread start_thread(std::function<void()> body) { return thread(std::move(body)); }

void sleep_ms(int64_t ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

uint32_t random_below(uint32_t n) {
  return n == 0 ? 0 : static_cast<uint32_t>(random_u64() % n);
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

namespace {

// Waits for `events` on fd until the deadline. False on timeout.
result<void> wait_fd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - monotonic_ms();
    if (left <= 0) return error{"timed out"};
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (r > 0) return ok();
    if (r < 0 && errno != EINTR) return error{fmt::format("poll: {}", std::strerror(errno))};
  }
}

}  // namespace

result<std::unique_ptr<tcp_socket>> tcp_socket::connect(const std::string& host, int port, int64_t timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (gai != 0) return error{fmt::format("cannot resolve {}: {}", host, gai_strerror(gai))};
  const int64_t deadline = monotonic_ms() + timeout_ms;
  std::string last = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno != EINPROGRESS) {
      last = std::strerror(errno);
      ::close(fd);
      continue;
    }
    if (r != 0) {
      auto w = wait_fd(fd, POLLOUT, deadline);
      if (!w) {
        last = w.err().message;
        ::close(fd);
        continue;
      }
      int so = 0;
      socklen_t len = sizeof(so);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
      if (so != 0) {
        last = std::strerror(so);
        ::close(fd);
        continue;
      }
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::freeaddrinfo(res);
    return std::unique_ptr<tcp_socket>(new tcp_socket(fd));
  }
  ::freeaddrinfo(res);
  return error{fmt::format("cannot connect to {}:{}: {}", host, port, last)};
}

tcp_socket::~tcp_socket() { close(); }

void tcp_socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

result<void> tcp_socket::write_all(bytes_view data, int64_t deadline_ms) {
  size_t done = 0;
  while (done < data.size()) {
    if (fd_ < 0) return error{"connection closed"};
    ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto w = wait_fd(fd_, POLLOUT, deadline_ms);
      if (!w) {
        close();
        return w;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    std::string why = n < 0 ? std::strerror(errno) : "connection closed";
    close();
    return error{why};
  }
  return ok();
}

result<void> tcp_socket::read_exact(uint8_t* out, size_t n, int64_t deadline_ms) {
  size_t done = 0;
  while (done < n) {
    if (fd_ < 0) return error{"connection closed"};
    ssize_t r = ::recv(fd_, out + done, n - done, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto w = wait_fd(fd_, POLLIN, deadline_ms);
      if (!w) {
        close();
        return w;
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    std::string why = r < 0 ? std::strerror(errno) : "connection closed by broker";
    close();
    return error{why};
  }
  return ok();
}

}  // namespace gregor::runtime::blocking
