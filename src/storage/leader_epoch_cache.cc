#include "storage/leader_epoch_cache.h"

#include <charconv>
#include <sstream>

namespace gregor::storage {

void leader_epoch_cache::assign(int32_t epoch, int64_t start_offset) {
  if (epoch < 0 || start_offset < 0) return;
  if (!entries_.empty()) {
    auto& last = entries_.back();
    if (epoch <= last.epoch) return;                // known already (or older: ignored)
    if (start_offset < last.start_offset) return;   // would break the ordering
    if (start_offset == last.start_offset) {
      // The previous epoch wrote nothing: the new one takes its place.
      last.epoch = epoch;
      changed_ = true;
      return;
    }
  }
  entries_.push_back({epoch, start_offset});
  changed_ = true;
}

void leader_epoch_cache::truncate_from_end(int64_t end_offset) {
  size_t before = entries_.size();
  while (!entries_.empty() && entries_.back().start_offset >= end_offset) entries_.pop_back();
  changed_ = changed_ || entries_.size() != before;
}

void leader_epoch_cache::truncate_from_start(int64_t start_offset) {
  // Keep the last epoch that started at or before start_offset, moved up to it.
  size_t keep_from = 0;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].start_offset <= start_offset) keep_from = i;
  if (entries_.empty() || entries_[0].start_offset >= start_offset) return;
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(keep_from));
  entries_[0].start_offset = start_offset;
  changed_ = true;
}

epoch_end leader_epoch_cache::end_offset_for(int32_t requested_epoch, int64_t log_end_offset) const {
  if (entries_.empty() || requested_epoch < 0) return {};
  if (requested_epoch == entries_.back().epoch) return {requested_epoch, log_end_offset};
  // The first epoch above the one asked for: the epoch before it ends where it starts.
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].epoch > requested_epoch) {
      if (i == 0) return {requested_epoch, entries_[0].start_offset};  // older than anything here
      return {entries_[i - 1].epoch, entries_[i].start_offset};
    }
  }
  // Newer than any epoch this log has seen: nothing is known of it (Kafka
  // answers UNDEFINED too; a follower then keeps its log).
  return {};
}

int32_t leader_epoch_cache::epoch_for(int64_t offset) const {
  int32_t out = -1;
  for (auto& e : entries_) {
    if (e.start_offset > offset) break;
    out = e.epoch;
  }
  return out;
}

int64_t leader_epoch_cache::start_offset_of(int32_t epoch) const {
  for (auto& e : entries_)
    if (e.epoch == epoch) return e.start_offset;
  return -1;
}

std::string leader_epoch_cache::to_checkpoint() {
  // Kafka's CheckpointFile: version, count, then one "epoch offset" per line.
  std::string out = "0\n" + std::to_string(entries_.size()) + "\n";
  for (auto& e : entries_) out += std::to_string(e.epoch) + " " + std::to_string(e.start_offset) + "\n";
  changed_ = false;
  return out;
}

result<leader_epoch_cache> leader_epoch_cache::from_checkpoint(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  auto fail = [](const std::string& why) { return error{"malformed leader-epoch-checkpoint: " + why}; };
  if (!std::getline(in, line) || line != "0") return fail("unknown version '" + line + "'");
  if (!std::getline(in, line)) return fail("no entry count");
  size_t count = 0;
  if (auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), count);
      ec != std::errc{} || p != line.data() + line.size())
    return fail("bad entry count '" + line + "'");
  std::vector<epoch_entry> entries;
  for (size_t i = 0; i < count; ++i) {
    if (!std::getline(in, line)) return fail("expected " + std::to_string(count) + " entries, found " + std::to_string(i));
    epoch_entry e;
    auto sp = line.find(' ');
    if (sp == std::string::npos) return fail("bad entry '" + line + "'");
    auto [p1, ec1] = std::from_chars(line.data(), line.data() + sp, e.epoch);
    auto [p2, ec2] = std::from_chars(line.data() + sp + 1, line.data() + line.size(), e.start_offset);
    if (ec1 != std::errc{} || ec2 != std::errc{} || p1 != line.data() + sp || p2 != line.data() + line.size() ||
        e.epoch < 0 || e.start_offset < 0)
      return fail("bad entry '" + line + "'");
    if (!entries.empty() && (e.epoch <= entries.back().epoch || e.start_offset < entries.back().start_offset))
      return fail("entries out of order at '" + line + "'");
    entries.push_back(e);
  }
  return leader_epoch_cache(std::move(entries));
}

}  // namespace gregor::storage
