#pragma once
// Kafka record batch v2 (magic 2): the unit that producers send, the log
// stores as received and consumers fetch.
//
//   offset  size  field
//        0     8  baseOffset
//        8     4  batchLength            (bytes after this field)
//       12     4  partitionLeaderEpoch
//       16     1  magic                  (2)
//       17     4  crc                    CRC32C of attributes .. end
//       21     2  attributes             bits 0-2 compression, 3 timestampType
//                                        (1 = LogAppendTime), 4 transactional,
//                                        5 control
//       23     4  lastOffsetDelta
//       27     8  baseTimestamp
//       35     8  maxTimestamp
//       43     8  producerId
//       51     2  producerEpoch
//       53     4  baseSequence
//       57     4  recordsCount
//       61        records (compressed as a whole when compression != none)
//
// Each record: varint length, int8 attributes, varlong timestampDelta, varint
// offsetDelta, varint keyLength (-1 = null) + key, varint valueLength (-1 =
// null) + value, varint headerCount, then per header varint keyLength + key,
// varint valueLength (-1 = null) + value.
//
// baseOffset and partitionLeaderEpoch lie outside the CRC, so the broker can
// assign them in place without touching the rest of the batch.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "protocol/compression.h"

namespace gregor::protocol {

enum class timestamp_type : int8_t { create_time = 0, log_append_time = 1 };

// Byte positions of the header fields.
namespace batch_field {
constexpr size_t base_offset = 0;
constexpr size_t batch_length = 8;
constexpr size_t partition_leader_epoch = 12;
constexpr size_t magic = 16;
constexpr size_t crc = 17;
constexpr size_t attributes = 21;
constexpr size_t last_offset_delta = 23;
constexpr size_t base_timestamp = 27;
constexpr size_t max_timestamp = 35;
constexpr size_t producer_id = 43;
constexpr size_t producer_epoch = 51;
constexpr size_t base_sequence = 53;
constexpr size_t records_count = 57;
constexpr size_t records = 61;
}  // namespace batch_field

constexpr size_t batch_header_size = 61;  // Kafka's RECORD_BATCH_OVERHEAD
constexpr size_t log_overhead = 12;       // baseOffset + batchLength
constexpr int32_t min_batch_length = static_cast<int32_t>(batch_header_size - log_overhead);
constexpr int8_t current_magic = 2;
constexpr int32_t default_max_message_bytes = 1048588;  // Kafka's max.message.bytes default
constexpr size_t default_max_uncompressed_bytes = 64u << 20;

namespace batch_attr {
constexpr int16_t compression_mask = 0x07;
constexpr int16_t timestamp_type = 0x08;
constexpr int16_t transactional = 0x10;
constexpr int16_t control = 0x20;
}  // namespace batch_attr

// The fixed 61-byte header, decoded.
struct batch_header {
  int64_t base_offset = 0;
  int32_t batch_length = 0;
  int32_t partition_leader_epoch = -1;
  int8_t magic = current_magic;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = -1;
  int64_t max_timestamp = -1;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t records_count = 0;

  // Decodes the header at p, which must have batch_header_size readable
  // bytes. No checks: see check_batch / validate_batches.
  static batch_header parse(const uint8_t* p);

