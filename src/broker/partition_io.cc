#include "broker/partition_io.h"

#include <algorithm>
#include <limits>

#include "broker/broker.h"
#include "protocol/record_batch.h"
#include "replication/divergence.h"
#include "runtime/backend.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
int32_t max_message_bytes(const broker_config& c, const std::map<std::string, std::string>& topic) {
  auto it = topic.find("max.message.bytes");
  return it == topic.end() ? c.message_max_bytes : static_cast<int32_t>(std::stol(it->second));
}

int64_t topic_i64(const std::map<std::string, std::string>& topic, const char* key, int64_t def) {
  auto it = topic.find(key);
  return it == topic.end() ? def : std::stoll(it->second);
}

// Record-level checks Kafka's LogValidator makes beyond the batch format:
// keyless records on compacted topics (INVALID_RECORD) and CreateTime
// timestamps outside message.timestamp.before/after.max.ms (INVALID_TIMESTAMP).
void check_records(const broker_config& eff, const std::string& topic, int32_t partition,
                   const std::map<std::string, std::string>& tc, bytes_view records, int64_t now, append_work& w) {
  auto policy = tc.find("cleanup.policy");
  bool compacted = (policy == tc.end() ? eff.log_cleanup_policy : policy->second).find("compact") != std::string::npos;
  auto tt = tc.find("message.timestamp.type");
  bool log_append_time = (tt == tc.end() ? eff.log_message_timestamp_type : tt->second) == "LogAppendTime";
  int64_t before = topic_i64(tc, "message.timestamp.before.max.ms", eff.log_message_timestamp_before_max_ms);
  int64_t after = topic_i64(tc, "message.timestamp.after.max.ms", eff.log_message_timestamp_after_max_ms);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  bool check_ts = !log_append_time && (before != kMax || after != kMax);
  if (!compacted && !check_ts) return;
  int64_t lo = before >= now ? std::numeric_limits<int64_t>::min() : now - before;
  int64_t hi = after >= kMax - now ? kMax : now + after;
  protocol::batch_iterator it(records);
  while (auto batch = it.next()) {
    auto rr = protocol::record_reader::open(*batch);
    if (!rr) return;  // validation already passed; nothing more to say
    protocol::record_view rv;
    int32_t i = 0;
    while (true) {
      auto more = rr->next(rv);
      if (!more || !more.value()) break;
      if (compacted && !rv.key) {
        w.result.error = error_code::invalid_record;
        w.result.message = "Compacted topic cannot accept message without key in topic partition " + topic + "-" +
                           std::to_string(partition) + ".";
        return;
      }
      if (check_ts && (rv.timestamp < lo || rv.timestamp > hi)) {
        w.result.error = error_code::invalid_timestamp;
        w.result.message = "Timestamp " + std::to_string(rv.timestamp) + " of message with offset " +
                           std::to_string(i) + " is out of range. The timestamp should be within [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]";
        return;
      }
      ++i;
    }
  }
}
}  // namespace

namespace {
// Appends batches to a partition this broker leads and fills w's result: the
// offsets, and with acks=all what to wait for. Returns whether it appended;
// `hw_moved` tells whether the high watermark moved (a leader alone in its ISR).
bool append_as_leader(storage::log& log, replication::leader_state& leader, std::span<uint8_t> batches, int64_t now,
                      int16_t acks, append_work& w, bool& hw_moved) {
  int64_t leo_before = log.log_end_offset();
  auto r = log.append(batches, now, leader.leader_epoch());
  if (!r && log.log_end_offset() != leo_before) halt_on_log_failure(log.dir(), r.err().message);
  if (!r) {
    w.result.error = error_code::kafka_storage_error;
    w.result.message = r.err().message;
    return false;
  }
  w.result.base_offset = r.value().base_offset;
  w.result.log_append_time_ms = r.value().log_append_time_ms;
  w.result.log_start_offset = r.value().log_start_offset;
  hw_moved |= leader.on_append(log.log_end_offset());
  if (acks == -1) {
    w.result.required_offset = log.log_end_offset();
    w.result.leader_epoch = leader.leader_epoch();
    w.result.waiting = true;
  }
  return true;
}
}  // namespace

