#pragma once
// The building blocks of Kafka's wire format that generated message code uses:
// uuid, records, unknown tagged fields, a bounds-checked reader and a writer that
// appends to an iobuf.
//
// Encoding rules in one place:
// - integers are big-endian; bool is one byte (anything non-zero reads as true);
// - a uuid is 16 raw bytes;
// - classic strings have an int16 length, bytes/arrays/records an int32 length,
//   -1 meaning null;
// - in flexible versions strings, bytes, arrays and records have a "compact"
//   length: unsigned varint of length + 1, 0 meaning null.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/iobuf.h"
#include "base/varint.h"

namespace gregor::protocol {

// Kafka's Uuid (topic ids, incarnation ids, directory ids): 16 bytes.
struct uuid {
  std::array<uint8_t, 16> data{};

  bool is_zero() const;
  // Kafka's text form: URL-safe base64 without padding (22 characters).
  std::string to_string() const;
  static std::optional<uuid> from_string(std::string_view s);

  bool operator==(const uuid&) const = default;
  auto operator<=>(const uuid&) const = default;
};

// A tagged field this code does not know (a newer client or broker sent it). Kept
// on decode and written back on encode, so forwarding a message loses nothing.
struct raw_tagged_field {
  uint32_t tag = 0;
  bytes data;
  bool operator==(const raw_tagged_field&) const = default;
};
using raw_tagged_fields = std::vector<raw_tagged_field>;

// The RECORDS wire type: nullable bytes holding record batches.
//
// Decoding never copies: the value borrows a view of the request frame, which the
// caller keeps alive for as long as the decoded request. Encoding appends an iobuf
// whose file regions (log segments) stay separate chunks, so fetch data can go out
// with sendfile. A default-constructed value is null.
class records {
 public:
  records() = default;
  static records null() { return {}; }
  // Borrows `v`; the caller keeps the underlying buffer alive.
  static records borrow(bytes_view v) {
    records r;
    r.set_view(v);
    return r;
  }

  bool is_null() const { return kind_ == kind::null; }
  size_t size() const;

  // The bytes, contiguous: a borrowed view, or owned data held in one bytes chunk.
  // Empty for null. Owned data made of file regions or several chunks has no single
  // view; asking for one is a bug (check is_contiguous() first).
  bytes_view view() const;
  bool is_contiguous() const;
  // The owned data (set()/set_bytes()), or nullptr when null or borrowed.
  const iobuf* data() const { return kind_ == kind::owned ? &owned_ : nullptr; }

  void set(iobuf data);
  void set_bytes(bytes b);
  void set_view(bytes_view v);
  void set_null();

  // Equal when both are null, or both hold the same bytes (file regions compare by
  // fd, position and size). Meant for tests.
  bool operator==(const records& other) const;

 private:
  enum class kind : uint8_t { null, borrowed, owned };
  kind kind_ = kind::null;
  bytes_view view_;
  iobuf owned_;
};

// Reads Kafka's encoding from a byte span. Every read is bounds-checked: on
// truncated or malformed input ok() turns false and reads return zero values, so
// decoders can read straight through and check ok() at the end (they still check
// it before loops, so a failed reader never drives a long loop).
class wire_reader {
 public:
  explicit wire_reader(bytes_view data) : p_(data.data()), end_(data.data() + data.size()) {}

