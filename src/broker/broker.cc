#include "broker/broker.h"

#include <cstring>

#include "base/log.h"
#include "broker/connection.h"
#include "broker/consumer_offsets.h"
#include "broker/log_maintenance.h"
#include "runtime/shards.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::broker {

namespace {
metadata::uuid random_topic_id() {
  metadata::uuid id;
  do {
    for (size_t i = 0; i < id.data.size(); i += 8) {
      uint64_t r = runtime::random_u64();
      std::memcpy(id.data.data() + i, &r, 8);
    }
  } while (id.is_zero());
  return id;
}
}  // namespace

broker::broker(broker_config config, std::string cluster_id, bool recover)
    : config_(std::move(config)), cluster_id_(std::move(cluster_id)), recover_(recover) {
  size_t n = runtime::shard_count();
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<shard_state>();
    s->partitions = std::make_unique<partition_manager>(config_, i, n, recover_);
    shards_.push_back(std::move(s));
  }
  offsets_log_ = std::make_unique<consumer_offsets_log>(*this);
  groups_ = std::make_unique<coordinator::group_service>(group_config_from(config_), *offsets_log_, 0);
}

broker::~broker() = default;

metadata::image_ptr broker::image() const { return shards_[runtime::this_shard()]->image; }
partition_manager& broker::partitions() { return *shards_[runtime::this_shard()]->partitions; }

runtime::task<result<void>> broker::start() {
  auto lg = log::get("broker");
  metadata::image base;
  base.cluster_id = cluster_id_;
  base.controller_id = config_.node_id;
  {
    metadata::broker_registration self;
    self.node_id = config_.node_id;
    for (auto& l : advertised_broker_listeners(config_)) self.endpoints.push_back({l.name, l.host, l.port, 0});
    self.rack = config_.broker_rack;
    self.fenced = false;
    base.brokers[config_.node_id] = self;
  }
  auto q = metadata::quorum::open(config_.log_dirs.front(), base, recover_);
  if (!q) co_return q.err();
  quorum_ = std::move(q.value());
  co_await publish(quorum_->current());
  size_t partitions = 0;
  for (auto& s : shards_) partitions += s->partitions->size();
  lg->info("loaded {} topics, {} partitions over {} shards", quorum_->current()->topics.size(), partitions,
           shards_.size());
  // Before clients connect: groups in partitions still loading answer
  // COORDINATOR_LOAD_IN_PROGRESS.
  groups_->start();

  for (auto& l : config_.listeners) {
    auto bound = runtime::listen(l.host, l.port);
    if (!bound) co_return bound.err();
    bound_ports_.push_back(bound.value()->port());
    lg->info("listening on {}://{}:{}", l.name, l.host.empty() ? "0.0.0.0" : l.host, bound.value()->port());
    listeners_.push_back(std::move(bound.value()));
  }
  for (auto& l : listeners_) runtime::spawn(0, [this, p = l.get()] { return accept_loop(p); });
  for (size_t i = 0; i < shards_.size(); ++i)
    runtime::spawn(i, [this] { return run_log_maintenance(*this); });
  co_return ok();
}

runtime::task<void> broker::accept_loop(runtime::listener* l) {
  while (!stopping_) {
    size_t target = next_shard_++ % shards_.size();
    auto c = co_await l->accept(target);
    if (!c) {
      if (stopping_) break;
      log::get("broker")->warn("accept failed: {}", c.err().message);
      continue;
    }
    runtime::spawn(target, [this, conn = std::move(c.value())]() -> runtime::task<void> {
      co_await serve_connection(*this, conn);
    });
  }
}

runtime::task<void> broker::shutdown() {
  stopping_ = true;
  groups_->stop();
  for (auto& l : listeners_) l->close();
  for (size_t i = 0; i < shards_.size(); ++i) {
    co_await runtime::submit_to_void(i, [this, i]() -> runtime::task<void> {
      shards_[i]->partitions->close_all();
      co_return;
    });
  }
  if (quorum_) quorum_->close();
}

runtime::task<void> broker::publish(metadata::image_ptr img) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    co_await runtime::submit_to_void(i, [this, i, img]() -> runtime::task<void> {
      auto& s = *shards_[i];
      // Publications can overtake each other; an older image never replaces a newer one.
      if (s.image && s.image->last_offset > img->last_offset) co_return;
      s.image = img;
      s.partitions->apply_image(*img, config_.node_id);
      co_return;
    });
  }
}

runtime::task<metadata::decision> broker::commit(std::vector<metadata::record> records) {
  // Runs on shard 0. The append, fsync and apply are synchronous, so commits
  // never interleave and each decision sees every earlier one.
  auto committed = quorum_->commit(records);
  if (!committed) {
    log::get("broker")->error("metadata commit failed: {}", committed.err().message);
    co_return metadata::decision{protocol::error_code::unknown_server_error, committed.err().message};
  }
  co_await publish(quorum_->current());
  co_return metadata::decision{};
}

runtime::task<std::vector<metadata::decision>> broker::create_topics(std::vector<metadata::topic_spec> specs,
                                                                     bool validate_only) {
  std::vector<metadata::decision> out;
  const metadata::controller_defaults defaults{config_.num_partitions, config_.default_replication_factor};
  for (auto& spec : specs) {
    auto id = random_topic_id();
    auto d = co_await controller_write(
        [&spec, &id, &defaults](const metadata::image& img, std::vector<metadata::record>& records) {
          return metadata::plan_create_topic(img, spec, id, defaults, records);
        },
        validate_only);
    if (d.ok() && !validate_only) log::get("controller")->info("created topic {} ({})", spec.name, id.to_string());
    out.push_back(d);
  }
  co_return out;
}

runtime::task<std::vector<metadata::decision>> broker::delete_topics(std::vector<std::string> names) {
  std::vector<metadata::decision> out;
  for (auto& name : names) {
    auto d = co_await controller_write(
        [&name](const metadata::image& img, std::vector<metadata::record>& records) {
          return metadata::plan_delete_topic(img, name, records);
        },
        false);
    if (d.ok()) log::get("controller")->info("deleted topic {}", name);
    out.push_back(d);
  }
  co_return out;
}

runtime::task<metadata::decision> broker::controller_write(controller_plan plan, bool validate_only) {
  co_return co_await runtime::submit_to(
      0, [this, plan = std::move(plan), validate_only]() -> runtime::task<metadata::decision> {
        std::vector<metadata::record> records;
        auto d = plan(*quorum_->current(), records);
        if (d.ok() && !validate_only && !records.empty()) d = co_await commit(std::move(records));
        co_return d;
      });
}

void broker::notify_appended() {
  append_epoch_.fetch_add(1);
  for (size_t i = 0; i < shards_.size(); ++i) {
    auto& s = *shards_[i];
    if (!s.has_waiters.exchange(false)) continue;
    if (i == runtime::this_shard()) {
      s.appended.notify_all();
    } else {
      runtime::current().post(i, [&s] { s.appended.notify_all(); });
    }
  }
}

runtime::task<void> broker::wait_for_append(uint64_t seen_epoch, int64_t timeout_ms) {
  auto& s = *shards_[runtime::this_shard()];
  s.has_waiters.store(true);
  // An append between the caller's read and this point has already bumped the epoch.
  if (append_epoch_.load() != seen_epoch) co_return;
  co_await s.appended.wait_for(timeout_ms);
}

}  // namespace gregor::broker
