#include "coordinator/transaction_service.h"

#include "base/log.h"
#include "protocol/record_batch.h"
#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::coordinator {

using protocol::code;
using protocol::error_code;

namespace {

// A fresh producer id may need a block from the controller: wait for it a
// little before answering COORDINATOR_LOAD_IN_PROGRESS (clients retry that).
constexpr int kProducerIdAttempts = 40;
constexpr int64_t kProducerIdWaitMs = 25;
constexpr int64_t kRetryBackoffMs = 100;

// Kafka's TransactionStateManager.appendTransactionToLog error mapping.
error_code append_error(error_code e) {
  switch (e) {
    case error_code::none:
      return e;
    case error_code::unknown_topic_or_partition:
    case error_code::not_enough_replicas:
    case error_code::not_enough_replicas_after_append:
    case error_code::request_timed_out:
      return error_code::coordinator_not_available;
    case error_code::not_leader_or_follower:
    case error_code::kafka_storage_error:
      return error_code::not_coordinator;
    default:
      return error_code::unknown_server_error;
  }
}

}  // namespace

transaction_service::transaction_service(txn_service_config config, offsets_log& log, txn_marker_sender& markers,
                                         size_t home_shard, std::function<std::optional<int64_t>()> new_producer_id)
    : sm_(config.coordinator),
      log_(log),
      markers_(markers),
      home_(home_shard),
      new_producer_id_(std::move(new_producer_id)),
      abort_interval_ms_(config.abort_timed_out_transaction_cleanup_interval_ms),
      expire_interval_ms_(config.remove_expired_transaction_cleanup_interval_ms) {}

transaction_service::~transaction_service() = default;

void transaction_service::start() {
  runtime::spawn(home_, [this] { return abort_loop(); });
  runtime::spawn(home_, [this] { return expire_loop(); });
}

void transaction_service::stop() { stopping_ = true; }

bool transaction_service::current(int32_t p, uint64_t generation) const {
  auto it = owned_.find(p);
  return !stopping_ && it != owned_.end() && it->second.generation == generation;
}

void transaction_service::set_owned_partitions(const std::vector<int32_t>& leader_epochs) {
  if (!leader_epochs.empty() && !topic_ready_) {
    sm_.set_partition_count(static_cast<int32_t>(leader_epochs.size()));
    topic_ready_ = true;
  }
  for (size_t i = 0; i < leader_epochs.size(); ++i) {
    auto p = static_cast<int32_t>(i);
    int32_t epoch = leader_epochs[i];
    auto it = owned_.find(p);
    if (epoch >= 0 && (it == owned_.end() || it->second.leader_epoch != epoch)) {
      // Newly led (or led again under a new epoch): load it afresh.
      uint64_t gen = next_generation_++;
      owned_[p] = owned_partition{gen, epoch};
      sm_.unload(p);
      sm_.begin_load(p);
      runtime::spawn(home_, [this, p, gen] { return load_partition(p, gen); });
    } else if (epoch < 0 && it != owned_.end()) {
      owned_.erase(it);
      sm_.unload(p);
      log::get("coordinator")
          ->info("{}-{} is led elsewhere now: its transactional ids moved with it", transaction_state_topic_name, p);
    }
  }
}

runtime::task<void> transaction_service::load_partition(int32_t p, uint64_t generation) {
  auto lg = log::get("coordinator");
  int64_t started = runtime::monotonic_ms();
  size_t records = 0;
  int64_t offset = 0;
  while (current(p, generation)) {
    auto r = co_await log_.read(p, offset);
    if (!current(p, generation)) co_return;
    if (!r) {
      lg->error("cannot load {}-{}: {}", transaction_state_topic_name, p, r.err().message);
      break;
    }
    if (r.value().empty()) break;
    protocol::batch_iterator it{bytes_view(r.value())};
    protocol::batch_header h;
    bool progressed = false;
    while (auto batch = it.next(&h)) {
      progressed = true;
      offset = h.next_offset();
      if (h.is_control()) continue;
      auto reader = protocol::record_reader::open(*batch);
      if (!reader) continue;
      protocol::record_view rec;
      for (;;) {
        auto more = reader.value().next(rec);
        if (!more || !more.value()) break;
        if (!rec.key) continue;
        sm_.replay(p, *rec.key, rec.value);
        ++records;
      }
    }
    if (!progressed) break;
  }
  while (current(p, generation) && !co_await log_.committed_up_to(p, offset))
    co_await runtime::sleep_for(loaded_tail_poll_ms);
  if (!current(p, generation)) co_return;
  auto unfinished = sm_.end_load(p);
  if (records > 0)
    lg->info("loaded {}-{} ({} records, {} transactions to complete) in {} ms", transaction_state_topic_name, p,
             records, unfinished.size(), runtime::monotonic_ms() - started);
  for (auto& id : unfinished) runtime::spawn(home_, [this, id] { return finish(id); });
}

