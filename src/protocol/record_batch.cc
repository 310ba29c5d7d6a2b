#include "protocol/record_batch.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "base/assert.h"
#include "base/crc32c.h"
#include "base/varint.h"

namespace gregor::protocol {

batch_header batch_header::parse(const uint8_t* p) {
  batch_header h;
  h.base_offset = load_be<int64_t>(p + batch_field::base_offset);
  h.batch_length = load_be<int32_t>(p + batch_field::batch_length);
  h.partition_leader_epoch = load_be<int32_t>(p + batch_field::partition_leader_epoch);
  h.magic = static_cast<int8_t>(p[batch_field::magic]);
  h.crc = load_be<uint32_t>(p + batch_field::crc);
  h.attributes = load_be<int16_t>(p + batch_field::attributes);
  h.last_offset_delta = load_be<int32_t>(p + batch_field::last_offset_delta);
  h.base_timestamp = load_be<int64_t>(p + batch_field::base_timestamp);
  h.max_timestamp = load_be<int64_t>(p + batch_field::max_timestamp);
  h.producer_id = load_be<int64_t>(p + batch_field::producer_id);
  h.producer_epoch = load_be<int16_t>(p + batch_field::producer_epoch);
  h.base_sequence = load_be<int32_t>(p + batch_field::base_sequence);
  h.records_count = load_be<int32_t>(p + batch_field::records_count);
  return h;
}

int32_t batch_header::last_sequence() const {
  if (base_sequence < 0) return -1;
  int32_t inc = last_offset_delta;
  if (base_sequence > std::numeric_limits<int32_t>::max() - inc)
    return inc - (std::numeric_limits<int32_t>::max() - base_sequence) - 1;
  return base_sequence + inc;
}

const char* to_string(batch_error e) {
  switch (e) {
    case batch_error::none: return "none";
    case batch_error::corrupt_message: return "corrupt_message";
    case batch_error::message_too_large: return "message_too_large";
    case batch_error::invalid_record: return "invalid_record";
    case batch_error::unsupported_magic: return "unsupported_magic";
  }
  return "unknown";
}

int16_t kafka_error_code(batch_error e) {
  switch (e) {
    case batch_error::none: return 0;
    case batch_error::corrupt_message: return 2;      // CORRUPT_MESSAGE
    case batch_error::message_too_large: return 10;   // MESSAGE_TOO_LARGE
    case batch_error::invalid_record: return 87;      // INVALID_RECORD
    case batch_error::unsupported_magic: return 43;   // UNSUPPORTED_FOR_MESSAGE_FORMAT
  }
  return -1;
}

uint32_t compute_crc(bytes_view batch) {
  size_t size = log_overhead + static_cast<size_t>(load_be<int32_t>(batch.data() + batch_field::batch_length));
  GREGOR_ASSERT(size <= batch.size() && size >= batch_header_size, "compute_crc on a batch of {} bytes in a buffer of {}",
                size, batch.size());
  return crc32c(batch.data() + batch_field::attributes, size - batch_field::attributes);
}

bool crc_matches(bytes_view batch) { return compute_crc(batch) == load_be<uint32_t>(batch.data() + batch_field::crc); }

void update_crc(std::span<uint8_t> batch) { store_be<uint32_t>(batch.data() + batch_field::crc, compute_crc(batch)); }

void set_base_offset(std::span<uint8_t> batch, int64_t base_offset) {
  GREGOR_ASSERT(batch.size() >= batch_header_size, "set_base_offset on {} bytes", batch.size());
  store_be<int64_t>(batch.data() + batch_field::base_offset, base_offset);
}

void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch) {
  GREGOR_ASSERT(batch.size() >= batch_header_size, "set_partition_leader_epoch on {} bytes", batch.size());
  store_be<int32_t>(batch.data() + batch_field::partition_leader_epoch, epoch);
}

