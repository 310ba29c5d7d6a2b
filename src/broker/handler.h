#pragma once
// The handler table: for each API we serve, its key, the versions we
// advertise and a function that decodes, handles and encodes. ApiVersions is
// answered from this table, so what we advertise is what we serve.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/iobuf.h"
#include "protocol/messages.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker;

struct request_context {
  broker& b;
  protocol::request_header header;
  const std::string& peer;
  int16_t version() const { return header.request_api_version; }
};

// What became of a request.
struct handler_outcome {
  enum class kind { respond, no_response, malformed } what = kind::respond;
  iobuf response;  // size prefix, header and body, ready to send
};

struct api_handler {
  int16_t api_key;
  const char* name;
  int16_t min_version;  // advertised range
  int16_t max_version;
  runtime::task<handler_outcome> (*invoke)(request_context& ctx, protocol::wire_reader& body);
};

const std::vector<api_handler>& api_handlers();
const api_handler* find_handler(int16_t api_key);

// Encodes a complete response frame: size, response header, body.
template <class Response>
iobuf encode_response(const Response& resp, int16_t api_key, int16_t version, int32_t correlation_id) {
  iobuf out;
  out.tail().resize(4);
  protocol::wire_writer w(out);
  protocol::response_header h;
  h.correlation_id = correlation_id;
  h.encode(w, protocol::response_header_version(api_key, version));
  resp.encode(w, version);
  store_be<int32_t>(std::get<bytes>(out.chunks().front()).data(), static_cast<int32_t>(out.size() - 4));
  return out;
}

// Adapts a typed handler `task<std::optional<Resp>> fn(request_context&, Req&)`
// (nullopt = send no response, as for acks=0 produce) to the table's form.
template <class Req, class Resp, runtime::task<std::optional<Resp>> (*Fn)(request_context&, Req&)>
runtime::task<handler_outcome> invoke_typed(request_context& ctx, protocol::wire_reader& body) {
  Req req;
  if (!req.decode(body, ctx.version()) || !body.ok()) co_return handler_outcome{handler_outcome::kind::malformed, {}};
  auto resp = co_await Fn(ctx, req);
  if (!resp) co_return handler_outcome{handler_outcome::kind::no_response, {}};
  co_return handler_outcome{handler_outcome::kind::respond,
                            encode_response(*resp, Req::api_key, ctx.version(), ctx.header.correlation_id)};
}

// The handlers, one file each under handlers/.
runtime::task<std::optional<protocol::api_versions_response>> handle_api_versions(request_context&,
                                                                                  protocol::api_versions_request&);
runtime::task<std::optional<protocol::metadata_response>> handle_metadata(request_context&, protocol::metadata_request&);
runtime::task<std::optional<protocol::produce_response>> handle_produce(request_context&, protocol::produce_request&);
runtime::task<std::optional<protocol::fetch_response>> handle_fetch(request_context&, protocol::fetch_request&);
runtime::task<std::optional<protocol::list_offsets_response>> handle_list_offsets(request_context&,
                                                                                  protocol::list_offsets_request&);
runtime::task<std::optional<protocol::create_topics_response>> handle_create_topics(request_context&,
                                                                                    protocol::create_topics_request&);
runtime::task<std::optional<protocol::delete_topics_response>> handle_delete_topics(request_context&,
                                                                                    protocol::delete_topics_request&);

// The ApiVersions answer to a version we do not know: v0 body, error 35 and
// our ApiVersions range, so the client can retry with a version we serve (KIP-511).
iobuf unsupported_api_versions_response(int32_t correlation_id);

}  // namespace gregor::broker
