#pragma once
// Kafka RPCs from this node to another one (a quorum voter, the active
// controller): one connection to one host:port, made on first use and made
// again after a failure. Each request gets a correlation id and its response
// is matched by it, so a response that never comes (lost, or the peer died)
// fails its own call at its timeout and nothing else. Responses may arrive
// in any order, and an unexpected one is ignored.
//
// Used from one shard (the connection belongs to it). Runs on any backend,
// so the same code talks TCP in production and the simulated network in tests.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/iobuf.h"
#include "base/result.h"
#include "protocol/header.h"
#include "runtime/clock.h"
#include "runtime/net.h"
#include "runtime/task.h"

namespace gregor::protocol {

class rpc_client {
 public:
  rpc_client(std::string host, uint16_t port, std::string client_id);
  ~rpc_client();
  rpc_client(const rpc_client&) = delete;
  rpc_client& operator=(const rpc_client&) = delete;

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

  // Sends `request` in `version` and returns the decoded response, or an
  // error (cannot connect, connection lost, timed out, malformed response).
  template <class Resp, class Req>
  runtime::task<result<Resp>> call(const Req& request, int16_t version, int64_t timeout_ms) {
    iobuf body;
    wire_writer w(body);
    request.encode(w, version);
    auto raw = co_await call_raw(Req::api_key, version, std::move(body), timeout_ms);
    if (!raw) co_return raw.err();
    Resp resp;
    wire_reader r(raw.value());
    if (!resp.decode(r, version) || !r.ok())
      co_return error{"malformed " + api_label(Req::api_key) + " response from " + where()};
    co_return resp;
  }

  // The same with an encoded body; returns the response body (after its header).
  runtime::task<result<bytes>> call_raw(int16_t api_key, int16_t version, iobuf body, int64_t timeout_ms);

  // Drops the connection; calls in flight fail.
  void close();

  struct state;  // shared with the connection's reader

 private:
  std::string where() const { return host_ + ":" + std::to_string(port_); }
  static std::string api_label(int16_t api_key);

  std::string host_;
  uint16_t port_;
  std::string client_id_;
  std::shared_ptr<state> st_;
};

}  // namespace gregor::protocol