size_t begin_verification_here(broker& b, std::vector<append_work>& work) {
  size_t n = 0;
  int64_t now = runtime::wall_clock_ms();
  for (auto& w : work) {
    if (!w.transactional_request || w.records.size() < protocol::batch_header_size) continue;
    auto h = protocol::batch_header::parse(w.records.data());
    if (!h.is_transactional() || h.is_control()) continue;
    auto* log = b.partitions().find_leader(*w.topic, w.partition);
    if (!log || log->producers().has_open_transaction(h.producer_id)) continue;
    w.needs_verification = true;
    w.verification_guard = log->begin_txn_verification(h.producer_id, now);
    ++n;
  }
  return n;
}

void append_here(broker& b, std::vector<append_work>& work, int16_t acks) {
  bool appended = false;
  bool hw_moved = false;
  int64_t now = runtime::wall_clock_ms();
  auto& pm = b.partitions();
  for (auto& w : work) {
    if (w.result.error != error_code::none) continue;  // refused before (KIP-890 verification)
    auto* log = pm.find_leader(*w.topic, w.partition);
    auto* rep = pm.replica(*w.topic, w.partition);
    if (!log || !rep || !rep->leader) {
      w.result.error = error_code::not_leader_or_follower;
      continue;
    }
    auto& leader = *rep->leader;
    if (auto e = leader.check_append(acks); e != error_code::none) {
      w.result.error = e;
      w.result.message = "The size of the current ISR " + std::to_string(leader.isr().size()) +
                         " is insufficient to satisfy the min.isr requirement of " +
                         std::to_string(pm.leader_settings_for(*w.topic_configs).min_insync_replicas) +
                         " for partition " + *w.topic + "-" + std::to_string(w.partition);
      continue;
    }
    const broker_config& eff = pm.effective_config();
    protocol::validate_options opts;
    opts.max_batch_bytes = max_message_bytes(eff, *w.topic_configs);
    opts.require_single_batch = true;  // produce v3+: one batch per partition, as Kafka requires
    auto v = protocol::validate_batches(w.records, opts);
    if (!v.ok()) {
      w.result.error = static_cast<error_code>(protocol::kafka_error_code(v.error));
      w.result.message = v.message;
      continue;
    }
    check_records(eff, *w.topic, w.partition, *w.topic_configs, w.records, now, w);
    if (w.result.error != error_code::none) continue;
    if (v.summary.producer_id >= 0) {
      // An idempotent producer's batch: a retry of one already in the log is
      // answered with the original's offsets and not written again.
      auto h = protocol::batch_header::parse(w.records.data());
      if (w.from_coordinator) {
        auto epoch = log->producers().check_epoch(h.producer_id, h.producer_epoch);
        if (epoch.verdict != storage::sequence_verdict::ok) {
          w.result.error = error_code::invalid_producer_epoch;
          w.result.message = std::move(epoch.message);
          continue;
        }
      } else if (h.is_transactional() && !w.transactional_request) {
        w.result.error = error_code::invalid_txn_state;
        w.result.message = "A transactional batch of producer " + std::to_string(h.producer_id) +
                           " in a Produce request without a transactional id";
        continue;
      }
      auto check = w.from_coordinator ? storage::sequence_check{} : log->producers().check(h);
      if (check.verdict == storage::sequence_verdict::duplicate) {
        w.result.base_offset = check.original.first_offset;
        w.result.log_append_time_ms =
            log->config().message_timestamp_type == "LogAppendTime" ? check.original.timestamp : -1;
        w.result.log_start_offset = log->log_start_offset();
        if (acks == -1) {
          w.result.required_offset = check.original.last_offset + 1;
          w.result.leader_epoch = leader.leader_epoch();
          w.result.waiting = true;
        }
        continue;
      }
      if (check.verdict != storage::sequence_verdict::ok) {
        w.result.error = check.verdict == storage::sequence_verdict::invalid_epoch ? error_code::invalid_producer_epoch
                                                                                   : error_code::out_of_order_sequence_number;
        w.result.message = std::move(check.message);
        continue;
      }
      // KIP-890: only a batch the coordinator verified may open a
      // transaction, and only if no marker came since (a transaction that
      // ended meanwhile must not get a hanging continuation).
      if (!w.from_coordinator && h.is_transactional() && !log->producers().has_open_transaction(h.producer_id) &&
          !log->producers().verification_holds(h.producer_id, w.verification_guard)) {
        w.result.error = error_code::invalid_txn_state;
        w.result.message = "Producer " + std::to_string(h.producer_id) + " has no transaction on " + *w.topic + "-" +
                           std::to_string(w.partition) + " that its transaction coordinator verified";
        continue;
      }
    }
    // Offsets are assigned in place, in the request's own frame: it belongs to
    // this request and nothing reads these bytes after the append.
    std::span<uint8_t> batches(const_cast<uint8_t*>(w.records.data()), w.records.size());
    appended |= append_as_leader(*log, leader, batches, now, acks, w, hw_moved);
  }
  if (appended) b.notify(broker::event::appended);  // followers' fetches
  if (hw_moved) b.notify(broker::event::high_watermark);  // consumers (a leader alone in its ISR)
  if (acks == -1) check_acks_here(b, work);
}

