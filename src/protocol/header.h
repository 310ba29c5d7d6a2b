#pragma once
// Request and response headers. Written by hand rather than generated because of
// two Kafka quirks: the request header's client_id is a classic (int16-length)
// string even in header v2, and the ApiVersions response header is always v0
// (see response_header_version in protocol/apis.h).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "protocol/apis.h"
#include "protocol/wire.h"

namespace gregor::protocol {

// Header versions: v0 has no client_id (only ControlledShutdown v0 used it), v1
// adds client_id, v2 adds a tagged-field section (used by flexible API versions).
struct request_header {
  int16_t request_api_key = 0;
  int16_t request_api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string> client_id;

  bool decode(wire_reader& r, int16_t header_version);
  void encode(wire_writer& w, int16_t header_version) const;
  size_t size(int16_t header_version) const;
  bool operator==(const request_header&) const = default;
};

// Decodes the header at the start of a request (the bytes after the 4-byte frame
// length), picking the header version from the api key and version it starts with.
// Afterwards `r` is positioned at the request body. False on malformed input.
bool read_request_header(wire_reader& r, request_header& out);

// v0 is just the correlation id; v1 adds an (empty) tagged-field section.
struct response_header {
  int32_t correlation_id = 0;

  bool decode(wire_reader& r, int16_t header_version);
  void encode(wire_writer& w, int16_t header_version) const;
  size_t size(int16_t header_version) const;
  bool operator==(const response_header&) const = default;
};

// Appends a whole response frame to `out`: the int32 frame length, the response
// header in the version this API and version use (v0 for ApiVersions, always),
// and the body. T is a generated *_response type.
template <class T>
void write_response_frame(iobuf& out, int32_t correlation_id, int16_t version, const T& body) {
  const int16_t header_version = response_header_version(T::api_key, version);
  const response_header header{correlation_id};
  wire_writer w(out);
  w.write_int32(static_cast<int32_t>(header.size(header_version) + body.size(version)));
  header.encode(w, header_version);
  body.encode(w, version);
}

}  // namespace gregor::protocol
