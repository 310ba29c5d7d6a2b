#include "metadata/quorum.h"

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/clock.h"
#include "runtime/file.h"
#include "storage/log_manager.h"

namespace gregor::metadata {

result<std::unique_ptr<quorum>> quorum::open(const std::string& log_dir, image base, bool recover) {
  auto q = std::unique_ptr<quorum>(new quorum());
  storage::log_config config;
  config.segment_bytes = 1 << 30;
  config.segment_ms = INT64_MAX / 2;  // the metadata log rolls by size only
  auto l = storage::log::open(storage::partition_dir(log_dir, "__cluster_metadata", 0), config, recover,
                              runtime::wall_clock_ms());
  if (!l) return error{"cannot open the metadata log: " + l.err().message};
  q->log_ = std::move(l.value());
  q->image_ = std::make_shared<const image>(std::move(base));
  if (auto r = q->replay(); !r) return r.err();
  return q;
}

result<void> quorum::replay() {
  std::vector<record> records;
  int64_t offset = log_->log_start_offset();
  int64_t last = -1;
  while (offset < log_->log_end_offset()) {
    auto read = log_->read(offset, 1 << 20, true);
    if (!read) return read.err();
    if (read.value().records.empty()) break;
    for (auto& chunk : read.value().records.chunks()) {
      auto data = runtime::read_region(std::get<file_region>(chunk));
      if (!data) return data.err();
      protocol::batch_iterator batches(data.value());
      protocol::batch_header h;
      while (auto batch = batches.next(&h)) {
        auto reader = protocol::record_reader::open(*batch);
        if (!reader) return error{"metadata log batch at offset " + std::to_string(h.base_offset) + ": " + reader.err().message};
        protocol::record_view rv;
        for (;;) {
          auto more = reader.value().next(rv);
          if (!more) return error{"metadata log record: " + more.err().message};
          if (!more.value()) break;
          if (rv.offset < offset || !rv.value) continue;
          auto rec = decode_record(*rv.value);
          if (!rec) return error{"metadata log offset " + std::to_string(rv.offset) + ": " + rec.err().message};
          records.push_back(std::move(rec.value()));
          last = rv.offset;
        }
        offset = h.next_offset();
      }
    }
  }
  if (last >= 0) image_ = std::make_shared<const image>(apply(*image_, records, last));
  log::get("metadata")->info("replayed {} metadata records up to offset {}", records.size(), last);
  return ok();
}

result<void> quorum::commit(const std::vector<record>& records) {
  if (records.empty()) return ok();
  int64_t now = runtime::wall_clock_ms();
  protocol::batch_builder builder;
  std::vector<bytes> values;
  values.reserve(records.size());
  for (auto& r : records) {
    values.push_back(encode_record(r));
    builder.add(now, std::optional<bytes_view>{}, std::optional<bytes_view>{values.back()});
  }
  bytes batch = builder.build();
  auto appended = log_->append(batch, now);
  if (!appended) return appended.err();
  if (auto f = log_->flush(); !f) return f.err();
  image_ = std::make_shared<const image>(apply(*image_, records, appended.value().last_offset));
  return ok();
}

void quorum::close() {
  if (!log_) return;
  if (auto r = log_->close(); !r) log::get("metadata")->error("closing the metadata log: {}", r.err().message);
  log_.reset();
}

}  // namespace gregor::metadata