void set_max_timestamp(std::span<uint8_t> batch, timestamp_type type, int64_t max_timestamp) {
  GREGOR_ASSERT(batch.size() >= batch_header_size, "set_max_timestamp on {} bytes", batch.size());
  int16_t attrs = load_be<int16_t>(batch.data() + batch_field::attributes);
  attrs = static_cast<int16_t>(attrs & ~batch_attr::timestamp_type);
  if (type == timestamp_type::log_append_time) attrs = static_cast<int16_t>(attrs | batch_attr::timestamp_type);
  store_be<int16_t>(batch.data() + batch_field::attributes, attrs);
  store_be<int64_t>(batch.data() + batch_field::max_timestamp, max_timestamp);
  update_crc(batch);
}

batch_check check_batch(bytes_view data, bool verify_crc) {
  batch_check c;
  auto fail = [&](batch_error e, std::string m) {
    c.error = e;
    c.message = std::move(m);
    return c;
  };
  if (data.size() < batch_field::magic + 1)
    return fail(batch_error::corrupt_message, fmt::format("truncated batch: {} bytes, less than a batch header", data.size()));
  int32_t length = load_be<int32_t>(data.data() + batch_field::batch_length);
  int8_t magic = static_cast<int8_t>(data[batch_field::magic]);
  if (magic == 0 || magic == 1)
    return fail(batch_error::unsupported_magic,
                fmt::format("message format v{} (magic {}) is not supported; only record batch v2", magic, magic));
  if (magic != current_magic) return fail(batch_error::corrupt_message, fmt::format("unknown magic {}", magic));
  if (length < min_batch_length)
    return fail(batch_error::corrupt_message,
                fmt::format("batch length {} is less than the minimum {}", length, min_batch_length));
  if (static_cast<size_t>(length) > data.size() - log_overhead)
    return fail(batch_error::corrupt_message,
                fmt::format("truncated batch: length {} but only {} bytes follow", length, data.size() - log_overhead));
  c.header = batch_header::parse(data.data());
  if (verify_crc) {
    uint32_t actual = crc32c(data.data() + batch_field::attributes, c.header.size_bytes() - batch_field::attributes);
    if (actual != c.header.crc)
      return fail(batch_error::corrupt_message,
                  fmt::format("CRC mismatch: stored {:#010x}, computed {:#010x}", c.header.crc, actual));
  }
  return c;
}

