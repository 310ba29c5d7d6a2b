#include "broker/log_maintenance.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "base/log.h"
#include "broker/broker.h"
#include "runtime/clock.h"
#include "storage/cleaner.h"

namespace gregor::broker {

namespace {

constexpr size_t kSliceBytes = 1 << 20;
constexpr int64_t kIdleTickMs = 100;
constexpr int64_t kFailureBackoffMs = 60000;

struct running_clean {
  topic_partition tp;
  storage::log* log = nullptr;
  std::unique_ptr<storage::clean_job> job;
};

void apply_retention(partition_manager& pm, int64_t now) {
  auto lg = log::get("retention");
  for (auto& [tp, l] : pm.logs()) {
    auto before = l->log_start_offset();
    // Nothing above the high watermark goes: the ISR may not have it yet.
    auto n = l->apply_retention(now, std::max<int64_t>(pm.high_watermark(tp.topic, tp.partition), 0));
    if (!n) {
      lg->error("{}-{}: retention failed: {}", tp.topic, tp.partition, n.err().message);
      continue;
    }
    if (n.value() > 0)
      lg->info("{}-{}: deleted {} segments by retention; log start offset {} -> {}", tp.topic, tp.partition, n.value(),
               before, l->log_start_offset());
  }
}

// producer.id.expiration.ms: idle idempotent producers are forgotten.
void expire_producers(partition_manager& pm, int64_t now, int64_t expiration_ms) {
  size_t n = 0;
  for (auto& [tp, l] : pm.logs()) n += l->remove_expired_producers(now, expiration_ms);
  if (n > 0) log::get("broker")->info("removed {} expired producer ids", n);
}

void flush_due(partition_manager& pm, int64_t now) {
  for (auto& [tp, l] : pm.logs()) {
    if (l->config().flush_interval_ms == std::numeric_limits<int64_t>::max()) continue;
    if (auto r = l->flush_if_due(now); !r)
      log::get("broker")->error("{}-{}: flush failed: {}", tp.topic, tp.partition, r.err().message);
  }
}

// The compacted log most in need of cleaning, with its job started.
std::optional<running_clean> pick_log_to_clean(partition_manager& pm, int64_t now, size_t map_bytes,
                                               std::map<topic_partition, int64_t>& failed_until) {
  const topic_partition* best = nullptr;
  storage::log* best_log = nullptr;
  double best_score = -1;
  for (auto& [tp, l] : pm.logs()) {
    if (!l->config().compact) continue;
    if (auto f = failed_until.find(tp); f != failed_until.end() && f->second > now) continue;
    // Compaction stops below the last stable offset (open transactions,
    // markers not yet replicated).
    int64_t lso = l->last_stable_offset(std::max<int64_t>(pm.high_watermark(tp.topic, tp.partition), 0));
    auto s = storage::cleanable(*l, now, lso);
    if (!s || !s->due) continue;
    double score = s->max_lag_exceeded ? 2.0 + s->dirty_ratio : s->dirty_ratio;
    if (score > best_score) {
      best_score = score;
      best = &tp;
      best_log = l.get();
    }
  }
  if (!best) return std::nullopt;
  int64_t lso = best_log->last_stable_offset(std::max<int64_t>(pm.high_watermark(best->topic, best->partition), 0));
  auto job = storage::clean_job::start(*best_log, now, false, map_bytes, lso);
  if (!job) return std::nullopt;
  return running_clean{*best, best_log, std::move(job)};
}

}  // namespace

runtime::task<void> run_log_maintenance(broker& b) {
  auto lg = log::get("cleaner");
  int64_t now = runtime::wall_clock_ms();
  int64_t next_retention = now + std::max<int64_t>(b.config().log_retention_check_interval_ms, 1);
  int64_t next_clean_check = now;
  int64_t next_flush_check = now;
  int64_t next_producer_expiration = now + std::max<int64_t>(b.config().producer_id_expiration_check_interval_ms, 1);
  std::optional<running_clean> cleaning;
  std::map<topic_partition, int64_t> failed_until;

  while (!b.stopping()) {
    auto& pm = b.partitions();
    const broker_config& cfg = pm.effective_config();
    now = runtime::wall_clock_ms();

    if (now >= next_retention) {
      apply_retention(pm, now);
      next_retention = now + std::max<int64_t>(cfg.log_retention_check_interval_ms, 1);
    }
    if (now >= next_producer_expiration) {
      expire_producers(pm, now, cfg.producer_id_expiration_ms);
      next_producer_expiration = now + std::max<int64_t>(cfg.producer_id_expiration_check_interval_ms, 1);
    }
    if (now >= next_flush_check) {
      flush_due(pm, now);
      next_flush_check = now + 1000;
    }

    if (cleaning) {
      // The log may have been deleted (or closed at shutdown) since the last slice.
      if (pm.find(cleaning->tp.topic, cleaning->tp.partition) != cleaning->log) {
        cleaning.reset();
      } else {
        auto done = cleaning->job->step(*cleaning->log, now, kSliceBytes);
        if (!done) {
          lg->error("{}-{}: compaction failed (retrying in {} s): {}", cleaning->tp.topic, cleaning->tp.partition,
                    kFailureBackoffMs / 1000, done.err().message);
          failed_until[cleaning->tp] = now + kFailureBackoffMs;
          cleaning.reset();
        } else if (done.value()) {
          cleaning.reset();
          next_clean_check = now;  // another log may be due
        }
      }
    } else if (cfg.log_cleaner_enable && now >= next_clean_check) {
      cleaning = pick_log_to_clean(pm, now, static_cast<size_t>(std::max<int64_t>(cfg.log_cleaner_dedupe_buffer_size, 1 << 20)),
                                   failed_until);
      if (!cleaning) next_clean_check = now + std::max<int64_t>(cfg.log_cleaner_backoff_ms, 10);
    }

    // Yield between slices; otherwise sleep until the next thing is due.
    int64_t wait = cleaning ? 0 : std::min<int64_t>({kIdleTickMs, std::max<int64_t>(next_retention - now, 0),
                                                         std::max<int64_t>(next_producer_expiration - now, 0)});
    co_await runtime::sleep_for(wait);
  }
}

}  // namespace gregor::broker