  compression_type compression() const { return static_cast<compression_type>(attributes & batch_attr::compression_mask); }
  timestamp_type ts_type() const {
    return (attributes & batch_attr::timestamp_type) ? timestamp_type::log_append_time : timestamp_type::create_time;
  }
  bool is_transactional() const { return attributes & batch_attr::transactional; }
  bool is_control() const { return attributes & batch_attr::control; }
  bool has_producer_id() const { return producer_id >= 0; }
  int64_t last_offset() const { return base_offset + last_offset_delta; }
  int64_t next_offset() const { return last_offset() + 1; }
  // The whole batch on the wire / on disk, log overhead included.
  size_t size_bytes() const { return log_overhead + static_cast<size_t>(batch_length); }
  // Sequence of the last record (wraps at INT32_MAX as Kafka's does).
  int32_t last_sequence() const;
};

// Why a batch was refused. Each maps to one Kafka error code.
enum class batch_error : uint8_t {
  none,
  corrupt_message,    // bad CRC, bad sizes, truncated, unknown magic/codec, undecodable payload  (2 CORRUPT_MESSAGE)
  message_too_large,  // a batch above max.message.bytes, or expanding above the decompression cap (10 MESSAGE_TOO_LARGE)
  invalid_record,     // records that do not parse, count/offset mismatch, control batch from a client... (87 INVALID_RECORD)
  unsupported_magic,  // magic 0 or 1 (legacy message sets): not supported (43 UNSUPPORTED_FOR_MESSAGE_FORMAT)
};
const char* to_string(batch_error e);
int16_t kafka_error_code(batch_error e);

struct validate_options {
  int32_t max_batch_bytes = default_max_message_bytes;  // compared with the whole batch, log overhead included
  // Decode every record (decompressing compressed batches) to check that
  // they parse, that their offset deltas are 0..n-1 and that the count matches.
  bool check_records = true;
  size_t max_uncompressed_bytes = default_max_uncompressed_bytes;
  bool allow_control_batches = false;  // clients may not write control batches
  // Produce v3+ allows exactly one batch per partition.
  bool require_single_batch = false;
};

// What a produce request's records for one partition contain.
struct batches_summary {
  int32_t batch_count = 0;
  int64_t record_count = 0;
  int64_t max_timestamp = -1;
  // Of the first batch: what the idempotence / transaction checks need.
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t last_sequence = -1;
  bool transactional = false;
  compression_type compression = compression_type::none;
};

struct validation_result {
  batch_error error = batch_error::none;
  std::string message;  // human-readable reason, empty when ok
  batches_summary summary;
  bool ok() const { return error == batch_error::none; }
};

// Validates one or more concatenated batches as received in a produce request.
validation_result validate_batches(bytes_view data, const validate_options& options);
inline validation_result validate_batches(bytes_view data, int32_t max_batch_bytes) {
  validate_options o;
  o.max_batch_bytes = max_batch_bytes;
  return validate_batches(data, o);
}

// Checks the header and sizes of the batch at the start of `data` (magic,
// batchLength, that the whole batch is present) and optionally its CRC.
// On success returns the header; the batch is the first size_bytes() of data.
struct batch_check {
  batch_error error = batch_error::none;
  std::string message;
  batch_header header;
  bool ok() const { return error == batch_error::none; }
};
batch_check check_batch(bytes_view data, bool verify_crc);

// CRC32C over attributes .. end of the batch (the batch's own size).
uint32_t compute_crc(bytes_view batch);
bool crc_matches(bytes_view batch);

// In-place edits of a batch held in a mutable buffer.
void set_base_offset(std::span<uint8_t> batch, int64_t base_offset);                     // outside the CRC
void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch);               // outside the CRC
// Sets maxTimestamp and the timestampType bit, and recomputes the CRC.
void set_max_timestamp(std::span<uint8_t> batch, timestamp_type type, int64_t max_timestamp);
inline void set_log_append_time(std::span<uint8_t> batch, int64_t now_ms) {
  set_max_timestamp(batch, timestamp_type::log_append_time, now_ms);
}
void update_crc(std::span<uint8_t> batch);

// ---- records -------------------------------------------------------------

struct record_header_view {
  std::string_view key;
  std::optional<bytes_view> value;
};

// One decoded record. Views point into the batch (or the reader's
// decompressed copy) and stay valid until the reader's next call to next().
struct record_view {
  int8_t attributes = 0;
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  int64_t offset = 0;     // baseOffset + offsetDelta
  int64_t timestamp = 0;  // baseTimestamp + delta; maxTimestamp under LogAppendTime
  std::optional<bytes_view> key;
  std::optional<bytes_view> value;
  std::span<const record_header_view> headers;
};