namespace {

// Parses the record at p (bounded by end). On success fills r (offset and
// timestamp relative: deltas only), appends headers to *headers when given,
// and advances p past the record. On failure sets why.
bool parse_record(const uint8_t*& p, const uint8_t* end, record_view& r, std::vector<record_header_view>* headers,
                  std::string& why) {
  const uint8_t* q = p;
  auto len = get_varint(q, end, 5);
  if (!len) return why = "truncated or malformed record length", false;
  if (*len <= 0 || *len > end - q) return why = fmt::format("record length {} out of range", *len), false;
  const uint8_t* rend = q + *len;
  r.attributes = static_cast<int8_t>(*q++);
  auto ts_delta = get_varint(q, rend, 10);
  if (!ts_delta) return why = "malformed timestamp delta", false;
  r.timestamp_delta = *ts_delta;
  auto off_delta = get_varint(q, rend, 5);
  if (!off_delta || *off_delta < std::numeric_limits<int32_t>::min() || *off_delta > std::numeric_limits<int32_t>::max())
    return why = "malformed offset delta", false;
  r.offset_delta = static_cast<int32_t>(*off_delta);

  auto read_bytes = [&](std::optional<bytes_view>& out, const char* what) {
    auto n = get_varint(q, rend, 5);
    if (!n || *n < -1) return why = fmt::format("malformed {} length", what), false;
    if (*n == -1) {
      out.reset();
      return true;
    }
    if (*n > rend - q) return why = fmt::format("{} length {} beyond the record", what, *n), false;
    out = bytes_view(q, static_cast<size_t>(*n));
    q += *n;
    return true;
  };
  if (!read_bytes(r.key, "key")) return false;
  if (!read_bytes(r.value, "value")) return false;
  auto hcount = get_varint(q, rend, 5);
  if (!hcount || *hcount < 0) return why = "invalid number of record headers", false;
  for (int64_t i = 0; i < *hcount; ++i) {
    auto kl = get_varint(q, rend, 5);
    if (!kl || *kl < 0 || *kl > rend - q) return why = "malformed header key", false;
    std::string_view key(reinterpret_cast<const char*>(q), static_cast<size_t>(*kl));
    q += *kl;
    std::optional<bytes_view> value;
    if (!read_bytes(value, "header value")) return false;
    if (headers) headers->push_back(record_header_view{key, value});
  }
  if (q != rend)
    return why = fmt::format("invalid record size: {} bytes declared, {} read", *len, *len - (rend - q)), false;
  p = rend;
  return true;
}

struct records_walk {
  batch_error error = batch_error::none;
  std::string message;
};

// Walks all records of the payload [p, end): each must parse, offset deltas
// must run 0..count-1 and the payload must end right after the last one.
records_walk walk_records(const uint8_t* p, const uint8_t* end, int32_t count) {
  records_walk w;
  record_view r;
  std::string why;
  for (int32_t i = 0; i < count; ++i) {
    if (p == end) {
      w.error = batch_error::invalid_record;
      w.message = fmt::format("batch declares {} records but holds {}", count, i);
      return w;
    }
    if (!parse_record(p, end, r, nullptr, why)) {
      w.error = batch_error::invalid_record;
      w.message = fmt::format("record {}: {}", i, why);
      return w;
    }
    if (r.offset_delta != i) {
      w.error = batch_error::invalid_record;
      w.message = fmt::format("record {} has offset delta {}: offsets must be contiguous", i, r.offset_delta);
      return w;
    }
  }
  if (p != end) {
    w.error = batch_error::invalid_record;
    w.message = fmt::format("{} bytes remain after the {} records the batch declares", end - p, count);
  }
  return w;
}

batch_error codec_error_kind(const codec_result& r) {
  return r.status == codec_status::too_large ? batch_error::message_too_large : batch_error::corrupt_message;
}

}  // namespace

