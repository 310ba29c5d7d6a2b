#include "raft/raft_log.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/file.h"
#include "storage/log_manager.h"

namespace gregor::raft {

namespace {
constexpr const char* kTopic = "__cluster_metadata";
constexpr const char* kSnapshotSuffix = ".checkpoint";
constexpr const char* kPartialSuffix = ".checkpoint.part";

// The metadata log rolls by size only, like Kafka's (metadata.log.segment.bytes).
storage::log_config metadata_log_config() {
  storage::log_config c;
  c.segment_bytes = 1 << 30;
  c.segment_ms = INT64_MAX / 2;
  return c;
}

// Parses "<20 digits>-<10 digits>.checkpoint".
std::optional<snapshot_id> parse_snapshot_name(const std::string& name) {
  if (name.size() != 20 + 1 + 10 + std::string(kSnapshotSuffix).size()) return std::nullopt;
  if (name.compare(31, std::string::npos, kSnapshotSuffix) != 0 || name[20] != '-') return std::nullopt;
  for (size_t i = 0; i < 31; ++i)
    if (i != 20 && (name[i] < '0' || name[i] > '9')) return std::nullopt;
  return snapshot_id{std::stoll(name.substr(0, 20)), std::stoi(name.substr(21, 10))};
}

bytes control_key(control_type type) {
  bytes k(4);
  store_be<int16_t>(k.data(), 0);  // version
  store_be<int16_t>(k.data() + 2, static_cast<int16_t>(type));
  return k;
}
}  // namespace

std::string raft_log::partition_dir(const std::string& metadata_log_dir) {
  return storage::partition_dir(metadata_log_dir, kTopic, 0);
}

result<std::unique_ptr<raft_log>> raft_log::open(const std::string& metadata_log_dir, bool recover, int64_t now_ms) {
  auto dir = partition_dir(metadata_log_dir);
  auto l = storage::log::open(dir, metadata_log_config(), recover, now_ms);
  if (!l) return error{"cannot open the metadata log: " + l.err().message};
  auto out = std::unique_ptr<raft_log>(new raft_log(dir, std::move(l.value())));
  if (auto r = out->scan_snapshots(); !r) return r.err();
  if (auto r = out->truncate_to_latest_snapshot(); !r) return r.err();
  if (auto r = out->rebuild_epochs(); !r) return r.err();
  return out;
}

result<void> raft_log::truncate_to_latest_snapshot() {
  // As Kafka's KafkaMetadataLog.truncateToLatestSnapshot: a snapshot of a
  // later epoch than the log's last batch, or of the same epoch past its end,
  // replaces the whole log. Installing the leader's snapshot makes the
  // snapshot durable first and then drops the log; a crash between the two
  // (or one that undoes the unsynced deletes) leaves the older log's batches
  // beside a snapshot that says they are committed (the simulation's seed
  // 8612: an old leader's uncommitted epoch-1 batch at an offset the new
  // leader had committed in epoch 2).
  auto s = latest_snapshot();
  if (!s) return ok();
  auto& entries = log_->leader_epochs().entries();
  int32_t log_epoch = entries.empty() ? 0 : entries.back().epoch;
  if (s->epoch > log_epoch || (s->epoch == log_epoch && s->end_offset > log_->log_end_offset())) {
    log::get("raft")->info("the snapshot up to offset {} (epoch {}) is newer than the metadata log (last epoch {}, "
                           "end {}): starting the log at the snapshot",
                           s->end_offset, s->epoch, log_epoch, log_->log_end_offset());
    return log_->truncate_fully_and_start_at(s->end_offset);
  }
  return ok();
}

raft_log::~raft_log() {
  if (log_) (void)close();
}

result<void> raft_log::close() {
  if (!log_) return ok();
  auto r = log_->close();
  log_.reset();
  return r;
}

result<void> raft_log::scan_snapshots() {
  auto names = runtime::fs::list_dir(dir_);
  if (!names) return names.err();
  snapshots_.clear();
  for (auto& n : names.value()) {
    if (n.size() > std::string(kPartialSuffix).size() &&
        n.compare(n.size() - std::string(kPartialSuffix).size(), std::string::npos, kPartialSuffix) == 0) {
      // A download that did not finish.
      if (auto r = runtime::fs::remove(dir_ + "/" + n); !r) return r;
      continue;
    }
    if (auto id = parse_snapshot_name(n)) snapshots_.push_back(*id);
  }
  std::sort(snapshots_.begin(), snapshots_.end());
  return ok();
}

result<void> raft_log::rebuild_epochs() {
  // storage::log keeps the epochs of its batches (leader-epoch-checkpoint):
  // start from them instead of reading the whole log again.
  epochs_.clear();
  for (auto& e : log_->leader_epochs().entries()) epochs_.push_back({e.epoch, e.start_offset});
  // A snapshot stands for the offsets below it that the log no longer has.
  if (auto s = latest_snapshot(); s && s->end_offset > 0) {
    int64_t last = s->end_offset - 1;
    if (epochs_.empty() || (epochs_.front().start_offset > last && epochs_.front().epoch >= s->epoch))
      epochs_.insert(epochs_.begin(), epoch_start{s->epoch, last});
  }
  return ok();
}

void raft_log::note_epoch(int32_t epoch, int64_t offset) {
  if (!epochs_.empty() && epochs_.back().epoch >= epoch) return;
  epochs_.push_back({epoch, offset});
}

void raft_log::forget_epochs_from(int64_t offset) {
  while (!epochs_.empty() && epochs_.back().start_offset >= offset) epochs_.pop_back();
}

int32_t raft_log::last_epoch() const { return epochs_.empty() ? 0 : epochs_.back().epoch; }

std::optional<snapshot_id> raft_log::latest_snapshot() const {
  if (snapshots_.empty()) return std::nullopt;
  return snapshots_.back();
}

result<int64_t> raft_log::append_records(int32_t epoch, const std::vector<bytes>& values, int64_t now_ms) {
  protocol::batch_builder builder;
  for (auto& v : values) builder.add(now_ms, std::optional<bytes_view>{}, std::optional<bytes_view>{bytes_view(v)});
  bytes batch = builder.build();
  int64_t base = log_->log_end_offset();
  auto r = log_->append(batch, now_ms, epoch);
  if (!r) return r.err();
  note_epoch(epoch, base);
  return r.value().last_offset;
}

result<int64_t> raft_log::append_control(int32_t epoch, control_type type, bytes value, int64_t now_ms) {
  protocol::batch_builder_options o;
  o.control = true;
  protocol::batch_builder builder(o);
  bytes key = control_key(type);
  builder.add(now_ms, std::optional<bytes_view>(bytes_view(key)), std::optional<bytes_view>(bytes_view(value)));
  bytes batch = builder.build();
  int64_t base = log_->log_end_offset();
  auto r = log_->append(batch, now_ms, epoch);
  if (!r) return r.err();
  note_epoch(epoch, base);
  return r.value().last_offset;
}

result<void> raft_log::append_as_follower(bytes_view batches, int64_t now_ms) {
  protocol::batch_iterator it{batches};
  protocol::batch_header h;
  std::vector<epoch_start> seen;
  while (it.next(&h)) seen.push_back({std::max(h.partition_leader_epoch, 0), h.base_offset});
  auto r = log_->append_as_follower(batches, now_ms);
  if (!r) return r.err();
  for (auto& e : seen) note_epoch(e.epoch, e.start_offset);
  return ok();
}

result<void> raft_log::truncate_to(int64_t offset) {
  if (offset >= log_->log_end_offset()) return ok();
  if (auto r = log_->truncate_to(offset); !r) return r;
  forget_epochs_from(log_->log_end_offset());
  return ok();
}

result<void> raft_log::flush() { return log_->flush(); }

result<bytes> raft_log::read(int64_t offset, int32_t max_bytes, int64_t max_offset) const {
  auto r = log_->read(offset, max_bytes, true, max_offset);
  if (!r) return r.err();
  bytes out;
  for (auto& c : r.value().records.chunks()) {
    if (auto* b = std::get_if<bytes>(&c)) {
      out.insert(out.end(), b->begin(), b->end());
      continue;
    }
    auto data = runtime::read_region(std::get<file_region>(c));
    if (!data) return data.err();
    out.insert(out.end(), data.value().begin(), data.value().end());
  }
  return out;
}

// ---- snapshots

std::string raft_log::snapshot_file_name(snapshot_id id) {
  return fmt::format("{:020d}-{:010d}{}", id.end_offset, id.epoch, kSnapshotSuffix);
}

std::string raft_log::snapshot_path(snapshot_id id) const { return dir_ + "/" + snapshot_file_name(id); }

result<void> raft_log::write_snapshot(snapshot_id id, bytes_view batches) {
  if (std::find(snapshots_.begin(), snapshots_.end(), id) != snapshots_.end()) return ok();
  if (auto r = runtime::fs::write_file_atomic(snapshot_path(id), as_string(batches)); !r) return r;
  snapshots_.push_back(id);
  std::sort(snapshots_.begin(), snapshots_.end());
  return ok();
}

result<int64_t> raft_log::snapshot_size(snapshot_id id) const {
  auto f = runtime::file::open(snapshot_path(id), runtime::file::mode::read_only);
  if (!f) return f.err();
  return static_cast<int64_t>(f.value()->size());
}

result<bytes> raft_log::read_snapshot(snapshot_id id, int64_t position, int32_t max_bytes) const {
  auto f = runtime::file::open(snapshot_path(id), runtime::file::mode::read_only);
  if (!f) return f.err();
  bytes out(static_cast<size_t>(std::max(0, max_bytes)));
  auto n = f.value()->pread(static_cast<uint64_t>(position), out.data(), out.size());
  if (!n) return n.err();
  out.resize(n.value());
  return out;
}

result<void> raft_log::write_snapshot_chunk(snapshot_id id, int64_t position, bytes_view data) {
  auto path = snapshot_path(id) + ".part";
  if (position == 0 && runtime::fs::exists(path))
    if (auto r = runtime::fs::remove(path); !r) return r;
  auto f = runtime::file::open(path, runtime::file::mode::read_write_create);
  if (!f) return f.err();
  if (static_cast<int64_t>(f.value()->size()) != position)
    return error{fmt::format("snapshot chunk at {} does not follow the {} bytes received", position, f.value()->size())};
  return f.value()->pwrite(static_cast<uint64_t>(position), data);
}

result<void> raft_log::install_snapshot(snapshot_id id, int64_t now_ms) {
  auto part = snapshot_path(id) + ".part";
  {
    auto f = runtime::file::open(part, runtime::file::mode::read_write_create);
    if (!f) return f.err();
    if (auto r = f.value()->sync(); !r) return r;
  }
  if (auto r = runtime::fs::rename(part, snapshot_path(id)); !r) return r;
  if (auto r = runtime::fs::sync_dir(dir_); !r) return r;
  if (std::find(snapshots_.begin(), snapshots_.end(), id) == snapshots_.end()) snapshots_.push_back(id);
  std::sort(snapshots_.begin(), snapshots_.end());
  (void)now_ms;
  if (auto r = log_->truncate_fully_and_start_at(id.end_offset); !r) return r;
  epochs_.clear();
  note_epoch(id.epoch, std::max<int64_t>(id.end_offset - 1, 0));
  return delete_before(id);
}

result<void> raft_log::delete_before(snapshot_id id) {
  int64_t target = std::min(id.end_offset, log_->log_end_offset());
  if (target > log_->log_start_offset())
    if (auto r = log_->advance_log_start_offset(target); !r) return r;
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    if (*it < id) {
      if (auto r = runtime::fs::remove(snapshot_path(*it)); !r) return r;
      it = snapshots_.erase(it);
    } else {
      ++it;
    }
  }
  return ok();
}

}  // namespace gregor::raft
