#pragma once
// One connection from the client to one broker: ApiVersions on connect, then
// typed requests. Requests may be pipelined (send several, then receive their
// responses in order); the caller serialises use of a connection.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/iobuf.h"
#include "base/result.h"
#include "runtime/blocking.h"
#include "protocol/messages.h"

namespace gregor::client {

// The client runs on the application's threads: its clocks, sleeps, sockets and
// threads come from runtime's blocking backend.
namespace sys = runtime::blocking;

// The response type of a request type.
template <class Req>
struct response_for;
#define GREGOR_CLIENT_X(name, key) \
  template <>                      \
  struct response_for<protocol::name##_request> {  \
    using type = protocol::name##_response;        \
  };
GREGOR_PROTOCOL_APIS(GREGOR_CLIENT_X)
#undef GREGOR_CLIENT_X

// The highest version of each API the client asks for: the generated maximum,
// except where a newer version changes the request's shape in a way the
// client does not fill in (batched OffsetFetch / FindCoordinator).
int16_t client_max_version(int16_t api_key, int16_t generated_max);

// A failed call: a transport failure (the connection is then closed) or a
// version that the broker does not support.
struct call_error {
  std::string message;
};

class connection {
 public:
  // Connects and negotiates versions. `timeout_ms` bounds both.
  static result<std::unique_ptr<connection>> open(const std::string& host, int port, const std::string& client_id,
                                                  int64_t timeout_ms);

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  bool is_open() const { return socket_ && socket_->is_open(); }

  // The version to use for an API: min(broker max, our max), or -1 when the
  // broker does not support any version we speak.
  int16_t version_for(int16_t api_key, int16_t our_min, int16_t our_max) const;
  template <class Req>
  int16_t version_for() const {
    return version_for(Req::api_key, Req::min_version, client_max_version(Req::api_key, Req::max_version));
  }

  // Sends a request at `version`; returns its correlation id.
  template <class Req>
  result<int32_t> send(const Req& req, int16_t version, int64_t timeout_ms) {
    iobuf body;
    wire_writer_frame(req, version, body);
    return send_frame(body, timeout_ms);
  }

  // Receives the response to `correlation_id`, which must be the oldest
  // outstanding request.
  // Records fields of the response borrow the frame: pass `keep_frame` to
  // own it for as long as they are used.
  template <class Resp>
  result<Resp> receive(int32_t correlation_id, int16_t version, int64_t timeout_ms, bytes* keep_frame = nullptr) {
    auto frame = receive_frame(correlation_id, Resp::api_key, version, timeout_ms);
    if (!frame) return frame.err();
    protocol::wire_reader r(bytes_view(frame.value()).subspan(frame_body_offset_));
    Resp resp;
    if (!resp.decode(r, version) || !r.ok()) {
      socket_->close();
      return error{fmt::format("cannot decode {} response v{} from {}:{}", protocol::find_api(Resp::api_key)->name,
                               version, host_, port_)};
    }
    if (keep_frame) *keep_frame = std::move(frame.value());  // moving keeps the buffer where the views point
    return resp;
  }

  // send + receive at the negotiated version.
  template <class Req>
  result<typename response_for<Req>::type> call(const Req& req, int64_t timeout_ms, bytes* keep_frame = nullptr) {
    int16_t v = version_for<Req>();
    if (v < 0) return unsupported(Req::api_key);
    return call(req, v, timeout_ms, keep_frame);
  }
  template <class Req>
  result<typename response_for<Req>::type> call(const Req& req, int16_t version, int64_t timeout_ms,
                                                bytes* keep_frame = nullptr) {
    auto corr = send(req, version, timeout_ms);
    if (!corr) return corr.err();
    return receive<typename response_for<Req>::type>(corr.value(), version, timeout_ms, keep_frame);
  }

  error unsupported(int16_t api_key) const;

 private:
  connection() = default;
  template <class Req>
  void wire_writer_frame(const Req& req, int16_t version, iobuf& out) {
    const int16_t hv = protocol::request_header_version(Req::api_key, version);
    protocol::request_header h;
    h.request_api_key = Req::api_key;
    h.request_api_version = version;
    h.correlation_id = next_correlation_id_;
    h.client_id = client_id_;
    protocol::wire_writer w(out);
    w.write_int32(static_cast<int32_t>(h.size(hv) + req.size(version)));
    h.encode(w, hv);
    req.encode(w, version);
  }
  result<int32_t> send_frame(const iobuf& frame, int64_t timeout_ms);
  result<bytes> receive_frame(int32_t correlation_id, int16_t api_key, int16_t version, int64_t timeout_ms);

  std::unique_ptr<sys::tcp_socket> socket_;
  std::string host_;
  int port_ = 0;
  std::string client_id_;
  int32_t next_correlation_id_ = 1;
  size_t frame_body_offset_ = 0;
  std::map<int16_t, std::pair<int16_t, int16_t>> broker_versions_;
};

}  // namespace gregor::client