// Decodes the records of one batch, decompressing its payload first when
// needed. next() fails with invalid_record when a record does not parse or
// the batch holds more or fewer records than recordsCount.
class record_reader {
 public:
  // `batch` is one whole batch and must outlive the reader. The header is
  // checked (sizes, magic) but not the CRC.
  static result<record_reader> open(bytes_view batch, size_t max_uncompressed_bytes = default_max_uncompressed_bytes);

  const batch_header& header() const { return header_; }
  // Fills `out` and returns true, or returns false after the last record.
  result<bool> next(record_view& out);
  // The kind of the last failure of open() or next().
  batch_error error_kind() const { return error_kind_; }

  record_reader(record_reader&&) = default;
  record_reader& operator=(record_reader&&) = default;

 private:
  record_reader() = default;
  batch_header header_;
  bytes decompressed_;
  const uint8_t* pos_ = nullptr;
  const uint8_t* end_ = nullptr;
  int32_t read_ = 0;
  batch_error error_kind_ = batch_error::none;
  std::vector<record_header_view> headers_;
};

// Convenience: opens the batch and collects every record's offset,
// timestamp, key, value and headers as owned copies (tests, tools, clients).
struct record_header {
  std::string key;
  std::optional<bytes> value;
  bool operator==(const record_header&) const = default;
};
struct record {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<bytes> key;
  std::optional<bytes> value;
  std::vector<record_header> headers;
  bool operator==(const record&) const = default;
};
result<std::vector<record>> read_records(bytes_view batch, size_t max_uncompressed_bytes = default_max_uncompressed_bytes);

// Walks concatenated batches (a fetch response's records, a log segment's
// bytes). Stops at the end, or at a trailing partial batch (fetch responses
// may end with one); a header that is not a valid v2 batch stops it with an
// error.
class batch_iterator {
 public:
  explicit batch_iterator(bytes_view data) : data_(data) {}
  // The next whole batch, or nullopt at the end / at a partial tail / on error.
  std::optional<bytes_view> next(batch_header* header = nullptr);
  size_t position() const { return pos_; }
  bool partial_tail() const { return partial_; }
  const std::string& error() const { return error_; }

 private:
  bytes_view data_;
  size_t pos_ = 0;
  bool partial_ = false;
  std::string error_;
};

// ---- building ------------------------------------------------------------

struct batch_builder_options {
  compression_type compression = compression_type::none;
  int compression_level = -1;
  timestamp_type ts_type = timestamp_type::create_time;
  int64_t log_append_time_ms = -1;  // maxTimestamp under LogAppendTime
  int64_t base_offset = 0;
  int32_t partition_leader_epoch = -1;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  bool transactional = false;
  bool control = false;
};

// Builds one batch. Records get offset deltas 0, 1, 2...; the base timestamp
// is the first record's. Used by tests, the C++ client and the metadata log.
class batch_builder {
 public:
  explicit batch_builder(batch_builder_options options = {});

  batch_builder& add(int64_t timestamp, std::optional<bytes_view> key, std::optional<bytes_view> value,
                     std::span<const record_header_view> headers = {});
  batch_builder& add(int64_t timestamp, std::optional<std::string_view> key, std::optional<std::string_view> value,
                     std::span<const record_header_view> headers = {});

  int32_t record_count() const { return count_; }
  // Bytes of the batch if it were built uncompressed now.
  size_t uncompressed_size() const { return batch_header_size + records_.size(); }
  bool empty() const { return count_ == 0; }

  // The finished batch. The builder is emptied and can be reused with the
  // same options (base_offset / base_sequence unchanged).
  bytes build();
  // Appends the finished batch to `out` instead.
  void build_into(bytes& out);

 private:
  batch_builder_options options_;
  bytes records_;
  int32_t count_ = 0;
  int64_t base_timestamp_ = -1;
  int64_t max_timestamp_ = -1;
};

}  // namespace gregor::protocol
