#include "protocol/header.h"

#include "protocol/apis.h"

namespace gregor::protocol {

namespace {
// Skips a tagged-field section: no header tags are defined that we act on.
bool skip_tagged_fields(wire_reader& r) {
  const uint32_t n = r.read_uvarint();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    uint32_t tag;
    bytes_view value;
    if (!read_tagged_field(r, tag, value)) return false;
  }
  return r.ok();
}

bool decode_rest(wire_reader& r, request_header& h, int16_t header_version) {
  h.correlation_id = r.read_int32();
  h.client_id.reset();
  if (header_version >= 1) h.client_id = r.read_nullable_string(/*compact=*/false);
  if (header_version >= 2 && !skip_tagged_fields(r)) return false;
  return r.ok();
}
}  // namespace

bool request_header::decode(wire_reader& r, int16_t header_version) {
  request_api_key = r.read_int16();
  request_api_version = r.read_int16();
  return decode_rest(r, *this, header_version);
}

void request_header::encode(wire_writer& w, int16_t header_version) const {
  w.write_int16(request_api_key);
  w.write_int16(request_api_version);
  w.write_int32(correlation_id);
  if (header_version >= 1) w.write_nullable_string(client_id, /*compact=*/false, /*nullable=*/true);
  if (header_version >= 2) w.write_uvarint(0);
}

size_t request_header::size(int16_t header_version) const {
  size_t n = 8;
  if (header_version >= 1) n += size_of_nullable_string(client_id, false, true);
  if (header_version >= 2) n += 1;
  return n;
}

bool read_request_header(wire_reader& r, request_header& out) {
  out.request_api_key = r.read_int16();
  out.request_api_version = r.read_int16();
  if (!r.ok()) return false;
  return decode_rest(r, out, request_header_version(out.request_api_key, out.request_api_version));
}

bool response_header::decode(wire_reader& r, int16_t header_version) {
  correlation_id = r.read_int32();
  if (header_version >= 1 && !skip_tagged_fields(r)) return false;
  return r.ok();
}

void response_header::encode(wire_writer& w, int16_t header_version) const {
  w.write_int32(correlation_id);
  if (header_version >= 1) w.write_uvarint(0);
}

size_t response_header::size(int16_t header_version) const { return header_version >= 1 ? 5 : 4; }

}  // namespace gregor::protocol
