#include "protocol/wire.h"

#include <bit>
#include <cstring>
#include <limits>

#include "base/assert.h"

namespace gregor::protocol {

// ---- uuid ----------------------------------------------------------------------

namespace {
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}
}  // namespace

bool uuid::is_zero() const {
  for (uint8_t b : data)
    if (b != 0) return false;
  return true;
}

std::string uuid::to_string() const {
  // 16 bytes = 5 groups of 3 bytes (20 characters) + 1 byte (2 characters).
  std::string out;
  out.reserve(22);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kBase64Url[(v >> 18) & 63]);
    out.push_back(kBase64Url[(v >> 12) & 63]);
    out.push_back(kBase64Url[(v >> 6) & 63]);
    out.push_back(kBase64Url[v & 63]);
  }
  uint32_t v = uint32_t{data[i]} << 16;
  out.push_back(kBase64Url[(v >> 18) & 63]);
  out.push_back(kBase64Url[(v >> 12) & 63]);
  return out;
}

std::optional<uuid> uuid::from_string(std::string_view s) {
  if (s.size() != 22) return std::nullopt;
  uuid u;
  uint32_t acc = 0;
  int bits = 0;
  size_t out = 0;
  for (char c : s) {
    int v = base64url_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out < u.data.size()) u.data[out++] = static_cast<uint8_t>(acc >> bits);
    }
  }
  // The last character carries 4 padding bits, which must be zero (canonical form).
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return u;
}

// ---- records -------------------------------------------------------------------

size_t records::size() const {
  switch (kind_) {
    case kind::null: return 0;
    case kind::borrowed: return view_.size();
    case kind::owned: return owned_.size();
  }
  return 0;
}

bool records::is_contiguous() const {
  if (kind_ != kind::owned) return true;
  size_t nonempty = 0;
  for (auto& c : owned_.chunks()) {
    if (std::holds_alternative<file_region>(c)) return false;
    if (!std::get<bytes>(c).empty()) ++nonempty;
  }
  return nonempty <= 1;
}

bytes_view records::view() const {
  switch (kind_) {
    case kind::null: return {};
    case kind::borrowed: return view_;
    case kind::owned: break;
  }
  GREGOR_ASSERT(is_contiguous(), "records::view() on {} bytes held in several chunks", owned_.size());
  for (auto& c : owned_.chunks()) {
    auto& b = std::get<bytes>(c);
    if (!b.empty()) return bytes_view(b);
  }
  return {};
}

void records::set(iobuf data) {
  kind_ = kind::owned;
  view_ = {};
  owned_ = std::move(data);
}

void records::set_bytes(bytes b) {
  iobuf buf;
  if (!b.empty()) buf.chunks().emplace_back(std::move(b));
  set(std::move(buf));
}

void records::set_view(bytes_view v) {
  kind_ = kind::borrowed;
  view_ = v;
  owned_ = iobuf{};
}

void records::set_null() {
  kind_ = kind::null;
  view_ = {};
  owned_ = iobuf{};
}

bool records::operator==(const records& other) const {
  if (is_null() || other.is_null()) return is_null() == other.is_null();
  if (size() != other.size()) return false;
  if (is_contiguous() && other.is_contiguous()) {
    auto a = view(), b = other.view();
    return a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0;
  }
  // Both owned and fragmented: compare chunk by chunk. Good enough for tests,
  // which build both sides the same way.
  if (kind_ != kind::owned || other.kind_ != kind::owned) return false;
  auto& x = owned_.chunks();
  auto& y = other.owned_.chunks();
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].index() != y[i].index()) return false;
    if (auto* b = std::get_if<bytes>(&x[i])) {
      if (*b != std::get<bytes>(y[i])) return false;
    } else {
      auto& f = std::get<file_region>(x[i]);
      auto& g = std::get<file_region>(y[i]);
      if (f.source != g.source || f.position != g.position || f.size != g.size) return false;
    }
  }
  return true;
}

// ---- wire_reader ---------------------------------------------------------------

