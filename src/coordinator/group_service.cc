#include "coordinator/group_service.h"

#include <cstdio>

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/shards.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::coordinator {

using protocol::error_code;

namespace {

// Kafka's member ids end in a java.util.UUID's string form.
std::string random_uuid_string() {
  uint64_t hi = runtime::random_u64();
  uint64_t lo = runtime::random_u64();
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                            // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;     // IETF variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

constexpr int64_t tick_interval_ms = 100;

// A control batch's marker: its record's key is version int16 0, then type
// int16 (0 ABORT, 1 COMMIT). True for COMMIT; nullopt if it is no marker.
std::optional<bool> marker_type(bytes_view batch) {
  auto reader = protocol::record_reader::open(batch);
  if (!reader) return std::nullopt;
  protocol::record_view rec;
  auto more = reader.value().next(rec);
  if (!more || !more.value() || !rec.key || rec.key->size() < 4) return std::nullopt;
  auto k = *rec.key;
  int16_t version = static_cast<int16_t>((k[0] << 8) | k[1]);
  int16_t type = static_cast<int16_t>((k[2] << 8) | k[3]);
  if (version != 0 || (type != 0 && type != 1)) return std::nullopt;
  return type == 1;
}

}  // namespace

group_service::group_service(group_config config, offsets_log& log, size_t home_shard)
    : sm_(std::move(config), random_uuid_string), log_(log), home_(home_shard) {}

group_service::~group_service() = default;

void group_service::start() {
  runtime::spawn(home_, [this] { return tick_loop(); });
}

void group_service::stop() { stopping_ = true; }

void group_service::set_owned_partitions(const std::vector<bool>& owned) {
  if (!owned.empty() && !topic_ready_) {
    sm_.set_partition_count(static_cast<int32_t>(owned.size()));
    topic_ready_ = true;
  }
  for (size_t i = 0; i < owned.size(); ++i) {
    auto p = static_cast<int32_t>(i);
    bool before = owned_.count(p) != 0;
    sm_.set_owned(p, owned[i]);
    if (owned[i] && !before) {
      uint64_t gen = next_generation_++;
      owned_[p] = gen;
      sm_.begin_load(p);
      runtime::spawn(home_, [this, p, gen] { return load_partition(p, gen); });
    } else if (!owned[i] && before) {
      owned_.erase(p);
      sm_.unload(p);
      log::get("coordinator")->info("{}-{} is led elsewhere now: its groups moved with it", offsets_topic_name, p);
    }
  }
}

runtime::task<void> group_service::load_partition(int32_t p, uint64_t generation) {
  auto lg = log::get("coordinator");
  auto current = [&] {
    auto it = owned_.find(p);
    return !stopping_ && it != owned_.end() && it->second == generation;
  };
  int64_t started = runtime::monotonic_ms();
  size_t records = 0;
  int64_t offset = 0;
  while (current()) {
    auto r = co_await log_.read(p, offset);
    if (!current()) co_return;
    if (!r) {
      lg->error("cannot load {}-{}: {}", offsets_topic_name, p, r.err().message);
      break;
    }
    if (r.value().empty()) break;
    protocol::batch_iterator it{bytes_view(r.value())};
    protocol::batch_header h;
    bool progressed = false;
    while (auto batch = it.next(&h)) {
      progressed = true;
      offset = h.next_offset();
      if (h.is_control()) {
        // A transaction's COMMIT or ABORT marker: its offsets above apply or go.
        if (auto commit = marker_type(*batch); commit && h.has_producer_id())
          sm_.replay_marker(p, h.producer_id, *commit);
        continue;
      }
      int64_t txn_producer = h.is_transactional() ? h.producer_id : -1;
      auto reader = protocol::record_reader::open(*batch);
      if (!reader) {
        lg->warn("{}-{}: skipping an unreadable batch at offset {}", offsets_topic_name, p, h.base_offset);
        continue;
      }
      protocol::record_view rec;
      for (;;) {
        auto more = reader.value().next(rec);
        if (!more || !more.value()) break;
        if (!rec.key) continue;
        sm_.replay(p, *rec.key, rec.value, h.base_offset, txn_producer);
        ++records;
      }
    }
    if (!progressed) break;
  }
  while (current() && !co_await log_.committed_up_to(p, offset)) co_await runtime::sleep_for(loaded_tail_poll_ms);
  if (!current()) co_return;
  deliver(sm_.end_load(p, runtime::wall_clock_ms()));
  if (records > 0)
    lg->info("loaded {}-{} ({} records) in {} ms", offsets_topic_name, p, records, runtime::monotonic_ms() - started);
}

runtime::task<void> group_service::tick_loop() {
  while (!stopping_) {
    co_await runtime::sleep_for(tick_interval_ms);
    if (stopping_) break;
    deliver(sm_.tick(runtime::wall_clock_ms()));
  }
}

void group_service::deliver(output out) {
  for (auto& r : out.replies) {
    auto it = waiters_.find(r.request);
    if (it == waiters_.end()) continue;
    it->second->body = std::move(r.body);
    it->second->wake.notify_all();
    waiters_.erase(it);
  }
  for (auto& w : out.writes) write_queue_.push_back(std::move(w));
  if (!write_queue_.empty() && !writer_running_) {
    writer_running_ = true;
    runtime::spawn(home_, [this] { return writer_loop(); });
  }
}

runtime::task<void> group_service::writer_loop() {
  // One write at a time, in the order the state machine asked for them.
  while (!write_queue_.empty()) {
    auto w = std::move(write_queue_.front());
    write_queue_.pop_front();
    error_code e = error_code::none;
    if (!topic_ready_) {
      auto r = co_await ensure_topic_here();
      if (!r) e = error_code::coordinator_not_available;
    }
    int64_t base_offset = -1;
    if (e == error_code::none) {
      protocol::batch_builder_options opts;
      if (w.producer_id >= 0) {
        // TxnOffsetCommit: a transactional batch of the producer, base
        // sequence 0 as Kafka's coordinator writes it.
        opts.producer_id = w.producer_id;
        opts.producer_epoch = w.producer_epoch;
        opts.base_sequence = 0;
        opts.transactional = true;
      }
      protocol::batch_builder builder(opts);
      int64_t now = runtime::wall_clock_ms();
      for (auto& rec : w.records) {
        std::optional<bytes_view> value;
        if (rec.value) value = bytes_view(*rec.value);
        builder.add(now, std::optional<bytes_view>(bytes_view(rec.key)), value);
      }
      auto r = co_await log_.append(w.partition, builder.build());
      e = r.error;
      base_offset = r.base_offset;
    }
    deliver(sm_.write_completed(w.id, e, runtime::wall_clock_ms(), e == error_code::none ? base_offset : -1));
  }
  writer_running_ = false;
}

runtime::task<result<void>> group_service::ensure_topic_here() {
  while (creating_) co_await runtime::sleep_for(10);
  if (topic_ready_) co_return ok();
  creating_ = true;
  auto n = co_await log_.create_topic();
  creating_ = false;
  if (!n) co_return n.err();
  sm_.set_partition_count(n.value());
  topic_ready_ = true;
  co_return ok();
}

runtime::task<result<void>> group_service::ensure_topic() {
  co_return co_await runtime::submit_to(home_, [this]() -> runtime::task<result<void>> {
    co_return co_await ensure_topic_here();
  });
}

template <class Resp, class Fn>
runtime::task<Resp> group_service::call(Fn fn) {
  co_return co_await runtime::submit_to(home_, [this, fn = std::move(fn)]() -> runtime::task<Resp> {
    if (!topic_ready_) (void)co_await ensure_topic_here();  // on failure, writes report it
    uint64_t rid = next_request_++;
    auto w = std::make_shared<waiter>();
    waiters_[rid] = w;
    deliver(fn(rid, runtime::wall_clock_ms()));
    while (!w->body) co_await w->wake.wait_for(3600 * 1000);
    co_return std::get<Resp>(std::move(*w->body));
  });
}

runtime::task<protocol::join_group_response> group_service::join_group(int16_t v, protocol::join_group_request req,
                                                                       client_info client) {
  co_return co_await call<protocol::join_group_response>(
      [this, v, req = std::move(req), client = std::move(client)](uint64_t rid, int64_t now) {
        return sm_.join_group(rid, v, req, client, now);
      });
}

runtime::task<protocol::sync_group_response> group_service::sync_group(int16_t v, protocol::sync_group_request req) {
  co_return co_await call<protocol::sync_group_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.sync_group(rid, v, req, now); });
}