runtime::task<result<void>> transaction_service::ensure_topic_here() {
  while (creating_) co_await runtime::sleep_for(10);
  if (topic_ready_) co_return ok();
  creating_ = true;
  auto n = co_await log_.create_topic();
  creating_ = false;
  if (!n) co_return n.err();
  if (!topic_ready_) sm_.set_partition_count(n.value());
  topic_ready_ = true;
  co_return ok();
}

runtime::task<result<void>> transaction_service::ensure_topic() {
  co_return co_await runtime::submit_to(home_, [this]() -> runtime::task<result<void>> {
    co_return co_await ensure_topic_here();
  });
}

runtime::task<error_code> transaction_service::persist(txn_metadata target) {
  int32_t p = sm_.partition_for(target.transactional_id);
  auto rec = transaction_log_record(target);
  protocol::batch_builder builder;
  std::optional<bytes_view> value;  // none: a tombstone (an expired id)
  if (rec.value) value = bytes_view(*rec.value);
  builder.add(runtime::wall_clock_ms(), std::optional<bytes_view>(bytes_view(rec.key)), value);
  error_code e = (co_await log_.append(p, builder.build())).error;
  if (e == error_code::none) sm_.complete(target);
  else sm_.abandon(target.transactional_id);
  co_return append_error(e);
}

// Persists a step's transition; a Prepare* goes on to its markers.
runtime::task<error_code> transaction_service::run_step(txn_step step) {
  if (step.error != error_code::none || !step.target) co_return step.error;
  std::string id = step.target->transactional_id;
  bool markers = step.then_markers;
  auto e = co_await persist(std::move(*step.target));
  if (e == error_code::none && markers) runtime::spawn(home_, [this, id] { return finish(id); });
  co_return e;
}

// The markers of a Prepare* transaction, then its Complete* state.
runtime::task<void> transaction_service::finish(std::string id) {
  auto lg = log::get("coordinator");
  const txn_metadata* m = sm_.find(id);
  if (!m || (m->state != txn_state::prepare_commit && m->state != txn_state::prepare_abort)) co_return;
  int32_t p = sm_.partition_for(id);
  auto own = owned_.find(p);
  if (own == owned_.end()) co_return;
  uint64_t gen = own->second.generation;
  txn_marker_sender::markers mk;
  mk.producer_id = m->producer_id;
  mk.producer_epoch = m->producer_epoch;
  mk.commit = m->state == txn_state::prepare_commit;
  mk.coordinator_epoch = own->second.leader_epoch;
  mk.partitions.assign(m->partitions.begin(), m->partitions.end());
  bool sent = co_await markers_.send(std::move(mk), [this, p, gen] { return current(p, gen); });
  if (!sent || !current(p, gen)) {
    lg->info("transaction of {} is left unfinished here: this broker no longer coordinates it", id);
    co_return;
  }
  for (;;) {
    if (!current(p, gen)) co_return;
    auto step = sm_.complete_commit_or_abort(id, runtime::wall_clock_ms());
    if (step.error == error_code::concurrent_transactions) {
      co_await runtime::sleep_for(kRetryBackoffMs);
      continue;
    }
    if (step.error != error_code::none) co_return;
    auto e = co_await persist(std::move(*step.target));
    if (e == error_code::none) co_return;
    lg->warn("cannot write the completion of {}'s transaction: {}; retrying", id, protocol::error_name(e));
    co_await runtime::sleep_for(kRetryBackoffMs);
  }
}

