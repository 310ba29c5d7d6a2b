// The network: the free functions (which go to the calling thread's
// backend) and production TCP on Asio.
#include "runtime/net.h"

#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "runtime/backend.h"
#include "runtime/engine_impl.h"

namespace gregor::runtime {

result<std::unique_ptr<listener>> listen(const std::string& host, uint16_t port) {
  return current().listen(host, port);
}

task<result<std::shared_ptr<connection>>> connect(const std::string& host, uint16_t port, int64_t timeout_ms) {
  return current().connect(host, port, timeout_ms);
}

namespace {

// co_await on an Asio asynchronous operation: `start` is called with the
// completion handler; the coroutine resumes (on the shard running the
// operation's io_context, which is ours) with the error and byte count.
template <class Start>
struct asio_op {
  Start start;
  std::error_code ec;
  size_t n = 0;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    start([this, h](std::error_code e, size_t k) {
      ec = e;
      n = k;
      h.resume();
    });
  }
  std::error_code await_resume() const noexcept { return ec; }
};
template <class Start>
asio_op<Start> on(Start s) {
  return asio_op<Start>{std::move(s)};
}

class tcp_connection final : public connection {
 public:
  explicit tcp_connection(asio::ip::tcp::socket s) : socket_(std::move(s)) {
    std::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  task<result<void>> read_exact(uint8_t* dst, size_t n) override {
    auto ec = co_await on([&](auto done) { asio::async_read(socket_, asio::buffer(dst, n), std::move(done)); });
    if (ec) co_return error{ec == asio::error::eof ? "connection closed by peer" : ec.message()};
    co_return ok();
  }

  task<result<void>> write(const iobuf& buf) override {
    // Gather consecutive byte chunks into one write; file regions go through sendfile.
    std::vector<asio::const_buffer> pending;
    for (auto& c : buf.chunks()) {
      if (auto* b = std::get_if<bytes>(&c)) {
        if (!b->empty()) pending.emplace_back(b->data(), b->size());
        continue;
      }
      if (!pending.empty()) {
        if (auto r = co_await write_buffers(pending); !r) co_return r;
        pending.clear();
      }
      auto r = co_await send_file_region(std::get<file_region>(c));
      if (!r) co_return r;
    }
    if (!pending.empty()) co_return co_await write_buffers(pending);
    co_return ok();
  }

  void close() override {
    std::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  task<result<void>> write_buffers(const std::vector<asio::const_buffer>& bufs) {
    auto ec = co_await on([&](auto done) { asio::async_write(socket_, bufs, std::move(done)); });
    if (ec) co_return error{ec.message()};
    co_return ok();
  }

  task<result<void>> send_file_region(const file_region& r) {
    int fd = r.source->native_handle();
    if (fd < 0) {
      // Not a real file: send its bytes.
      bytes data(r.size);
      if (auto got = r.source->read_exact_at(r.position, data.data(), data.size()); !got) co_return got.err();
      std::vector<asio::const_buffer> one{asio::const_buffer(data.data(), data.size())};
      co_return co_await write_buffers(one);
    }
    off_t pos = static_cast<off_t>(r.position);
    size_t left = r.size;
    socket_.native_non_blocking(true);
    while (left > 0) {
      ssize_t n = ::sendfile(socket_.native_handle(), fd, &pos, left);
      if (n > 0) {
        left -= static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        auto ec = co_await on([&](auto done) {
          socket_.async_wait(asio::ip::tcp::socket::wait_write,
                             [done = std::move(done)](std::error_code e) mutable { done(e, 0); });
        });
        if (ec) co_return error{ec.message()};
        continue;
      }
      if (n == 0) co_return error{"sendfile: file shorter than the region to send"};
      if (errno == EINTR) continue;
      co_return error{std::string("sendfile: ") + std::strerror(errno)};
    }
    co_return ok();
  }

  asio::ip::tcp::socket socket_;
};

class tcp_listener final : public listener {
 public:
  explicit tcp_listener(asio::ip::tcp::acceptor a) : acceptor_(std::move(a)) {}

  task<result<std::shared_ptr<connection>>> accept(size_t target_shard) override {
    asio::ip::tcp::socket socket(io_context_of(target_shard));
    auto ec = co_await on([&](auto done) {
      acceptor_.async_accept(socket, [done = std::move(done)](std::error_code e) mutable { done(e, 0); });
    });
    if (ec) co_return error{ec.message()};
    co_return std::shared_ptr<connection>(std::make_shared<tcp_connection>(std::move(socket)));
  }

  uint16_t port() const override {
    std::error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }

  void close() override {
    std::error_code ec;
    acceptor_.close(ec);
  }

 private:
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace

result<std::unique_ptr<listener>> engine::listen(const std::string& host, uint16_t port) {
  auto& ctx = io_context_of(this_shard());
  std::error_code ec;
  asio::ip::tcp::resolver resolver(ctx);
  auto endpoints = resolver.resolve(host.empty() ? "0.0.0.0" : host, std::to_string(port), ec);
  if (ec || endpoints.empty()) return error{"cannot resolve listener host '" + host + "': " + ec.message()};
  auto ep = endpoints.begin()->endpoint();
  asio::ip::tcp::acceptor a(ctx);
  a.open(ep.protocol(), ec);
  if (ec) return error{"cannot open socket: " + ec.message()};
  a.set_option(asio::socket_base::reuse_address(true), ec);
  a.bind(ep, ec);
  if (ec) return error{"cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message()};
  a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return error{"cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message()};
  return std::unique_ptr<listener>(std::make_unique<tcp_listener>(std::move(a)));
}

task<result<std::shared_ptr<connection>>> engine::connect(const std::string& host, uint16_t port,
                                                          int64_t timeout_ms) {
  auto& ctx = io_context_of(this_shard());
  std::error_code ec;
  asio::ip::tcp::resolver resolver(ctx);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec || endpoints.empty()) co_return error{"cannot resolve " + host + ": " + ec.message()};
  auto socket = std::make_shared<asio::ip::tcp::socket>(ctx);
  // The deadline closes the socket, which ends the connect attempt.
  auto deadline = std::make_shared<asio::steady_timer>(ctx, std::chrono::milliseconds(timeout_ms));
  auto timed_out = std::make_shared<bool>(false);
  deadline->async_wait([socket, timed_out](std::error_code e) {
    if (e) return;
    *timed_out = true;
    std::error_code ignored;
    socket->close(ignored);
  });
  ec = co_await on([&](auto done) {
    asio::async_connect(*socket, endpoints,
                        [done = std::move(done)](std::error_code e, const asio::ip::tcp::endpoint&) mutable {
                          done(e, 0);
                        });
  });
  deadline->cancel();
  if (*timed_out) co_return error{"timed out connecting to " + host + ":" + std::to_string(port)};
  if (ec) co_return error{"cannot connect to " + host + ":" + std::to_string(port) + ": " + ec.message()};
  co_return std::shared_ptr<connection>(std::make_shared<tcp_connection>(std::move(*socket)));
}

}  // namespace gregor::runtime