runtime::task<protocol::heartbeat_response> group_service::heartbeat(int16_t v, protocol::heartbeat_request req) {
  co_return co_await call<protocol::heartbeat_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.heartbeat(rid, v, req, now); });
}

runtime::task<protocol::leave_group_response> group_service::leave_group(int16_t v, protocol::leave_group_request req) {
  co_return co_await call<protocol::leave_group_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.leave_group(rid, v, req, now); });
}

runtime::task<protocol::offset_commit_response> group_service::offset_commit(
    int16_t v, protocol::offset_commit_request req, std::function<bool(const std::string&, int32_t)> exists) {
  co_return co_await call<protocol::offset_commit_response>(
      [this, v, req = std::move(req), exists = std::move(exists)](uint64_t rid, int64_t now) {
        return sm_.offset_commit(rid, v, req, exists, now);
      });
}

runtime::task<protocol::txn_offset_commit_response> group_service::txn_offset_commit(
    int16_t v, protocol::txn_offset_commit_request req, std::function<bool(const std::string&, int32_t)> exists) {
  co_return co_await call<protocol::txn_offset_commit_response>(
      [this, v, req = std::move(req), exists = std::move(exists)](uint64_t rid, int64_t now) {
        return sm_.txn_offset_commit(rid, v, req, exists, now);
      });
}