void append_marker_here(broker& b, append_work& w, int64_t producer_id, int16_t producer_epoch,
                        const storage::txn_marker& marker) {
  auto& pm = b.partitions();
  auto* log = pm.find_leader(*w.topic, w.partition);
  auto* rep = pm.replica(*w.topic, w.partition);
  if (!log || !rep || !rep->leader) {
    w.result.error = error_code::not_leader_or_follower;
    return;
  }
  auto& leader = *rep->leader;
  if (auto e = leader.check_append(-1); e != error_code::none) {
    w.result.error = e;
    return;
  }
  auto check = log->producers().check_marker(producer_id, producer_epoch, marker.coordinator_epoch);
  if (check.verdict != storage::sequence_verdict::ok) {
    w.result.error = check.verdict == storage::sequence_verdict::invalid_epoch ? error_code::invalid_producer_epoch
                                                                              : error_code::transaction_coordinator_fenced;
    w.result.message = std::move(check.message);
    return;
  }
  int64_t now = runtime::wall_clock_ms();
  bytes batch = storage::build_txn_marker_batch(producer_id, producer_epoch, marker, now);
  bool hw_moved = false;
  if (!append_as_leader(*log, leader, batch, now, -1, w, hw_moved)) return;
  b.notify(broker::event::appended);
  if (hw_moved) b.notify(broker::event::high_watermark);
}

size_t check_acks_here(broker& b, std::vector<append_work>& work) {
  size_t waiting = 0;
  for (auto& w : work) {
    if (!w.result.waiting) continue;
    auto* rep = b.partitions().replica(*w.topic, w.partition);
    if (!rep || !rep->leader || rep->leader->leader_epoch() != w.result.leader_epoch) {
      // Another leader now: what it keeps of these records is its log's
      // business; the producer retries there.
      w.result.waiting = false;
      w.result.error = error_code::not_leader_or_follower;
      continue;
    }
    auto& leader = *rep->leader;
    if (leader.high_watermark() >= w.result.required_offset) {
      w.result.waiting = false;
      continue;
    }
    if (leader.ack_status_for(w.result.required_offset) == replication::ack_status::not_enough_replicas_after_append) {
      w.result.waiting = false;
      w.result.error = error_code::not_enough_replicas_after_append;
      w.result.message = "The ISR of " + *w.topic + "-" + std::to_string(w.partition) +
                         " shrank below min.insync.replicas after the records were written";
      continue;
    }
    ++waiting;
  }
  return waiting;
}

runtime::task<void> await_acks(broker& b, std::map<size_t, std::vector<append_work>>& by_shard, int64_t deadline_ms) {
  auto waiting = [&] {
    for (auto& [shard, work] : by_shard)
      for (auto& w : work)
        if (w.result.waiting) return true;
    return false;
  };
  while (waiting() && !b.stopping()) {
    int64_t now = runtime::monotonic_ms();
    if (now >= deadline_ms) break;
    // Read before checking: a high watermark that moves after the check bumps it.
    uint64_t seen = b.event_epoch(broker::event::high_watermark);
    size_t left = 0;
    for (auto& [shard, work] : by_shard) {
      auto* items = &work;
      left += co_await runtime::submit_to(shard, [&b, items]() -> runtime::task<size_t> {
        co_return check_acks_here(b, *items);
      });
    }
    if (left == 0) break;
    co_await b.wait_for(broker::event::high_watermark, seen, deadline_ms - now);
  }
  for (auto& [shard, work] : by_shard)
    for (auto& w : work)
      if (w.result.waiting) {
        w.result.waiting = false;
        w.result.error = error_code::request_timed_out;
        w.result.message = "The in-sync replicas did not have the records within the request's timeout";
      }
}