runtime::task<void> transaction_service::abort_loop() {
  while (!stopping_) {
    co_await runtime::sleep_for(abort_interval_ms_);
    if (stopping_) break;
    for (auto& id : sm_.timed_out(runtime::wall_clock_ms())) {
      log::get("coordinator")->info("aborting the timed-out transaction of {}", id);
      (void)co_await run_step(sm_.abort_timed_out(id, runtime::wall_clock_ms()));
    }
  }
}

runtime::task<void> transaction_service::expire_loop() {
  while (!stopping_) {
    co_await runtime::sleep_for(expire_interval_ms_);
    if (stopping_) break;
    auto ids = sm_.expired(runtime::wall_clock_ms());
    size_t done = 0;
    for (auto& id : ids)
      if (co_await run_step(sm_.expire(id, runtime::wall_clock_ms())) == error_code::none) ++done;
    if (done > 0) log::get("coordinator")->info("expired {} idle transactional ids", done);
  }
}

// ---- the APIs

runtime::task<protocol::init_producer_id_response> transaction_service::init_producer_id(
    int16_t v, protocol::init_producer_id_request req) {
  co_return co_await runtime::submit_to(home_, [this, v, req = std::move(req)]()
                                                   -> runtime::task<protocol::init_producer_id_response> {
    protocol::init_producer_id_response resp;
    resp.producer_id = -1;
    resp.producer_epoch = -1;
    if (!topic_ready_) (void)co_await ensure_topic_here();
    const std::string& id = *req.transactional_id;
    int64_t expected_pid = v >= 3 ? req.producer_id : -1;
    int16_t expected_epoch = v >= 3 ? req.producer_epoch : -1;
    txn_step step;
    for (int attempt = 0; attempt < kProducerIdAttempts; ++attempt) {
      if (attempt > 0) co_await runtime::sleep_for(kProducerIdWaitMs);
      bool no_id = false;
      step = sm_.init_producer_id(id, req.transaction_timeout_ms, expected_pid, expected_epoch,
                                  runtime::wall_clock_ms(), [&]() {
                                    auto pid = new_producer_id_();
                                    no_id = !pid;
                                    return pid;
                                  });
      if (!no_id) break;
    }
    if (step.error == error_code::none && !step.target) {  // a retry answered again
      resp.producer_id = step.producer_id;
      resp.producer_epoch = step.producer_epoch;
      co_return resp;
    }
    bool fenced = step.fenced_ongoing;
    std::optional<txn_metadata> target = step.target;
    auto e = co_await run_step(std::move(step));
    if (e == error_code::none && fenced) e = error_code::concurrent_transactions;
    if (e != error_code::none) {
      resp.error_code = code(fenced_error_for_version(e, v, 4));
      co_return resp;
    }
    resp.producer_id = target->producer_id;
    resp.producer_epoch = target->producer_epoch;
    co_return resp;
  });
}

runtime::task<error_code> transaction_service::add_one(const std::string& id, int64_t pid, int16_t epoch,
                                                       const std::vector<topic_partition>& tps) {
  co_return co_await run_step(sm_.add_partitions(id, pid, epoch, tps, runtime::wall_clock_ms()));
}