validation_result validate_batches(bytes_view data, const validate_options& options) {
  validation_result v;
  auto fail = [&](batch_error e, std::string m) {
    v.error = e;
    v.message = std::move(m);
    return v;
  };
  bytes scratch;
  size_t pos = 0;
  while (pos < data.size()) {
    bytes_view rest = data.subspan(pos);
    int32_t index = v.summary.batch_count;
    // Size limit first (Kafka's order): a too-large batch is refused even if
    // it is also truncated in this request.
    if (rest.size() >= log_overhead) {
      int64_t whole = static_cast<int64_t>(log_overhead) + load_be<int32_t>(rest.data() + batch_field::batch_length);
      if (whole > options.max_batch_bytes && rest.size() > batch_field::magic && rest[batch_field::magic] == current_magic)
        return fail(batch_error::message_too_large,
                    fmt::format("batch {} is {} bytes, larger than the limit of {}", index, whole, options.max_batch_bytes));
    }
    auto c = check_batch(rest, true);
    if (!c.ok()) return fail(c.error, fmt::format("batch {} at byte {}: {}", index, pos, c.message));
    const batch_header& h = c.header;
    if (h.records_count <= 0)
      return fail(batch_error::invalid_record, fmt::format("batch {}: invalid record count {}", index, h.records_count));
    if (h.last_offset_delta < 0 || static_cast<int64_t>(h.last_offset_delta) + 1 != h.records_count)
      return fail(batch_error::invalid_record,
                  fmt::format("batch {}: last offset delta {} does not match the record count {}", index,
                              h.last_offset_delta, h.records_count));
    if (h.is_control() && !options.allow_control_batches)
      return fail(batch_error::invalid_record, fmt::format("batch {}: clients may not write control batches", index));
    if (h.has_producer_id() && h.base_sequence < 0)
      return fail(batch_error::invalid_record,
                  fmt::format("batch {}: producer id {} with invalid base sequence {}", index, h.producer_id, h.base_sequence));
    if (static_cast<int>(h.compression()) > static_cast<int>(compression_type::zstd))
      return fail(batch_error::corrupt_message,
                  fmt::format("batch {}: unknown compression type {}", index, static_cast<int>(h.compression())));
    if (options.check_records) {
      const uint8_t* p = rest.data() + batch_header_size;
      const uint8_t* end = rest.data() + h.size_bytes();
      if (h.compression() != compression_type::none) {
        scratch.clear();
        auto d = decompress(h.compression(), bytes_view(p, static_cast<size_t>(end - p)), options.max_uncompressed_bytes,
                            scratch);
        if (!d.ok())
          return fail(codec_error_kind(d),
                      fmt::format("batch {}: {} payload: {}", index, to_string(h.compression()), d.message));
        p = scratch.data();
        end = scratch.data() + scratch.size();
      }
      auto w = walk_records(p, end, h.records_count);
      if (w.error != batch_error::none) return fail(w.error, fmt::format("batch {}: {}", index, w.message));
    }
    if (index == 0) {
      v.summary.producer_id = h.producer_id;
      v.summary.producer_epoch = h.producer_epoch;
      v.summary.base_sequence = h.base_sequence;
      v.summary.last_sequence = h.last_sequence();
      v.summary.transactional = h.is_transactional();
      v.summary.compression = h.compression();
    }
    v.summary.batch_count++;
    v.summary.record_count += h.records_count;
    v.summary.max_timestamp = std::max(v.summary.max_timestamp, h.max_timestamp);
    pos += h.size_bytes();
  }
  if (v.summary.batch_count == 0) return fail(batch_error::invalid_record, "no record batch");
  if (options.require_single_batch && v.summary.batch_count > 1)
    return fail(batch_error::invalid_record,
                fmt::format("{} record batches where exactly one is allowed per partition", v.summary.batch_count));
  return v;
}

// ---- record_reader -------------------------------------------------------

result<record_reader> record_reader::open(bytes_view batch, size_t max_uncompressed_bytes) {
  auto c = check_batch(batch, false);
  if (!c.ok()) return error{std::string(to_string(c.error)) + ": " + c.message};
  record_reader r;
  r.header_ = c.header;
  if (r.header_.records_count < 0) return error{fmt::format("invalid_record: record count {}", r.header_.records_count)};
  const uint8_t* p = batch.data() + batch_header_size;
  const uint8_t* end = batch.data() + r.header_.size_bytes();
  if (r.header_.compression() != compression_type::none) {
    auto d = decompress(r.header_.compression(), bytes_view(p, static_cast<size_t>(end - p)), max_uncompressed_bytes,
                        r.decompressed_);
    if (!d.ok()) return error{std::string(to_string(codec_error_kind(d))) + ": " + d.message};
    p = r.decompressed_.data();
    end = p + r.decompressed_.size();
  }
  r.pos_ = p;
  r.end_ = end;
  return r;
}

result<bool> record_reader::next(record_view& out) {
  if (read_ == header_.records_count) {
    if (pos_ != end_) {
      error_kind_ = batch_error::invalid_record;
      return error{fmt::format("invalid_record: {} bytes remain after the {} records the batch declares", end_ - pos_,
                               header_.records_count)};
    }
    return false;
  }
  if (pos_ == end_) {
    error_kind_ = batch_error::invalid_record;
    return error{fmt::format("invalid_record: batch declares {} records but holds {}", header_.records_count, read_)};
  }
  headers_.clear();
  std::string why;
  if (!parse_record(pos_, end_, out, &headers_, why)) {
    error_kind_ = batch_error::invalid_record;
    return error{fmt::format("invalid_record: record {}: {}", read_, why)};
  }
  out.headers = headers_;
  out.offset = header_.base_offset + out.offset_delta;
  out.timestamp = header_.ts_type() == timestamp_type::log_append_time ? header_.max_timestamp
                                                                       : header_.base_timestamp + out.timestamp_delta;
  ++read_;
  return true;
}