void halt_on_log_failure(const std::string& dir, const std::string& why) {
  // Records that reached the segment but failed to complete (fsync or index
  // write failed) would count as written in our log end offset; a crash then
  // loses them after the ISR acknowledged them. Kafka takes such a log dir
  // offline and stops when none is left; with one log dir per broker that is
  // a stop. The other replicas keep the data.
  runtime::current().halt("storage failure in " + dir + ": " + why +
                          " (stopping, as Kafka does when its log dir fails; check the disk, then restart)");
}

namespace {
// Reads whole batches of `log` from the item's offset up to max_offset into
// the item, while the response's budget lasts.
void read_into(storage::log& log, read_work& w, int64_t max_offset, int64_t& budget, bool& first_batch_pending) {
  // read_committed stops at the last stable offset and learns which of the
  // transactions it reads were aborted (Kafka's collectAbortedTransactions,
  // bounded by the LSO rather than by the batches read: an extra entry names
  // batches this response does not hold, which clients skip past).
  w.last_stable_offset = log.last_stable_offset(w.high_watermark);
  if (w.read_committed) {
    max_offset = std::min(max_offset, w.last_stable_offset);
    for (auto& a : log.aborted_transactions(w.fetch_offset, max_offset))
      w.aborted_transactions.emplace_back(a.producer_id, a.first_offset);
  }
  if (budget <= 0 && !first_batch_pending) return;
  int64_t limit = std::min<int64_t>(w.partition_max_bytes, std::max<int64_t>(budget, 0));
  auto r = log.read(w.fetch_offset, static_cast<int32_t>(limit), first_batch_pending, max_offset);
  if (!r) {
    w.error = error_code::kafka_storage_error;
    return;
  }
  if (r.value().offset_out_of_range) {
    w.error = error_code::offset_out_of_range;
    return;
  }
  w.records = std::move(r.value().records);
  if (!w.records.empty()) {
    first_batch_pending = false;
    budget -= static_cast<int64_t>(w.records.size());
  }
}

void read_from_follower(replica_state& rep, storage::log& log, read_work& w, int64_t& budget,
                        bool& first_batch_pending) {
  w.error = replication::check_leader_epoch(w.current_leader_epoch, rep.leader_epoch);
  if (w.error != error_code::none) return;
  w.high_watermark = rep.follower->high_watermark();
  w.log_start_offset = log.log_start_offset();
  read_into(log, w, w.high_watermark, budget, first_batch_pending);
}
}  // namespace

runtime::task<void> read_on_shard(broker& b, size_t shard, std::vector<read_work*>& work, int64_t& budget,
                                  bool& first_batch_pending) {
  co_await runtime::submit_to_void(shard, [&]() -> runtime::task<void> {
    auto& pm = b.partitions();
    bool hw_moved = false;
    for (auto* w : work) {
      auto* rep = pm.replica(*w->topic, w->partition);
      auto* plog = pm.find(*w->topic, w->partition);
      if (rep && plog && !rep->leader && rep->follower && w->replica_id < 0 && w->follower_may_serve) {
        // KIP-392: a consumer in this follower's rack reads what it has below its high watermark.
        read_from_follower(*rep, *plog, *w, budget, first_batch_pending);
        continue;
      }
      auto* log = pm.find_leader(*w->topic, w->partition);
      if (!log || !rep || !rep->leader) {
        w->error = error_code::not_leader_or_follower;
        continue;
      }
      auto& leader = *rep->leader;
      w->error = replication::check_leader_epoch(w->current_leader_epoch, leader.leader_epoch());
      if (w->error != error_code::none) continue;
      if (w->preferred_read_replica >= 0) {
        // The consumer is told where to read; it comes back here only if that fails.
        w->high_watermark = leader.high_watermark();
        w->log_start_offset = log->log_start_offset();
        continue;
      }
      int64_t max_offset = std::numeric_limits<int64_t>::max();
      if (w->replica_id >= 0) {
        // A follower. Where its log parts from ours it is told so, and
        // nothing else (KIP-320/KIP-595's DivergingEpoch); otherwise its
        // fetch offset is its log end, which moves the high watermark.
        w->diverging_epoch = replication::diverging_epoch(log->leader_epochs(), log->log_end_offset(), w->fetch_offset,
                                                          w->last_fetched_epoch);
        if (w->diverging_epoch) {
          w->high_watermark = leader.high_watermark();
          w->log_start_offset = log->log_start_offset();
          // No epoch of ours at or below the follower's: -1/-1 would read as
          // "no divergence" on the wire. Kafka answers OFFSET_OUT_OF_RANGE, and
          // the follower falls back to what is committed.
          if (w->diverging_epoch->end_offset < 0) {
            w->diverging_epoch.reset();
            w->error = error_code::offset_out_of_range;
          }
          continue;
        }
        if (!leader.followers().count(w->replica_id)) {
          w->error = error_code::not_leader_or_follower;  // not a replica of this partition
          continue;
        }
        if (w->fetch_offset <= log->log_end_offset())
          hw_moved |= leader.on_follower_fetch(w->replica_id, w->fetch_offset, runtime::wall_clock_ms());
      } else {
        // Consumers read what the ISR has, no further.
        max_offset = leader.high_watermark();
      }
      w->high_watermark = leader.high_watermark();
      w->log_start_offset = log->log_start_offset();
      read_into(*log, *w, max_offset, budget, first_batch_pending);
    }
    // Consumers and acks=all producers waiting for this high watermark.
    if (hw_moved) b.notify(broker::event::high_watermark);
    co_return;
  });
}