double wire_reader::read_float64() { return std::bit_cast<double>(read_fixed<uint64_t>()); }

uuid wire_reader::read_uuid() {
  uuid u;
  auto b = read_raw(u.data.size());
  if (ok_) std::memcpy(u.data.data(), b.data(), u.data.size());
  return u;
}

uint32_t wire_reader::read_uvarint() {
  if (!ok_) return 0;
  auto v = get_uvarint(p_, end_, 5);
  if (!v || *v > std::numeric_limits<uint32_t>::max()) {
    fail();
    return 0;
  }
  return static_cast<uint32_t>(*v);
}

int64_t wire_reader::read_length(bool compact, bool int16_len) {
  int64_t n;
  if (compact) {
    n = static_cast<int64_t>(read_uvarint()) - 1;
  } else if (int16_len) {
    n = read_int16();
  } else {
    n = read_int32();
  }
  if (!ok_ || n < -1) {
    fail();
    return -2;
  }
  return n;
}

bytes_view wire_reader::read_raw(size_t n) {
  if (!ok_ || remaining() < n) {
    fail();
    return {};
  }
  bytes_view v(p_, n);
  p_ += n;
  return v;
}

std::string wire_reader::read_string(bool compact) {
  auto s = read_nullable_string(compact);
  if (!s) {
    fail();
    return {};
  }
  return std::move(*s);
}

std::optional<std::string> wire_reader::read_nullable_string(bool compact) {
  int64_t n = read_length(compact, true);
  if (n < 0) return std::nullopt;  // null, or failed (ok() tells which)
  auto b = read_raw(static_cast<size_t>(n));
  if (!ok_) return std::nullopt;
  return std::string(as_string(b));
}

bytes wire_reader::read_bytes(bool compact) {
  auto b = read_nullable_bytes(compact);
  if (!b) {
    fail();
    return {};
  }
  return std::move(*b);
}

std::optional<bytes> wire_reader::read_nullable_bytes(bool compact) {
  int64_t n = read_length(compact, false);
  if (n < 0) return std::nullopt;
  auto b = read_raw(static_cast<size_t>(n));
  if (!ok_) return std::nullopt;
  return bytes(b.begin(), b.end());
}

records wire_reader::read_records(bool compact, bool nullable) {
  int64_t n = read_length(compact, false);
  if (n == -1) {
    if (!nullable) fail();
    return records::null();
  }
  if (n < 0) return records::null();
  auto b = read_raw(static_cast<size_t>(n));
  if (!ok_) return records::null();
  return records::borrow(b);
}

int32_t wire_reader::read_array_length(bool compact, size_t min_element_size) {
  int64_t n = read_length(compact, false);
  if (n < 0) return -1;  // null, or failed (ok() tells which)
  if (n > std::numeric_limits<int32_t>::max() || static_cast<uint64_t>(n) * min_element_size > remaining()) {
    fail();
    return -1;
  }
  return static_cast<int32_t>(n);
}

bool read_tagged_field(wire_reader& r, uint32_t& tag, bytes_view& value) {
  tag = r.read_uvarint();
  uint32_t n = r.read_uvarint();
  value = r.read_raw(n);
  return r.ok();
}

// ---- wire_writer ---------------------------------------------------------------

void wire_writer::reserve(size_t n) {
  auto& b = buf();
  b.reserve(b.size() + n);
}

void wire_writer::write_float64(double v) { write_fixed(std::bit_cast<uint64_t>(v)); }

void wire_writer::write_raw(bytes_view b) {
  if (b.empty()) return;
  auto& out = buf();
  out.insert(out.end(), b.begin(), b.end());
}

void wire_writer::write_length(int64_t n, bool compact, bool int16_len) {
  if (compact) {
    write_uvarint(static_cast<uint64_t>(n + 1));
  } else if (int16_len) {
    GREGOR_ASSERT(n <= std::numeric_limits<int16_t>::max(), "string of {} bytes is too long for the wire", n);
    write_int16(static_cast<int16_t>(n));
  } else {
    GREGOR_ASSERT(n <= std::numeric_limits<int32_t>::max(), "{} bytes is too long for the wire", n);
    write_int32(static_cast<int32_t>(n));
  }
}

