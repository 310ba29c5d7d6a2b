#include "storage/producer_state.h"

#include <limits>

#include <fmt/format.h>

#include "base/crc32c.h"

namespace gregor::storage {

using protocol::batch_header;

namespace {

constexpr int16_t kSnapshotVersion = 1;
constexpr size_t kCrcAt = 2;
constexpr size_t kEntriesAt = 6;
constexpr size_t kEntrySize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

// Kafka's inSequence: the next sequence after INT32_MAX is 0.
bool in_sequence(int32_t last, int32_t next) {
  return static_cast<int64_t>(next) == static_cast<int64_t>(last) + 1 ||
         (next == 0 && last == std::numeric_limits<int32_t>::max());
}

// The first sequence of a batch from its last one (DefaultRecordBatch.decrementSequence).
int32_t first_sequence_of(int32_t last, int32_t delta) {
  if (last < delta) return std::numeric_limits<int32_t>::max() - (delta - last) + 1;
  return last - delta;
}

}  // namespace

const producer_entry* producer_state::find(int64_t producer_id) const {
  auto it = producers_.find(producer_id);
  return it == producers_.end() ? nullptr : &it->second;
}

sequence_check producer_state::check(const batch_header& h) const {
  sequence_check c;
  if (!h.has_producer_id()) return c;
  const producer_entry* e = find(h.producer_id);
  // A producer this partition has no state for (new, expired, or its batches
  // deleted): any sequence is accepted, as Kafka does since KIP-360.
  if (!e || e->epoch < 0) return c;
  int32_t last_seq = h.last_sequence();
  if (h.producer_epoch == e->epoch) {
    for (auto& b : e->batches) {
      if (b.first_sequence == h.base_sequence && b.last_sequence == last_seq) {
        c.verdict = sequence_verdict::duplicate;
        c.original = b;
        return c;
      }
    }
  }
  if (h.producer_epoch < e->epoch) return check_epoch(h.producer_id, h.producer_epoch);
  if (h.producer_epoch > e->epoch) {
    if (h.base_sequence != 0) {
      c.verdict = sequence_verdict::out_of_order;
      c.message = fmt::format("Invalid sequence number for new epoch of producer {}: {} (request epoch), {} (seq. number), "
                              "{} (current producer epoch)",
                              h.producer_id, h.producer_epoch, h.base_sequence, e->epoch);
    }
    return c;
  }
  if (!in_sequence(e->last_sequence(), h.base_sequence)) {
    c.verdict = sequence_verdict::out_of_order;
    c.message = fmt::format("Out of order sequence number for producer {}: {} (incoming seq. number), {} (current end "
                            "sequence number)",
                            h.producer_id, h.base_sequence, e->last_sequence());
  }
  return c;
}

std::optional<completed_txn> producer_state::update(const batch_header& h, const txn_marker* marker) {
  map_end_offset_ = std::max(map_end_offset_, h.next_offset());
  if (!h.has_producer_id()) return std::nullopt;
  auto& e = producers_[h.producer_id];
  e.producer_id = h.producer_id;
  if (h.producer_epoch != e.epoch) {
    e.epoch = h.producer_epoch;
    e.batches.clear();
  }
  e.last_timestamp = h.max_timestamp;
  if (h.is_control()) {
    // The marker closes the transaction; the batches kept for duplicate
    // detection stay. A verification taken before it is void.
    verification_guards_.erase(h.producer_id);
    std::optional<completed_txn> done;
    if (marker) e.coordinator_epoch = marker->coordinator_epoch;
    if (e.current_txn_first_offset >= 0) {
      done = completed_txn{h.producer_id, e.current_txn_first_offset, h.base_offset, !marker || !marker->commit};
      open_txns_.erase(e.current_txn_first_offset);
      unreplicated_txns_[done->first_offset] = *done;
      e.current_txn_first_offset = -1;
    }
    return done;
  }
  if (h.is_transactional() && e.current_txn_first_offset < 0) {
    e.current_txn_first_offset = h.base_offset;
    open_txns_[h.base_offset] = h.producer_id;
    verification_guards_.erase(h.producer_id);  // used: the transaction is open now
  }
  e.batches.push_back({h.base_sequence, h.last_sequence(), h.base_offset, h.last_offset(), h.max_timestamp});
  while (e.batches.size() > kProducerBatchesKept) e.batches.pop_front();
  return std::nullopt;
}

sequence_check producer_state::check_epoch(int64_t producer_id, int16_t producer_epoch) const {
  sequence_check c;
  const producer_entry* e = find(producer_id);
  if (e && producer_epoch < e->epoch) {
    c.verdict = sequence_verdict::invalid_epoch;
    c.message = fmt::format("Epoch of producer {} is {}, which is smaller than the last seen epoch {}", producer_id,
                            producer_epoch, e->epoch);
  }
  return c;
}

sequence_check producer_state::check_marker(int64_t producer_id, int16_t producer_epoch,
                                            int32_t coordinator_epoch) const {
  sequence_check c = check_epoch(producer_id, producer_epoch);
  const producer_entry* e = find(producer_id);
  if (!e || c.verdict != sequence_verdict::ok) return c;
  if (coordinator_epoch < e->coordinator_epoch) {
    c.verdict = sequence_verdict::coordinator_fenced;
    c.message = fmt::format("Marker of producer {} from coordinator epoch {}, below the last seen {}", producer_id,
                            coordinator_epoch, e->coordinator_epoch);
  }
  return c;
}

std::optional<int64_t> producer_state::first_unstable_offset() const {
  std::optional<int64_t> first;
  if (!open_txns_.empty()) first = open_txns_.begin()->first;
  if (!unreplicated_txns_.empty() && (!first || unreplicated_txns_.begin()->first < *first))
    first = unreplicated_txns_.begin()->first;
  return first;
}

void producer_state::on_high_watermark(int64_t high_watermark) {
  for (auto it = unreplicated_txns_.begin(); it != unreplicated_txns_.end();)
    it = it->second.last_offset < high_watermark ? unreplicated_txns_.erase(it) : std::next(it);
}

int64_t producer_state::last_stable_offset_after(const completed_txn& txn) const {
  for (auto& [first, pid] : open_txns_)
    if (pid != txn.producer_id) return first;
  return txn.last_offset + 1;
}

bool producer_state::has_open_transaction(int64_t producer_id) const {
  const producer_entry* e = find(producer_id);
  return e && e->current_txn_first_offset >= 0;
}

uint64_t producer_state::begin_verification(int64_t producer_id, int64_t now_ms) {
  auto [it, added] = verification_guards_.try_emplace(producer_id, verification_guard{next_guard_, now_ms});
  if (added) ++next_guard_;
  return it->second.guard;
}

bool producer_state::verification_holds(int64_t producer_id, uint64_t guard) const {
  auto it = verification_guards_.find(producer_id);
  return guard != 0 && it != verification_guards_.end() && it->second.guard == guard;
}

void producer_state::rebuild_open_transactions() {
  open_txns_.clear();
  unreplicated_txns_.clear();
  for (auto& [id, e] : producers_)
    if (e.current_txn_first_offset >= 0) open_txns_[e.current_txn_first_offset] = id;
}

void producer_state::clear(int64_t map_end_offset) {
  producers_.clear();
  open_txns_.clear();
  unreplicated_txns_.clear();
  verification_guards_.clear();
  map_end_offset_ = map_end_offset;
}

std::optional<txn_marker> parse_txn_marker(bytes_view batch) {
  auto reader = protocol::record_reader::open(batch);
  if (!reader || !reader->header().is_control()) return std::nullopt;
  protocol::record_view rv;
  auto more = reader->next(rv);
  if (!more || !more.value() || !rv.key || rv.key->size() < 4) return std::nullopt;
  int16_t type = load_be<int16_t>(rv.key->data() + 2);
  if (type != 0 && type != 1) return std::nullopt;
  txn_marker m;
  m.commit = type == 1;
  if (rv.value && rv.value->size() >= 6) m.coordinator_epoch = load_be<int32_t>(rv.value->data() + 2);
  return m;
}

bytes build_txn_marker_batch(int64_t producer_id, int16_t producer_epoch, const txn_marker& marker, int64_t timestamp) {
  protocol::batch_builder_options o;
  o.producer_id = producer_id;
  o.producer_epoch = producer_epoch;
  o.transactional = true;
  o.control = true;
  bytes key, value;
  append_be<int16_t>(key, 0);
  append_be<int16_t>(key, marker.commit ? 1 : 0);
  append_be<int16_t>(value, 0);
  append_be<int32_t>(value, marker.coordinator_epoch);
  protocol::batch_builder b(o);
  b.add(timestamp, std::optional<bytes_view>(key), std::optional<bytes_view>(value));
  return b.build();
}

size_t producer_state::remove_expired(int64_t now_ms, int64_t expiration_ms) {
  // A producer with an open transaction never expires (its timeout is the
  // coordinator's business), as in Kafka.
  size_t n = 0;
  for (auto it = producers_.begin(); it != producers_.end();) {
    const auto& e = it->second;
    if (e.current_txn_first_offset < 0 && now_ms - e.last_timestamp >= expiration_ms) {
      it = producers_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  std::erase_if(verification_guards_,
                [&](const auto& g) { return now_ms - g.second.created_ms >= expiration_ms; });
  return n;
}

std::string producer_state::to_snapshot() const {
  bytes out;
  out.reserve(kEntriesAt + 4 + producers_.size() * kEntrySize);
  append_be<int16_t>(out, kSnapshotVersion);
  append_be<uint32_t>(out, 0);  // the CRC, filled in below
  append_be<int32_t>(out, static_cast<int32_t>(producers_.size()));
  for (auto& [id, e] : producers_) {
    const producer_batch* last = e.batches.empty() ? nullptr : &e.batches.back();
    append_be<int64_t>(out, id);
    append_be<int16_t>(out, e.epoch);
    append_be<int32_t>(out, last ? last->last_sequence : -1);
    append_be<int64_t>(out, last ? last->last_offset : -1);
    append_be<int32_t>(out, last ? static_cast<int32_t>(last->last_offset - last->first_offset) : 0);
    append_be<int64_t>(out, e.last_timestamp);
    append_be<int32_t>(out, e.coordinator_epoch);
    append_be<int64_t>(out, e.current_txn_first_offset);
  }
  store_be<uint32_t>(out.data() + kCrcAt, crc32c(out.data() + kEntriesAt, out.size() - kEntriesAt));
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

result<producer_state> producer_state::from_snapshot(std::string_view data, int64_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() < kEntriesAt + 4) return error{fmt::format("snapshot of {} bytes is too short", data.size())};
  int16_t version = load_be<int16_t>(p);
  if (version != kSnapshotVersion)
    return error{fmt::format("snapshot version {} is not {}", version, kSnapshotVersion)};
  uint32_t crc = load_be<uint32_t>(p + kCrcAt);
  uint32_t actual = crc32c(p + kEntriesAt, data.size() - kEntriesAt);
  if (crc != actual) return error{fmt::format("snapshot CRC {:#x} does not match its content ({:#x})", crc, actual)};
  int32_t count = load_be<int32_t>(p + kEntriesAt);
  if (count < 0 || data.size() != kEntriesAt + 4 + static_cast<size_t>(count) * kEntrySize)
    return error{fmt::format("snapshot of {} bytes does not hold {} entries", data.size(), count)};
  producer_state s;
  s.map_end_offset_ = offset;
  const uint8_t* q = p + kEntriesAt + 4;
  for (int32_t i = 0; i < count; ++i, q += kEntrySize) {
    producer_entry e;
    e.producer_id = load_be<int64_t>(q);
    e.epoch = load_be<int16_t>(q + 8);
    int32_t last_seq = load_be<int32_t>(q + 10);
    int64_t last_offset = load_be<int64_t>(q + 14);
    int32_t delta = load_be<int32_t>(q + 22);
    e.last_timestamp = load_be<int64_t>(q + 26);
    e.coordinator_epoch = load_be<int32_t>(q + 34);
    e.current_txn_first_offset = load_be<int64_t>(q + 38);
    if (last_offset >= 0 && last_seq >= 0 && delta >= 0)
      e.batches.push_back({first_sequence_of(last_seq, delta), last_seq, last_offset - delta, last_offset, e.last_timestamp});
    s.producers_[e.producer_id] = std::move(e);
  }
  s.rebuild_open_transactions();
  return s;
}

}  // namespace gregor::storage
