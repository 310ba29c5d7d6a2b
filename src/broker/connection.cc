#include "broker/connection.h"

#include "base/log.h"
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

runtime::task<void> serve_connection(broker& b, std::shared_ptr<runtime::connection> conn) {
  auto lg = log::get("network");
  lg->debug("connection from {}", conn->peer());
  const std::string& peer = conn->peer();
  bytes frame;
  uint8_t size_buf[4];
  for (;;) {
    if (!(co_await conn->read_exact(size_buf, 4))) break;  // the client went away
    int32_t size = load_be<int32_t>(size_buf);
    if (size < 0 || size > b.config().socket_request_max_bytes) {
      lg->warn("closing connection from {}: request size {} is {} (socket.request.max.bytes={})", peer, size,
               size < 0 ? "negative" : "too large", b.config().socket_request_max_bytes);
      break;
    }
    // The fixed part of every request header: api key, version, correlation id.
    if (size < 8) {
      lg->warn("closing connection from {}: request of {} bytes is too short for a request header", peer, size);
      break;
    }
    frame.resize(static_cast<size_t>(size));
    if (!(co_await conn->read_exact(frame.data(), frame.size()))) {
      lg->warn("closing connection from {}: it closed in the middle of a {}-byte request", peer, size);
      break;
    }
    int16_t api_key = load_be<int16_t>(frame.data());
    int16_t version = load_be<int16_t>(frame.data() + 2);
    int32_t correlation_id = load_be<int32_t>(frame.data() + 4);

    auto* h = find_handler(api_key);
    if (!h) {
      lg->warn("closing connection from {}: unknown API key {}", peer, api_key);
      break;
    }
    if (version < h->min_version || version > h->max_version) {
      if (api_key == protocol::api_versions_request::api_key) {
        auto resp = unsupported_api_versions_response(correlation_id);
        if (!(co_await conn->write(resp))) break;
        continue;
      }
      lg->warn("closing connection from {}: {} version {} is not supported (we serve {}-{})", peer, h->name, version,
               h->min_version, h->max_version);
      break;
    }

    protocol::wire_reader reader{bytes_view(frame)};
    request_context ctx{b, {}, peer};
    if (!ctx.header.decode(reader, protocol::request_header_version(api_key, version)) || !reader.ok()) {
      lg->warn("closing connection from {}: malformed {} v{} request header", peer, h->name, version);
      break;
    }
    auto outcome = co_await h->invoke(ctx, reader);
    if (outcome.what == handler_outcome::kind::malformed) {
      lg->warn("closing connection from {}: malformed {} v{} request (correlation id {})", peer, h->name, version,
               correlation_id);
      break;
    }
    if (outcome.what == handler_outcome::kind::no_response) continue;
    if (auto w = co_await conn->write(outcome.response); !w) {
      lg->debug("write to {} failed: {}", peer, w.err().message);
      break;
    }
  }
  conn->close();
  lg->debug("connection from {} closed", peer);
}

}  // namespace gregor::broker