runtime::task<void> group_service::on_txn_marker(int32_t offsets_partition, int64_t producer_id, bool committed) {
  co_await runtime::submit_to_void(home_, [this, offsets_partition, producer_id, committed]() -> runtime::task<void> {
    deliver(sm_.on_txn_marker(offsets_partition, producer_id, committed, runtime::wall_clock_ms()));
    co_return;
  });
}

runtime::task<protocol::offset_fetch_response> group_service::offset_fetch(int16_t v, protocol::offset_fetch_request req) {
  co_return co_await call<protocol::offset_fetch_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.offset_fetch(rid, v, req, now); });
}

runtime::task<protocol::describe_groups_response> group_service::describe_groups(
    int16_t v, protocol::describe_groups_request req) {
  co_return co_await call<protocol::describe_groups_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.describe_groups(rid, v, req, now); });
}

runtime::task<protocol::list_groups_response> group_service::list_groups(int16_t v, protocol::list_groups_request req) {
  co_return co_await call<protocol::list_groups_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.list_groups(rid, v, req, now); });
}

runtime::task<protocol::delete_groups_response> group_service::delete_groups(int16_t v,
                                                                             protocol::delete_groups_request req) {
  co_return co_await call<protocol::delete_groups_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.delete_groups(rid, v, req, now); });
}

runtime::task<protocol::offset_delete_response> group_service::offset_delete(int16_t v,
                                                                             protocol::offset_delete_request req) {
  co_return co_await call<protocol::offset_delete_response>(
      [this, v, req = std::move(req)](uint64_t rid, int64_t now) { return sm_.offset_delete(rid, v, req, now); });
}

}  // namespace gregor::coordinator
