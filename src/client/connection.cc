#include "client/connection.h"

#include <fmt/format.h>

namespace gregor::client {

int16_t client_max_version(int16_t api_key, int16_t generated_max) {
  switch (api_key) {
    case protocol::offset_fetch_request::api_key: return std::min<int16_t>(generated_max, 7);
    case protocol::find_coordinator_request::api_key: return std::min<int16_t>(generated_max, 3);
    // v4+ is the brokers' batched and verify-only form (KIP-890); clients send v3.
    case protocol::add_partitions_to_txn_request::api_key: return std::min<int16_t>(generated_max, 3);
    default: return generated_max;
  }
}

error connection::unsupported(int16_t api_key) const {
  auto* info = protocol::find_api(api_key);
  return error{fmt::format("broker {}:{} does not support {} (api key {}; it lists {} apis)", host_, port_,
                           info ? info->name : "unknown api", api_key, broker_versions_.size())};
}

int16_t connection::version_for(int16_t api_key, int16_t our_min, int16_t our_max) const {
  auto it = broker_versions_.find(api_key);
  if (it == broker_versions_.end()) return -1;
  int16_t v = std::min(our_max, it->second.second);
  if (v < std::max(our_min, it->second.first)) return -1;
  return v;
}

result<std::unique_ptr<connection>> connection::open(const std::string& host, int port, const std::string& client_id,
                                                     int64_t timeout_ms) {
  auto sock = sys::tcp_socket::connect(host, port, timeout_ms);
  if (!sock) return sock.err();
  std::unique_ptr<connection> c(new connection());
  c->socket_ = std::move(sock.value());
  c->host_ = host;
  c->port_ = port;
  c->client_id_ = client_id;
  protocol::api_versions_request req;
  req.client_software_name = "gregor-cpp";
  req.client_software_version = "0.1";
  // v3 first. A broker that does not speak it answers UNSUPPORTED_VERSION
  // (in the v0 body format, by the spec; some brokers answer in v3's): then
  // reconnect and ask with v0, which every broker speaks.
  result<protocol::api_versions_response> resp = error{"undecodable ApiVersions response"};
  for (int16_t asked : {int16_t{3}, int16_t{0}}) {
    if (asked == 0) {
      auto again = sys::tcp_socket::connect(host, port, timeout_ms);
      if (!again) return again.err();
      c->socket_ = std::move(again.value());
    }
    auto corr = c->send(req, asked, timeout_ms);
    if (!corr) return error{fmt::format("{}:{}: {}", host, port, corr.err().message)};
    auto frame = c->receive_frame(corr.value(), protocol::api_versions_request::api_key, asked, timeout_ms);
    if (!frame) return error{fmt::format("{}:{}: {}", host, port, frame.err().message)};
    bool unsupported = false;
    for (int16_t v : {asked, int16_t{0}}) {
      protocol::wire_reader r(bytes_view(frame.value()).subspan(c->frame_body_offset_));
      protocol::api_versions_response decoded;
      if (!decoded.decode(r, v) || !r.ok()) continue;
      if (decoded.error_code == protocol::code(protocol::error_code::unsupported_version)) {
        unsupported = true;
        break;
      }
      resp = std::move(decoded);
      break;
    }
    if (resp || !unsupported) break;
  }
  if (!resp) return error{fmt::format("{}:{}: {}", host, port, resp.err().message)};
  if (resp->error_code != 0 && resp->error_code != protocol::code(protocol::error_code::unsupported_version))
    return error{fmt::format("{}:{}: ApiVersions failed: {}", host, port, protocol::error_name(resp->error_code))};
  for (auto& k : resp->api_keys) c->broker_versions_[k.api_key] = {k.min_version, k.max_version};
  return c;
}

result<int32_t> connection::send_frame(const iobuf& frame, int64_t timeout_ms) {
  if (!is_open()) return error{fmt::format("connection to {}:{} is closed", host_, port_)};
  const int64_t deadline = sys::monotonic_ms() + timeout_ms;
  for (auto& chunk : frame.chunks()) {
    auto* b = std::get_if<bytes>(&chunk);
    GREGOR_ASSERT(b, "client frames hold no file regions");
    auto w = socket_->write_all(*b, deadline);
    if (!w) return error{fmt::format("send to {}:{} failed: {}", host_, port_, w.err().message)};
  }
  return next_correlation_id_++;
}

result<bytes> connection::receive_frame(int32_t correlation_id, int16_t api_key, int16_t version,
                                        int64_t timeout_ms) {
  if (!is_open()) return error{fmt::format("connection to {}:{} is closed", host_, port_)};
  const int64_t deadline = sys::monotonic_ms() + timeout_ms;
  uint8_t len_buf[4];
  auto r = socket_->read_exact(len_buf, 4, deadline);
  if (!r) return error{fmt::format("receive from {}:{} failed: {}", host_, port_, r.err().message)};
  int32_t len = load_be<int32_t>(len_buf);
  if (len < 4 || len > (512 << 20)) {
    socket_->close();
    return error{fmt::format("bad response frame length {} from {}:{}", len, host_, port_)};
  }
  bytes frame(static_cast<size_t>(len));
  r = socket_->read_exact(frame.data(), frame.size(), deadline);
  if (!r) return error{fmt::format("receive from {}:{} failed: {}", host_, port_, r.err().message)};
  protocol::wire_reader hr(frame);
  protocol::response_header h;
  const int16_t hv = protocol::response_header_version(api_key, version);
  if (!h.decode(hr, hv) || h.correlation_id != correlation_id) {
    socket_->close();
    return error{fmt::format("response from {}:{} out of order (correlation id {}, expected {})", host_, port_,
                             h.correlation_id, correlation_id)};
  }
  frame_body_offset_ = frame.size() - hr.remaining();
  return frame;
}

}  // namespace gregor::client
