#include "client/idempotence.h"

#include <algorithm>
#include <limits>

#include "protocol/errors.h"

namespace gregor::client {

namespace pr = protocol;

int32_t increment_sequence(int32_t sequence, int32_t increment) {
  constexpr int32_t max = std::numeric_limits<int32_t>::max();
  if (sequence > max - increment) return increment - (max - sequence) - 1;
  return sequence + increment;
}

const idempotence_state::partition_entry* idempotence_state::find(const topic_partition& tp) const {
  auto it = partitions_.find(tp);
  return it == partitions_.end() ? nullptr : &it->second;
}

int32_t idempotence_state::next_sequence(const topic_partition& tp) const {
  auto* e = find(tp);
  return e ? e->next_sequence : 0;
}

int32_t idempotence_state::last_acked_sequence(const topic_partition& tp) const {
  auto* e = find(tp);
  return e ? e->last_acked_sequence : -1;
}

int32_t idempotence_state::first_in_flight_sequence(const topic_partition& tp) const {
  auto* e = find(tp);
  return e && !e->in_flight.empty() ? e->in_flight.front()->base_sequence : -1;
}

size_t idempotence_state::in_flight(const topic_partition& tp) const {
  auto* e = find(tp);
  return e ? e->in_flight.size() : 0;
}

void idempotence_state::start_sequences_at_beginning(partition_entry& e) {
  int32_t sequence = 0;
  for (auto* b : e.in_flight) {
    b->id = id_;
    b->base_sequence = sequence;
    b->sequence_reset = true;
    sequence = increment_sequence(sequence, b->record_count);
  }
  e.id = id_;
  e.next_sequence = sequence;
  e.last_acked_sequence = -1;
}

void idempotence_state::set_producer_id(producer_id_and_epoch id) {
  id_ = id;
  for (auto& tp : to_rewrite_) {
    if (auto it = partitions_.find(tp); it != partitions_.end()) start_sequences_at_beginning(it->second);
    unresolved_.erase(tp);
  }
  to_rewrite_.clear();
  bump_required_ = false;
}

void idempotence_state::request_epoch_bump(const topic_partition& tp) {
  bump_required_ = true;
  to_rewrite_.insert(tp);
}

bool idempotence_state::is_next_sequence(const topic_partition& tp, int32_t sequence) const {
  const int32_t last = last_acked_sequence(tp);
  return last < 0 ? sequence == 0 : increment_sequence(last, 1) == sequence;
}

bool idempotence_state::may_drain(const topic_partition& tp, const batch_sequence& b) const {
  if (needs_producer_id()) return false;
  const partition_entry* e = find(tp);
  if (!b.has_sequence()) {
    // A new batch waits while batches under an older id are unacknowledged
    // (it would start at sequence 0 before they complete), and while an
    // expired batch's fate is unknown.
    if (e && !e->in_flight.empty() && !(e->id == id_)) return false;
    if (unresolved_.count(tp)) return false;
    return true;
  }
  // A retry goes only when it is the first unacknowledged batch.
  const int32_t first = first_in_flight_sequence(tp);
  return first < 0 || b.base_sequence == first;
}

void idempotence_state::assign(const topic_partition& tp, batch_sequence& b) {
  auto& e = partitions_[tp];
  if (!(e.id == id_) && e.in_flight.empty()) start_sequences_at_beginning(e);
  b.id = id_;
  b.base_sequence = e.next_sequence;
  b.sequence_reset = false;
  e.next_sequence = increment_sequence(e.next_sequence, b.record_count);
  e.in_flight.push_back(&b);
}

void idempotence_state::remove_in_flight(const topic_partition& tp, const batch_sequence& b) {
  auto it = partitions_.find(tp);
  if (it == partitions_.end()) return;
  auto& v = it->second.in_flight;
  v.erase(std::remove(v.begin(), v.end(), &b), v.end());
}

void idempotence_state::on_acknowledged(const topic_partition& tp, batch_sequence& b, int64_t base_offset) {
  remove_in_flight(tp, b);
  auto it = partitions_.find(tp);
  if (it == partitions_.end() || !(it->second.id == b.id)) return;
  it->second.last_acked_sequence = b.last_sequence();
  if (base_offset >= 0) it->second.last_acked_offset = std::max(it->second.last_acked_offset, base_offset + b.record_count - 1);
}

bool idempotence_state::can_retry(const topic_partition& tp, const batch_sequence& b, int16_t error_code,
                                  int64_t log_start_offset, bool retriable) {
  if (error_code == pr::code(pr::error_code::unknown_producer_id)) {
    // The broker lost this producer's state. Without its log start offset we
    // cannot tell why: retry until it says. A batch already rewritten from 0
    // gets this too while the first one is being fixed: retry as is.
    if (log_start_offset == -1 || b.sequence_reset) return true;
    request_epoch_bump(tp);
    return true;
  }
  if (error_code == pr::code(pr::error_code::out_of_order_sequence_number)) {
    auto u = unresolved_.find(tp);
    const bool unresolved = u != unresolved_.end();
    // Not the next expected batch: an earlier one failed; retry in order.
    if (!unresolved && (b.sequence_reset || !is_next_sequence(tp, b.base_sequence))) return true;
    // The next expected one (or the one right after an expired batch): a real
    // gap. Otherwise wait for the unresolved batch to settle.
    if (!unresolved || u->second == b.base_sequence) request_epoch_bump(tp);
    return true;
  }
  return retriable;
}

void idempotence_state::on_failed(const topic_partition& tp, batch_sequence& b, int16_t error_code,
                                  bool adjust_sequences) {
  remove_in_flight(tp, b);
  if (error_code == pr::code(pr::error_code::out_of_order_sequence_number)) {
    request_epoch_bump(tp);
  } else if (error_code == pr::code(pr::error_code::unknown_producer_id)) {
    // The broker has no state for us here: it accepts sequence 0.
    partitions_.erase(tp);
    unresolved_.erase(tp);
  } else if (adjust_sequences) {
    request_epoch_bump(tp);
  }
}

void idempotence_state::on_expired_in_retry(const topic_partition& tp, const batch_sequence& b) {
  const int32_t next = increment_sequence(b.last_sequence(), 1);
  auto [it, inserted] = unresolved_.emplace(tp, next);
  if (!inserted && it->second < next) it->second = next;
}

void idempotence_state::maybe_resolve_sequences() {
  for (auto it = unresolved_.begin(); it != unresolved_.end();) {
    auto* e = find(it->first);
    if (e && !e->in_flight.empty()) {
      ++it;
      continue;
    }
    // Everything sent has completed: if a later batch was acknowledged, the
    // expired one was written; otherwise nobody knows, and the epoch moves.
    if (e && !is_next_sequence(it->first, e->next_sequence)) request_epoch_bump(it->first);
    it = unresolved_.erase(it);
  }
}

}  // namespace gregor::client
