#include "metadata/loader.h"

#include "base/log.h"
#include "protocol/record_batch.h"

namespace gregor::metadata {

namespace {

auto lg() { return log::get("metadata"); }

bytes encode_message(const auto& m, int16_t version) {
  iobuf buf;
  protocol::wire_writer w(buf);
  m.encode(w, version);
  bytes out;
  for (auto& c : buf.chunks()) {
    auto& b = std::get<bytes>(c);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

void add_control(bytes& out, raft::control_type type, bytes value, int64_t base_offset, int64_t ts) {
  protocol::batch_builder_options o;
  o.control = true;
  o.base_offset = base_offset;
  protocol::batch_builder b(o);
  bytes key(4);
  store_be<int16_t>(key.data(), 0);
  store_be<int16_t>(key.data() + 2, static_cast<int16_t>(type));
  b.add(ts, std::optional<bytes_view>(bytes_view(key)), std::optional<bytes_view>(bytes_view(value)));
  b.build_into(out);
}

// Applies the records of the batches in `data` (from offset `from` on) to
// `img`; returns the offset after the last batch read.
result<int64_t> apply_batches(image& img, bytes_view data, int64_t from, int64_t& last_timestamp) {
  protocol::batch_iterator batches(data);
  protocol::batch_header h;
  std::vector<record> records;
  int64_t next = from;
  int64_t last = -1;
  while (auto batch = batches.next(&h)) {
    next = h.next_offset();
    last_timestamp = std::max(last_timestamp, h.max_timestamp);
    if (h.is_control()) {
      last = h.last_offset();
      continue;
    }
    auto reader = protocol::record_reader::open(*batch);
    if (!reader)
      return error{"metadata log batch at offset " + std::to_string(h.base_offset) + ": " + reader.err().message};
    protocol::record_view rv;
    for (;;) {
      auto more = reader.value().next(rv);
      if (!more) return error{"metadata log record: " + more.err().message};
      if (!more.value()) break;
      if (rv.offset < from || !rv.value) continue;
      auto rec = decode_record(*rv.value);
      if (!rec) return error{"metadata log offset " + std::to_string(rv.offset) + ": " + rec.err().message};
      records.push_back(std::move(rec.value()));
    }
    last = h.last_offset();
  }
  if (last >= 0) img = apply(img, records, last);
  return next;
}

}  // namespace

loader::loader(raft::driver& quorum, image base, snapshot_policy policy)
    : quorum_(quorum), base_(std::move(base)), policy_(policy), image_(std::make_shared<const image>(base_)) {}

result<void> loader::start() {
  snapshot_installs_seen_ = quorum_.snapshot_installs();
  if (auto s = quorum_.log().latest_snapshot()) return load_snapshot(*s);
  applied_ = quorum_.log().log_start_offset();
  return ok();
}

result<void> loader::load_snapshot(const raft::snapshot_id& id) {
  auto size = quorum_.log().snapshot_size(id);
  if (!size) return size.err();
  auto content = quorum_.log().read_snapshot(id, 0, static_cast<int32_t>(size.value()));
  if (!content) return content.err();
  auto img = decode_snapshot(base_, content.value(), id.end_offset);
  if (!img) return error{"snapshot " + raft::raft_log::snapshot_file_name(id) + ": " + img.err().message};
  image_ = std::make_shared<const image>(std::move(img.value()));
  applied_ = id.end_offset;
  last_snapshot_offset_ = id.end_offset;
  bytes_since_snapshot_ = 0;
  lg()->info("loaded the metadata snapshot up to offset {} ({} brokers, {} topics)", id.end_offset,
             image_->brokers.size(), image_->topics.size());
  return ok();
}

result<bool> loader::catch_up(int64_t now_ms) {
  bool changed = false;
  if (quorum_.snapshot_installs() != snapshot_installs_seen_) {
    // The leader's snapshot replaced our log: start over from it.
    snapshot_installs_seen_ = quorum_.snapshot_installs();
    if (auto s = quorum_.log().latest_snapshot()) {
      if (auto r = load_snapshot(*s); !r) return r.err();
      changed = true;
    }
  }
  if (last_snapshot_ms_ < 0) last_snapshot_ms_ = now_ms;
  for (;;) {
    int64_t hw = quorum_.high_watermark();
    if (hw <= applied_) break;
    if (applied_ < quorum_.log().log_start_offset()) {
      // Below the log start only a snapshot has what we miss.
      auto s = quorum_.log().latest_snapshot();
      if (!s) return error{"the metadata log starts at " + std::to_string(quorum_.log().log_start_offset()) +
                           " but no snapshot covers offset " + std::to_string(applied_)};
      if (auto r = load_snapshot(*s); !r) return r.err();
      changed = true;
      continue;
    }
    auto data = quorum_.read_committed(applied_, 1 << 20);
    if (!data) return data.err();
    if (data.value().empty()) break;
    image next = *image_;
    auto after = apply_batches(next, data.value(), applied_, last_batch_timestamp_);
    if (!after) return after.err();
    if (after.value() <= applied_) break;
    bytes_since_snapshot_ += static_cast<int64_t>(data.value().size());
    applied_ = after.value();
    next.last_offset = applied_ - 1;
    image_ = std::make_shared<const image>(std::move(next));
    changed = true;
  }
  return changed;
}

result<void> loader::maybe_snapshot(int64_t now_ms) {
  if (applied_ <= last_snapshot_offset_) return ok();
  bool due = bytes_since_snapshot_ >= policy_.max_record_bytes_between ||
             (last_snapshot_ms_ >= 0 && now_ms - last_snapshot_ms_ >= policy_.max_interval_ms);
  if (!due) return ok();
  return snapshot_now(now_ms);
}

result<void> loader::snapshot_now(int64_t now_ms) {
  if (applied_ <= 0 || applied_ <= last_snapshot_offset_) return ok();
  raft::offset_and_epoch id{applied_, quorum_.state().epoch_at(applied_ - 1)};
  auto content = encode_snapshot(*image_, last_batch_timestamp_);
  if (auto r = quorum_.snapshot_written(id, content); !r) return error{"cannot write a metadata snapshot: " + r.err().message};
  lg()->info("wrote a metadata snapshot up to offset {} ({} bytes)", applied_, content.size());
  last_snapshot_offset_ = applied_;
  last_snapshot_ms_ = now_ms;
  bytes_since_snapshot_ = 0;
  return ok();
}

bytes loader::encode_snapshot(const image& img, int64_t last_timestamp_ms) {
  bytes out;
  int64_t offset = 0;
  protocol::snapshot_header_record header;
  header.version = 0;
  header.last_contained_log_timestamp = last_timestamp_ms;
  add_control(out, raft::control_type::snapshot_header, encode_message(header, 0), offset++, last_timestamp_ms);
  auto records = image_records(img);
  // Batches of at most 1000 records, as Kafka's snapshot writer makes them small.
  for (size_t i = 0; i < records.size(); i += 1000) {
    protocol::batch_builder_options o;
    o.base_offset = offset;
    protocol::batch_builder b(o);
    std::vector<bytes> values;
    for (size_t j = i; j < std::min(records.size(), i + 1000); ++j) values.push_back(encode_record(records[j]));
    for (auto& v : values) b.add(last_timestamp_ms, std::optional<bytes_view>{}, std::optional<bytes_view>{bytes_view(v)});
    offset += static_cast<int64_t>(values.size());
    b.build_into(out);
  }
  protocol::snapshot_footer_record footer;
  footer.version = 0;
  add_control(out, raft::control_type::snapshot_footer, encode_message(footer, 0), offset, last_timestamp_ms);
  return out;
}

result<image> loader::decode_snapshot(const image& base, bytes_view content, int64_t end_offset) {
  image img = base;
  img.brokers.clear();
  img.topics.clear();
  img.broker_configs.clear();
  img.features.clear();
  protocol::batch_iterator batches(content);
  protocol::batch_header h;
  std::vector<record> records;
  bool footer = false;
  while (auto batch = batches.next(&h)) {
    if (h.is_control()) {
      auto reader = protocol::record_reader::open(*batch);
      if (!reader) return error{"unreadable control batch: " + reader.err().message};
      protocol::record_view rv;
      for (;;) {
        auto more = reader.value().next(rv);
        if (!more || !more.value()) break;
        if (rv.key && rv.key->size() >= 4 &&
            load_be<int16_t>(rv.key->data() + 2) == static_cast<int16_t>(raft::control_type::snapshot_footer))
          footer = true;
      }
      continue;
    }
    auto reader = protocol::record_reader::open(*batch);
    if (!reader) return error{"unreadable batch: " + reader.err().message};
    protocol::record_view rv;
    for (;;) {
      auto more = reader.value().next(rv);
      if (!more) return error{more.err().message};
      if (!more.value()) break;
      if (!rv.value) continue;
      auto rec = decode_record(*rv.value);
      if (!rec) return rec.err();
      records.push_back(std::move(rec.value()));
    }
  }
  if (!footer) return error{"the snapshot has no footer: it is incomplete"};
  return apply(img, records, end_offset - 1);
}

}  // namespace gregor::metadata
