#include "protocol/rpc_client.h"

#include "base/log.h"
#include "runtime/backend.h"

namespace gregor::protocol {

namespace {
// No response we ask for comes near this (a metadata snapshot chunk is 1 MiB).
constexpr int32_t kMaxResponseBytes = 128 << 20;
}  // namespace

struct rpc_client::state {
  struct waiter {
    int16_t api_key = 0;
    int16_t version = 0;
    runtime::notifier wake;
    std::optional<result<bytes>> out;
  };

  std::shared_ptr<runtime::connection> conn;
  bool connecting = false;
  runtime::notifier connect_done;
  int32_t next_correlation_id = 1;
  std::map<int32_t, std::shared_ptr<waiter>> pending;
  bool closed = false;

  // Fails every call waiting on `c` (if it is still the connection) and drops it.
  void lose(const std::shared_ptr<runtime::connection>& c, const std::string& why) {
    if (c && conn != c) return;
    if (conn) conn->close();
    conn.reset();
    auto waiting = std::move(pending);
    pending.clear();
    for (auto& [_, w] : waiting) {
      w->out = result<bytes>(error{why});
      w->wake.notify_all();
    }
  }
};

rpc_client::rpc_client(std::string host, uint16_t port, std::string client_id)
    : host_(std::move(host)), port_(port), client_id_(std::move(client_id)), st_(std::make_shared<state>()) {}

rpc_client::~rpc_client() {
  st_->closed = true;
  st_->lose(nullptr, "client closed");
}

void rpc_client::close() { st_->lose(nullptr, "connection to " + where() + " closed"); }

std::string rpc_client::api_label(int16_t api_key) {
  auto* api = find_api(api_key);
  return api ? api->name : "api " + std::to_string(api_key);
}

namespace {
// Reads response frames from one connection and hands each to its caller.
runtime::task<void> read_responses(std::shared_ptr<rpc_client::state> st, std::shared_ptr<runtime::connection> c,
                                   std::string where) {
  for (;;) {
    uint8_t size_buf[4];
    if (auto r = co_await c->read_exact(size_buf, 4); !r) {
      st->lose(c, "connection to " + where + " lost: " + r.err().message);
      co_return;
    }
    int32_t size = load_be<int32_t>(size_buf);
    if (size < 4 || size > kMaxResponseBytes) {
      log::get("network")->warn("closing the connection to {}: response frame of {} bytes", where, size);
      st->lose(c, "malformed response frame from " + where);
      co_return;
    }
    bytes frame(static_cast<size_t>(size));
    if (auto r = co_await c->read_exact(frame.data(), frame.size()); !r) {
      st->lose(c, "connection to " + where + " lost: " + r.err().message);
      co_return;
    }
    int32_t correlation_id = load_be<int32_t>(frame.data());
    auto it = st->pending.find(correlation_id);
    if (it == st->pending.end()) continue;  // its caller gave up, or a duplicate
    auto w = it->second;
    st->pending.erase(it);
    wire_reader r(frame);
    response_header h;
    if (!h.decode(r, response_header_version(w->api_key, w->version)) || !r.ok()) {
      w->out = result<bytes>(error{"malformed response header from " + where});
    } else {
      w->out = result<bytes>(bytes(r.position(), r.position() + r.remaining()));
    }
    w->wake.notify_all();
  }
}
}  // namespace

runtime::task<result<bytes>> rpc_client::call_raw(int16_t api_key, int16_t version, iobuf body, int64_t timeout_ms) {
  auto st = st_;
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  while (!st->conn) {
    if (st->closed) co_return error{"client closed"};
    if (st->connecting) {
      co_await st->connect_done.wait_for(deadline - runtime::monotonic_ms());
      if (runtime::monotonic_ms() >= deadline && !st->conn) co_return error{"timed out connecting to " + where()};
      continue;
    }
    st->connecting = true;
    auto c = co_await runtime::connect(host_, port_, std::max<int64_t>(deadline - runtime::monotonic_ms(), 1));
    st->connecting = false;
    st->connect_done.notify_all();
    if (!c) co_return c.err();
    if (st->closed) {
      c.value()->close();
      co_return error{"client closed"};
    }
    st->conn = c.value();
    runtime::spawn(runtime::this_shard(), [st, conn = st->conn, w = where()] { return read_responses(st, conn, w); });
  }

  auto conn = st->conn;
  const int32_t correlation_id = st->next_correlation_id++;
  if (st->next_correlation_id == INT32_MAX) st->next_correlation_id = 1;
  auto w = std::make_shared<state::waiter>();
  w->api_key = api_key;
  w->version = version;
  st->pending[correlation_id] = w;

  iobuf frame;
  {
    request_header h;
    h.request_api_key = api_key;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = client_id_;
    const int16_t hv = request_header_version(api_key, version);
    wire_writer hw(frame);
    hw.write_int32(static_cast<int32_t>(h.size(hv) + body.size()));
    h.encode(hw, hv);
  }
  frame.append(std::move(body));
  if (auto r = co_await conn->write(frame); !r) {
    st->lose(conn, "cannot send to " + where() + ": " + r.err().message);
    co_return error{"cannot send to " + where() + ": " + r.err().message};
  }
  if (!w->out) co_await w->wake.wait_for(deadline - runtime::monotonic_ms());
  if (!w->out) {
    // Like Kafka's clients: a request that timed out takes its connection
    // with it (the peer may be gone or cut off).
    st->pending.erase(correlation_id);
    st->lose(conn, "timed out");
    co_return error{api_label(api_key) + " to " + where() + " timed out after " + std::to_string(timeout_ms) + " ms"};
  }
  co_return std::move(*w->out);
}

}  // namespace gregor::protocol