runtime::task<protocol::add_partitions_to_txn_response> transaction_service::add_partitions_to_txn(
    int16_t v, protocol::add_partitions_to_txn_request req, std::function<bool(const std::string&, int32_t)> exists) {
  co_return co_await runtime::submit_to(home_, [this, v, req = std::move(req), exists = std::move(exists)]()
                                                   -> runtime::task<protocol::add_partitions_to_txn_response> {
    using R = protocol::add_partitions_to_txn_response;
    R resp;
    // v3 and below: one transaction, in the top-level fields.
    std::vector<protocol::add_partitions_to_txn_request::add_partitions_to_txn_transaction> txns;
    if (v >= 4) {
      txns = req.transactions;
    } else {
      auto& t = txns.emplace_back();
      t.transactional_id = req.v3_and_below_transactional_id;
      t.producer_id = req.v3_and_below_producer_id;
      t.producer_epoch = req.v3_and_below_producer_epoch;
      t.topics = req.v3_and_below_topics;
    }
    for (auto& t : txns) {
      std::vector<topic_partition> tps;
      for (auto& tt : t.topics)
        for (int32_t p : tt.partitions) tps.emplace_back(tt.name, p);
      std::vector<error_code> errs(tps.size(), error_code::none);
      bool unknown = false;
      for (size_t i = 0; i < tps.size(); ++i)
        if (!exists(tps[i].first, tps[i].second)) errs[i] = error_code::unknown_topic_or_partition, unknown = true;
      if (unknown) {
        for (auto& e : errs)
          if (e == error_code::none) e = error_code::operation_not_attempted;
      } else if (t.verify_only && v >= 4) {
        auto r = sm_.verify_partitions(t.transactional_id, t.producer_id, t.producer_epoch, tps);
        for (size_t i = 0; i < tps.size(); ++i) errs[i] = r.error != error_code::none ? r.error : r.per_partition[i];
      } else {
        auto e = co_await add_one(t.transactional_id, t.producer_id, t.producer_epoch, tps);
        std::fill(errs.begin(), errs.end(), fenced_error_for_version(e, v, 2));
      }
      std::vector<R::add_partitions_to_txn_topic_result> topics;
      for (size_t i = 0; i < tps.size(); ++i) {
        if (topics.empty() || topics.back().name != tps[i].first) topics.emplace_back().name = tps[i].first;
        auto& pr = topics.back().results_by_partition.emplace_back();
        pr.partition_index = tps[i].second;
        pr.partition_error_code = code(errs[i]);
      }
      if (v >= 4) {
        auto& r = resp.results_by_transaction.emplace_back();
        r.transactional_id = t.transactional_id;
        r.topic_results = std::move(topics);
      } else {
        resp.results_by_topic_v3_and_below = std::move(topics);
      }
    }
    co_return resp;
  });
}

runtime::task<protocol::add_offsets_to_txn_response> transaction_service::add_offsets_to_txn(
    int16_t v, protocol::add_offsets_to_txn_request req, int32_t offsets_partitions) {
  co_return co_await runtime::submit_to(home_, [this, v, req = std::move(req), offsets_partitions]()
                                                   -> runtime::task<protocol::add_offsets_to_txn_response> {
    protocol::add_offsets_to_txn_response resp;
    if (offsets_partitions > 0) sm_.set_offsets_partition_count(offsets_partitions);
    auto e = co_await run_step(
        sm_.add_offsets(req.transactional_id, req.producer_id, req.producer_epoch, req.group_id, runtime::wall_clock_ms()));
    resp.error_code = code(fenced_error_for_version(e, v, 2));
    co_return resp;
  });
}

runtime::task<protocol::end_txn_response> transaction_service::end_txn(int16_t v, protocol::end_txn_request req) {
  co_return co_await runtime::submit_to(home_, [this, v, req = std::move(req)]()
                                                   -> runtime::task<protocol::end_txn_response> {
    protocol::end_txn_response resp;
    // Answered once the Prepare* state is replicated; the markers follow.
    auto e = co_await run_step(sm_.end_txn(req.transactional_id, req.producer_id, req.producer_epoch, req.committed,
                                           runtime::wall_clock_ms()));
    resp.error_code = code(fenced_error_for_version(e, v, 2));
    co_return resp;
  });
}

runtime::task<protocol::list_transactions_response> transaction_service::list_transactions(
    int16_t v, protocol::list_transactions_request req) {
  co_return co_await runtime::submit_to(home_, [this, v, req = std::move(req)]()
                                                   -> runtime::task<protocol::list_transactions_response> {
    co_return sm_.list(v, req, runtime::wall_clock_ms());
  });
}

runtime::task<protocol::describe_transactions_response> transaction_service::describe_transactions(
    int16_t, protocol::describe_transactions_request req) {
  co_return co_await runtime::submit_to(home_, [this, req = std::move(req)]()
                                                   -> runtime::task<protocol::describe_transactions_response> {
    protocol::describe_transactions_response resp;
    for (auto& id : req.transactional_ids) resp.transaction_states.push_back(sm_.describe(id));
    co_return resp;
  });
}

}  // namespace gregor::coordinator
