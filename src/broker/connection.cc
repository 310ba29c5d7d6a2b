#include "broker/connection.h"

#include <deque>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/handler.h"
#include "runtime/clock.h"

namespace gregor::broker {
namespace {

// Produce requests that follow each other on a connection are handled
// concurrently (up to this many), so that the hops to the shards owning their
// partitions overlap instead of queueing behind each other. Each request's
// work reaches a shard in request order, so appends to a partition keep the
// order of the requests. Any other request waits for everything before it and
// holds back everything after it, as if the connection were sequential.
constexpr size_t kMaxPipelined = 32;

struct in_flight {
  handler_outcome outcome;
  bool done = false;
};

struct connection_state {
  connection_state(broker& b, std::shared_ptr<runtime::connection> c, uint8_t kind, std::string listener)
      : b(b), conn(std::move(c)), kind(kind), listener(std::move(listener)) {}
  broker& b;
  std::shared_ptr<runtime::connection> conn;
  uint8_t kind;
  std::string listener;
  std::deque<std::shared_ptr<in_flight>> queue;  // in request order
  runtime::event progress;                       // a request finished, or the reader stopped
  runtime::event space;                          // the writer took a response off the queue
  bool reader_done = false;
  bool closing = false;
};

// A request frame: read into memory that is not zeroed first (frames reach
// 100 MB, and every byte is overwritten by the read).
struct frame_buffer {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
  explicit frame_buffer(size_t n) : data(new uint8_t[n]), size(n) {}
};

runtime::task<void> handle_request(std::shared_ptr<connection_state> st, std::shared_ptr<in_flight> slot,
                                   frame_buffer frame, const api_handler* h) {
  auto lg = log::get("network");
  const std::string& peer = st->conn->peer();
  int16_t api_key = load_be<int16_t>(frame.data.get());
  int16_t version = load_be<int16_t>(frame.data.get() + 2);
  try {
    protocol::wire_reader reader{bytes_view(frame.data.get(), frame.size)};
    request_context ctx{st->b, {}, peer};
    ctx.listener = st->listener;
    ctx.listener_kind_mask = st->kind;
    if (!ctx.header.decode(reader, protocol::request_header_version(api_key, version)) || !reader.ok()) {
      lg->warn("closing connection from {}: malformed {} v{} request header", peer, h->name, version);
      slot->outcome.what = handler_outcome::kind::malformed;
    } else {
      std::optional<iobuf> forwarded;
      // A request for the controller, on a broker that is not the active
      // controller: the controller answers it (inside an Envelope).
      if (h->forwardable && st->kind == on_broker && !st->b.is_active_controller())
        forwarded = co_await forward_to_controller(st->b, bytes_view(frame.data.get(), frame.size), peer, 30000);
      if (forwarded) slot->outcome = handler_outcome{handler_outcome::kind::respond, std::move(*forwarded)};
      else slot->outcome = co_await h->invoke(ctx, reader);
      if (slot->outcome.what == handler_outcome::kind::malformed)
        lg->warn("closing connection from {}: malformed {} v{} request (correlation id {})", peer, h->name, version,
                 ctx.header.correlation_id);
    }
  } catch (const std::exception& e) {
    // A handler that throws has a bug; this connection goes, the broker stays.
    lg->critical("{} v{} from {} failed with an exception (a bug): {}", h->name, version, peer, e.what());
    slot->outcome.what = handler_outcome::kind::malformed;
  }
  slot->done = true;
  st->progress.set();
}

runtime::task<void> write_responses(std::shared_ptr<connection_state> st) {
  for (;;) {
    while (!st->queue.empty() && st->queue.front()->done) {
      auto slot = std::move(st->queue.front());
      st->queue.pop_front();
      st->space.set();
      if (slot->outcome.what == handler_outcome::kind::malformed) {
        st->closing = true;
        st->conn->close();
        st->queue.clear();
        co_return;
      }
      if (slot->outcome.what == handler_outcome::kind::no_response) continue;
      if (auto w = co_await st->conn->write(slot->outcome.response); !w) {
        log::get("network")->debug("write to {} failed: {}", st->conn->peer(), w.err().message);
        st->closing = true;
        st->conn->close();
        st->queue.clear();
        st->space.set();
        co_return;
      }
    }
    if (st->queue.empty() && st->reader_done) {
      st->conn->close();
      co_return;
    }
    st->progress.reset();
    co_await st->progress.wait();
  }
}

// Waits until at most `max_queued` requests are waiting for their response.
runtime::task<void> wait_for_queue(connection_state& st, size_t max_queued) {
  while (st.queue.size() > max_queued && !st.closing) {
    st.space.reset();
    co_await st.space.wait();
  }
}

}  // namespace

runtime::task<void> serve_connection(broker& b, std::shared_ptr<runtime::connection> conn, listener_kind kind,
                                     std::string listener) {
  auto lg = log::get("network");
  auto st = std::make_shared<connection_state>(b, conn, static_cast<uint8_t>(kind), std::move(listener));
  const std::string peer = conn->peer();
  lg->debug("connection from {}", peer);
  const size_t shard = runtime::this_shard();
  runtime::spawn(shard, [st] { return write_responses(st); });

  uint8_t size_buf[4];
  while (!st->closing) {
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
    frame_buffer frame(static_cast<size_t>(size));
    if (!(co_await conn->read_exact(frame.data.get(), frame.size))) {
      if (!st->closing) lg->warn("closing connection from {}: it closed in the middle of a {}-byte request", peer, size);
      break;
    }
    int16_t api_key = load_be<int16_t>(frame.data.get());
    int16_t version = load_be<int16_t>(frame.data.get() + 2);
    int32_t correlation_id = load_be<int32_t>(frame.data.get() + 4);

    auto* h = find_handler(api_key, st->kind);
    if (!h) {
      if (find_handler(api_key))
        lg->warn("closing connection from {}: API key {} is not served on the {} listener {}", peer, api_key,
                 st->kind == on_controller ? "controller" : "client", st->listener);
      else
        lg->warn("closing connection from {}: unknown API key {}", peer, api_key);
      break;
    }
    auto slot = std::make_shared<in_flight>();
    if (version < h->min_version || version > h->max_version) {
      if (api_key != protocol::api_versions_request::api_key) {
        lg->warn("closing connection from {}: {} version {} is not supported (we serve {}-{})", peer, h->name,
                 version, h->min_version, h->max_version);
        break;
      }
      co_await wait_for_queue(*st, kMaxPipelined);
      slot->outcome.response = unsupported_api_versions_response(correlation_id);
      slot->done = true;
      st->queue.push_back(slot);
      st->progress.set();
      continue;
    }

    if (api_key == protocol::produce_request::api_key) {
      co_await wait_for_queue(*st, kMaxPipelined - 1);
      if (st->closing) break;
      st->queue.push_back(slot);
      runtime::spawn(shard, [st, slot, frame = std::move(frame), h]() mutable {
        return handle_request(st, slot, std::move(frame), h);
      });
    } else {
      co_await wait_for_queue(*st, 0);  // everything before it has been answered
      if (st->closing) break;
      st->queue.push_back(slot);
      co_await handle_request(st, slot, std::move(frame), h);
    }
  }
  st->reader_done = true;
  st->progress.set();
  lg->debug("connection from {} closed", peer);
}

}  // namespace gregor::broker
