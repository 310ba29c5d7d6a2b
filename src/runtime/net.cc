#include "runtime/net.h"

#include "runtime/engine.h"

#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/write.hpp>

namespace gregor::runtime {

connection::connection(asio::ip::tcp::socket s) : socket_(std::move(s)) {
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? "unknown" : ep.address().to_string() + ":" + std::to_string(ep.port());
}

task<result<void>> connection::read_exact(uint8_t* dst, size_t n) {
  std::error_code ec;
  co_await asio::async_read(socket_, asio::buffer(dst, n), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return error{ec == asio::error::eof ? "connection closed by peer" : ec.message()};
  co_return ok();
}

task<result<void>> connection::write(const iobuf& buf) {
  // Gather consecutive byte chunks into one write; file regions go through sendfile.
  std::vector<asio::const_buffer> pending;
  std::error_code ec;
  for (auto& c : buf.chunks()) {
    if (auto* b = std::get_if<bytes>(&c)) {
      if (!b->empty()) pending.emplace_back(b->data(), b->size());
      continue;
    }
    if (!pending.empty()) {
      co_await asio::async_write(socket_, pending, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return error{ec.message()};
      pending.clear();
    }
    auto r = co_await send_file_region(std::get<file_region>(c));
    if (!r) co_return r;
  }
  if (!pending.empty()) {
    co_await asio::async_write(socket_, pending, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return error{ec.message()};
  }
  co_return ok();
}

task<result<void>> connection::send_file_region(const file_region& r) {
  off_t pos = static_cast<off_t>(r.position);
  size_t left = r.size;
  socket_.native_non_blocking(true);
  while (left > 0) {
    ssize_t n = ::sendfile(socket_.native_handle(), r.fd, &pos, left);
    if (n > 0) {
      left -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      std::error_code ec;
      co_await socket_.async_wait(asio::ip::tcp::socket::wait_write, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return error{ec.message()};
      continue;
    }
    if (n == 0) co_return error{"sendfile: file shorter than the region to send"};
    if (errno == EINTR) continue;
    co_return error{std::string("sendfile: ") + std::strerror(errno)};
  }
  co_return ok();
}

void connection::close() {
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

result<std::unique_ptr<listener>> listener::bind(asio::any_io_executor ex, const std::string& host, uint16_t port) {
  std::error_code ec;
  asio::ip::tcp::resolver resolver(ex);
  auto endpoints = resolver.resolve(host.empty() ? "0.0.0.0" : host, std::to_string(port), ec);
  if (ec || endpoints.empty()) return error{"cannot resolve listener host '" + host + "': " + ec.message()};
  auto ep = endpoints.begin()->endpoint();
  asio::ip::tcp::acceptor a(ex);
  a.open(ep.protocol(), ec);
  if (ec) return error{"cannot open socket: " + ec.message()};
  a.set_option(asio::socket_base::reuse_address(true), ec);
  a.bind(ep, ec);
  if (ec) return error{"cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message()};
  a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return error{"cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message()};
  return std::unique_ptr<listener>(new listener(std::move(a)));
}

task<result<std::shared_ptr<connection>>> listener::accept(size_t target_shard) {
  std::error_code ec;
  auto s = co_await acceptor_.async_accept(engine::current().context(target_shard),
                                           asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return error{ec.message()};
  co_return std::make_shared<connection>(std::move(s));
}

uint16_t listener::port() const {
  std::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void listener::close() {
  std::error_code ec;
  acceptor_.close(ec);
}

}  // namespace gregor::runtime