runtime::task<void> list_offsets_on_shard(broker& b, size_t shard, std::vector<offset_query*>& work) {
  co_await runtime::submit_to_void(shard, [&]() -> runtime::task<void> {
    for (auto* q : work) {
      auto* log = b.partitions().find_leader(*q->topic, q->partition);
      if (!log) {
        q->error = error_code::not_leader_or_follower;
        continue;
      }
      q->error = replication::check_leader_epoch(q->current_leader_epoch, b.partitions().leader_epoch(*q->topic, q->partition));
      if (q->error != error_code::none) continue;
      // The leader epoch answered is Kafka's: the latest one for the log end,
      // the one that wrote the record otherwise.
      if (q->timestamp == -2) {
        q->offset = log->log_start_offset();
        q->leader_epoch = log->leader_epochs().epoch_for(q->offset);
      } else if (q->timestamp == -1) {
        // Latest is the high watermark: no client learns of records the ISR
        // does not have yet. read_committed: the last stable offset.
        q->offset = b.partitions().high_watermark(*q->topic, q->partition);
        if (q->read_committed) q->offset = log->last_stable_offset(q->offset);
        q->leader_epoch = log->leader_epochs().latest_epoch();
      } else {
        auto found = q->timestamp == -3 ? log->offset_for_max_timestamp() : log->offset_for_timestamp(q->timestamp);
        if (!found) {
          q->error = error_code::kafka_storage_error;
          continue;
        }
        // Records above the high watermark are not there yet for clients.
        if (found.value() && found.value()->offset < b.partitions().high_watermark(*q->topic, q->partition)) {
          q->offset = found.value()->offset;
          q->found_timestamp = found.value()->timestamp;
          q->leader_epoch = found.value()->leader_epoch;
        }
      }
    }
    co_return;
  });
}

runtime::task<void> delete_records_on_shard(broker& b, size_t shard, std::vector<delete_records_work*>& work) {
  co_await runtime::submit_to_void(shard, [&]() -> runtime::task<void> {
    for (auto* w : work) {
      auto* log = b.partitions().find_leader(*w->topic, w->partition);
      if (!log) {
        w->error = error_code::not_leader_or_follower;
        continue;
      }
      int64_t hw = b.partitions().high_watermark(*w->topic, w->partition);
      int64_t target = w->offset == -1 ? hw : w->offset;
      if (target < 0 || target > hw) {
        w->error = error_code::offset_out_of_range;
        continue;
      }
      if (auto r = log->advance_log_start_offset(target); !r) {
        w->error = error_code::kafka_storage_error;
        continue;
      }
      w->low_watermark = log->log_start_offset();
    }
    co_return;
  });
}

runtime::task<void> log_dirs_on_shard(broker& b, size_t shard, std::vector<log_dir_partition>& out) {
  std::vector<log_dir_partition> found;
  co_await runtime::submit_to_void(shard, [&]() -> runtime::task<void> {
    for (auto& [tp, log] : b.partitions().logs()) {
      log_dir_partition p;
      std::string dir = log->dir();
      auto slash = dir.rfind('/');
      p.log_dir = slash == std::string::npos ? dir : dir.substr(0, slash);
      p.topic = tp.topic;
      p.partition = tp.partition;
      p.size_bytes = static_cast<int64_t>(log->size_bytes());
      p.log_end_offset = log->log_end_offset();
      found.push_back(std::move(p));
    }
    co_return;
  });
  for (auto& p : found) out.push_back(std::move(p));
}

}  // namespace gregor::broker