void wire_writer::write_string(std::string_view s, bool compact) {
  write_length(static_cast<int64_t>(s.size()), compact, true);
  write_raw(as_bytes(s));
}

void wire_writer::write_nullable_string(const std::optional<std::string>& s, bool compact, bool nullable) {
  if (s) {
    write_string(*s, compact);
  } else if (nullable) {
    write_length(-1, compact, true);
  } else {
    write_string({}, compact);
  }
}

void wire_writer::write_bytes(bytes_view b, bool compact) {
  write_length(static_cast<int64_t>(b.size()), compact, false);
  write_raw(b);
}

void wire_writer::write_nullable_bytes(const std::optional<bytes>& b, bool compact, bool nullable) {
  if (b) {
    write_bytes(*b, compact);
  } else if (nullable) {
    write_length(-1, compact, false);
  } else {
    write_bytes({}, compact);
  }
}

void wire_writer::write_records(const records& r, bool compact, bool nullable) {
  if (r.is_null()) {
    write_length(nullable ? -1 : 0, compact, false);
    return;
  }
  write_length(static_cast<int64_t>(r.size()), compact, false);
  if (const iobuf* data = r.data()) {
    // Owned data: bytes are copied into the tail; file regions become chunks of
    // their own so the network layer can sendfile them.
    for (auto& c : data->chunks()) {
      if (auto* b = std::get_if<bytes>(&c)) {
        write_raw(*b);
      } else {
        out_.append(std::get<file_region>(c));
        tail_ = nullptr;
      }
    }
  } else {
    write_raw(r.view());
  }
}

void wire_writer::write_array_length(size_t n, bool compact) { write_length(static_cast<int64_t>(n), compact, false); }

void wire_writer::write_null_array(bool compact, bool nullable) { write_length(nullable ? -1 : 0, compact, false); }

size_t wire_writer::write_unknown_tags(const raw_tagged_fields& u, size_t from, uint64_t limit) {
  for (; from < u.size() && u[from].tag < limit; ++from) {
    write_uvarint(u[from].tag);
    write_uvarint(u[from].data.size());
    write_raw(u[from].data);
  }
  return from;
}

// ---- sizes ---------------------------------------------------------------------

namespace {
size_t size_of_length(int64_t n, bool compact, bool int16_len) {
  if (compact) return uvarint_size(static_cast<uint64_t>(n + 1));
  return int16_len ? 2 : 4;
}
}  // namespace

size_t size_of_string(std::string_view s, bool compact) { return size_of_length(static_cast<int64_t>(s.size()), compact, true) + s.size(); }

size_t size_of_nullable_string(const std::optional<std::string>& s, bool compact, bool nullable) {
  if (s) return size_of_string(*s, compact);
  return nullable ? size_of_length(-1, compact, true) : size_of_string({}, compact);
}

size_t size_of_bytes(size_t n, bool compact) { return size_of_length(static_cast<int64_t>(n), compact, false) + n; }

size_t size_of_nullable_bytes(const std::optional<bytes>& b, bool compact, bool nullable) {
  if (b) return size_of_bytes(b->size(), compact);
  return size_of_length(nullable ? -1 : 0, compact, false);
}

size_t size_of_records(const records& r, bool compact, bool nullable) {
  if (r.is_null()) return size_of_length(nullable ? -1 : 0, compact, false);
  return size_of_bytes(r.size(), compact);
}

size_t size_of_array_length(size_t n, bool compact) { return size_of_length(static_cast<int64_t>(n), compact, false); }

size_t size_of_null_array(bool compact, bool nullable) { return size_of_length(nullable ? -1 : 0, compact, false); }

size_t size_of_unknown_tags(const raw_tagged_fields& u) {
  size_t n = 0;
  for (auto& f : u) n += uvarint_size(f.tag) + uvarint_size(f.data.size()) + f.data.size();
  return n;
}

}  // namespace gregor::protocol