result<std::vector<record>> read_records(bytes_view batch, size_t max_uncompressed_bytes) {
  auto rr = record_reader::open(batch, max_uncompressed_bytes);
  if (!rr) return rr.err();
  std::vector<record> out;
  record_view v;
  for (;;) {
    auto more = rr->next(v);
    if (!more) return more.err();
    if (!more.value()) break;
    record r;
    r.offset = v.offset;
    r.timestamp = v.timestamp;
    if (v.key) r.key = bytes(v.key->begin(), v.key->end());
    if (v.value) r.value = bytes(v.value->begin(), v.value->end());
    for (auto& h : v.headers) {
      record_header rh;
      rh.key = std::string(h.key);
      if (h.value) rh.value = bytes(h.value->begin(), h.value->end());
      r.headers.push_back(std::move(rh));
    }
    out.push_back(std::move(r));
  }
  return out;
}

// ---- batch_iterator ------------------------------------------------------

std::optional<bytes_view> batch_iterator::next(batch_header* header) {
  if (!error_.empty() || partial_ || pos_ >= data_.size()) return std::nullopt;
  size_t rem = data_.size() - pos_;
  const uint8_t* p = data_.data() + pos_;
  if (rem < batch_header_size) {
    // Too short for a header: a partial tail unless the visible part is
    // already wrong.
    if (rem > batch_field::magic && p[batch_field::magic] != current_magic) {
      error_ = fmt::format("unsupported magic {} at byte {}", static_cast<int>(static_cast<int8_t>(p[batch_field::magic])), pos_);
      return std::nullopt;
    }
    partial_ = true;
    return std::nullopt;
  }
  int32_t length = load_be<int32_t>(p + batch_field::batch_length);
  if (p[batch_field::magic] != current_magic) {
    error_ = fmt::format("unsupported magic {} at byte {}", static_cast<int>(static_cast<int8_t>(p[batch_field::magic])), pos_);
    return std::nullopt;
  }
  if (length < min_batch_length) {
    error_ = fmt::format("batch length {} at byte {} is less than the minimum", length, pos_);
    return std::nullopt;
  }
  size_t size = log_overhead + static_cast<size_t>(length);
  if (size > rem) {
    partial_ = true;
    return std::nullopt;
  }
  if (header) *header = batch_header::parse(p);
  pos_ += size;
  return bytes_view(p, size);
}

// ---- batch_builder -------------------------------------------------------

batch_builder::batch_builder(batch_builder_options options) : options_(options) {}