  bool ok() const { return ok_; }
  void fail() { ok_ = false; p_ = end_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* position() const { return p_; }

  int8_t read_int8() { return read_fixed<int8_t>(); }
  int16_t read_int16() { return read_fixed<int16_t>(); }
  int32_t read_int32() { return read_fixed<int32_t>(); }
  int64_t read_int64() { return read_fixed<int64_t>(); }
  uint16_t read_uint16() { return read_fixed<uint16_t>(); }
  uint32_t read_uint32() { return read_fixed<uint32_t>(); }
  double read_float64();
  bool read_bool() { return read_fixed<uint8_t>() != 0; }
  uuid read_uuid();
  // An unsigned varint of at most 32 bits (lengths, tags, counts).
  uint32_t read_uvarint();

  // `compact` selects the flexible-version encoding. A null where the version
  // does not allow one fails the read.
  std::string read_string(bool compact);
  std::optional<std::string> read_nullable_string(bool compact);
  bytes read_bytes(bool compact);
  std::optional<bytes> read_nullable_bytes(bool compact);
  records read_records(bool compact, bool nullable);
  // An array's element count, -1 for null (the caller checks nullability). Fails
  // if count * min_element_size exceeds the bytes left (every element takes at
  // least one byte), so a bogus length cannot make a decoder reserve much more
  // memory than the frame it came in.
  int32_t read_array_length(bool compact, size_t min_element_size = 1);

  bytes_view read_raw(size_t n);
  void skip(size_t n) { (void)read_raw(n); }

 private:
  template <class T>
  T read_fixed() {
    if (remaining() < sizeof(T)) {
      fail();
      return T{};
    }
    T v = load_be<T>(p_);
    p_ += sizeof(T);
    return v;
  }
  // A length prefix: -1 for null, -2 after a failure.
  int64_t read_length(bool compact, bool int16_len);

  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

// Appends Kafka's encoding to an iobuf. Writes go to the iobuf's tail bytes chunk;
// records backed by file regions are added as their own chunks.
//
// Values that a version cannot carry are written as their nearest legal form
// rather than failing: a null in a version where the field is not nullable is
// written as empty. Lengths beyond what the format can express are bugs.
class wire_writer {
 public:
  explicit wire_writer(iobuf& out) : out_(out) {}

  // Reserves room in the tail chunk for n more bytes (size() of what follows).
  void reserve(size_t n);

  void write_int8(int8_t v) { write_fixed(v); }
  void write_int16(int16_t v) { write_fixed(v); }
  void write_int32(int32_t v) { write_fixed(v); }
  void write_int64(int64_t v) { write_fixed(v); }
  void write_uint16(uint16_t v) { write_fixed(v); }
  void write_uint32(uint32_t v) { write_fixed(v); }
  void write_float64(double v);
  void write_bool(bool v) { buf().push_back(v ? 1 : 0); }
  void write_uuid(const uuid& v) { write_raw(v.data); }
  void write_uvarint(uint64_t v) { put_uvarint(buf(), v); }

  void write_string(std::string_view s, bool compact);
  void write_nullable_string(const std::optional<std::string>& s, bool compact, bool nullable);
  void write_bytes(bytes_view b, bool compact);
  void write_nullable_bytes(const std::optional<bytes>& b, bool compact, bool nullable);
  void write_records(const records& r, bool compact, bool nullable);
  void write_array_length(size_t n, bool compact);
  void write_null_array(bool compact, bool nullable);
  void write_raw(bytes_view b);

  // Writes the unknown tagged fields in [from, end) whose tag is below `limit`,
  // returning the index of the first one not written. Generated code interleaves
  // them with known tags so the section stays in ascending tag order.
  size_t write_unknown_tags(const raw_tagged_fields& u, size_t from, uint64_t limit);

 private:
  template <class T>
  void write_fixed(T v) {
    append_be<T>(buf(), v);
  }
  void write_length(int64_t n, bool compact, bool int16_len);
  bytes& buf() {
    if (!tail_) tail_ = &out_.tail();
    return *tail_;
  }

  iobuf& out_;
  bytes* tail_ = nullptr;  // cached tail chunk; reset when a file region is appended
};

// Encoded sizes, mirroring wire_writer.
size_t size_of_string(std::string_view s, bool compact);
size_t size_of_nullable_string(const std::optional<std::string>& s, bool compact, bool nullable);
size_t size_of_bytes(size_t n, bool compact);
size_t size_of_nullable_bytes(const std::optional<bytes>& b, bool compact, bool nullable);
size_t size_of_records(const records& r, bool compact, bool nullable);
size_t size_of_array_length(size_t n, bool compact);
size_t size_of_null_array(bool compact, bool nullable);
inline size_t size_of_uvarint(uint64_t v) { return uvarint_size(v); }
size_t size_of_unknown_tags(const raw_tagged_fields& u);

// Reads one tagged field's header and value. Returns false on malformed input.
// Generated decoders call this in a loop over the section.
bool read_tagged_field(wire_reader& r, uint32_t& tag, bytes_view& value);

}  // namespace gregor::protocol

template <>
struct std::hash<gregor::protocol::uuid> {
  size_t operator()(const gregor::protocol::uuid& u) const noexcept {
    uint64_t a = gregor::load_be<uint64_t>(u.data.data());
    uint64_t b = gregor::load_be<uint64_t>(u.data.data() + 8);
    return std::hash<uint64_t>{}(a ^ (b * 0x9e3779b97f4a7c15ULL));
  }
};