batch_builder& batch_builder::add(int64_t timestamp, std::optional<bytes_view> key, std::optional<bytes_view> value,
                                  std::span<const record_header_view> headers) {
  if (count_ == 0) base_timestamp_ = timestamp;
  max_timestamp_ = count_ == 0 ? timestamp : std::max(max_timestamp_, timestamp);
  int64_t ts_delta = timestamp - base_timestamp_;
  int32_t offset_delta = count_;
  int64_t key_len = key ? static_cast<int64_t>(key->size()) : -1;
  int64_t value_len = value ? static_cast<int64_t>(value->size()) : -1;
  size_t body = 1 + varint_size(ts_delta) + varint_size(offset_delta) + varint_size(key_len) + (key ? key->size() : 0) +
                varint_size(value_len) + (value ? value->size() : 0) + varint_size(static_cast<int64_t>(headers.size()));
  for (auto& h : headers) {
    int64_t hv = h.value ? static_cast<int64_t>(h.value->size()) : -1;
    body += varint_size(static_cast<int64_t>(h.key.size())) + h.key.size() + varint_size(hv) + (h.value ? h.value->size() : 0);
  }
  records_.reserve(records_.size() + body + 5);
  put_varint(records_, static_cast<int64_t>(body));
  records_.push_back(0);  // record attributes: unused
  put_varint(records_, ts_delta);
  put_varint(records_, offset_delta);
  put_varint(records_, key_len);
  if (key) records_.insert(records_.end(), key->begin(), key->end());
  put_varint(records_, value_len);
  if (value) records_.insert(records_.end(), value->begin(), value->end());
  put_varint(records_, static_cast<int64_t>(headers.size()));
  for (auto& h : headers) {
    put_varint(records_, static_cast<int64_t>(h.key.size()));
    records_.insert(records_.end(), h.key.begin(), h.key.end());
    put_varint(records_, h.value ? static_cast<int64_t>(h.value->size()) : -1);
    if (h.value) records_.insert(records_.end(), h.value->begin(), h.value->end());
  }
  ++count_;
  return *this;
}

batch_builder& batch_builder::add(int64_t timestamp, std::optional<std::string_view> key,
                                  std::optional<std::string_view> value, std::span<const record_header_view> headers) {
  std::optional<bytes_view> k, v;
  if (key) k = as_bytes(*key);
  if (value) v = as_bytes(*value);
  return add(timestamp, k, v, headers);
}

bytes batch_builder::build() {
  bytes out;
  build_into(out);
  return out;
}

void batch_builder::build_into(bytes& out) {
  size_t start = out.size();
  out.resize(start + batch_header_size);
  if (options_.compression == compression_type::none) {
    out.insert(out.end(), records_.begin(), records_.end());
  } else {
    auto r = compress(options_.compression, records_, out, options_.compression_level);
    GREGOR_ASSERT(r.ok(), "compressing a batch with {}: {}", to_string(options_.compression), r.message);
  }
  size_t size = out.size() - start;
  GREGOR_ASSERT(size - log_overhead <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), "batch of {} bytes", size);
  uint8_t* h = out.data() + start;
  int16_t attrs = static_cast<int16_t>(options_.compression);
  if (options_.ts_type == timestamp_type::log_append_time) attrs |= batch_attr::timestamp_type;
  if (options_.transactional) attrs |= batch_attr::transactional;
  if (options_.control) attrs |= batch_attr::control;
  store_be<int64_t>(h + batch_field::base_offset, options_.base_offset);
  store_be<int32_t>(h + batch_field::batch_length, static_cast<int32_t>(size - log_overhead));
  store_be<int32_t>(h + batch_field::partition_leader_epoch, options_.partition_leader_epoch);
  h[batch_field::magic] = static_cast<uint8_t>(current_magic);
  store_be<int16_t>(h + batch_field::attributes, attrs);
  store_be<int32_t>(h + batch_field::last_offset_delta, count_ - 1);
  store_be<int64_t>(h + batch_field::base_timestamp, base_timestamp_);
  int64_t max_ts = options_.ts_type == timestamp_type::log_append_time ? options_.log_append_time_ms : max_timestamp_;
  store_be<int64_t>(h + batch_field::max_timestamp, max_ts);
  store_be<int64_t>(h + batch_field::producer_id, options_.producer_id);
  store_be<int16_t>(h + batch_field::producer_epoch, options_.producer_epoch);
  store_be<int32_t>(h + batch_field::base_sequence, options_.base_sequence);
  store_be<int32_t>(h + batch_field::records_count, count_);
  store_be<uint32_t>(h + batch_field::crc, crc32c(h + batch_field::attributes, size - batch_field::attributes));
  records_.clear();
  count_ = 0;
  base_timestamp_ = -1;
  max_timestamp_ = -1;
}

}  // namespace gregor::protocol
