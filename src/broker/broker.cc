#include "broker/broker.h"

#include <cstring>

#include "base/log.h"
#include "broker/connection.h"
#include "broker/consumer_offsets.h"
#include "broker/high_watermarks.h"
#include "broker/isr_changes.h"
#include "broker/lifecycle.h"
#include "broker/producer_ids.h"
#include "broker/quorum_bootstrap.h"
#include "broker/transactions.h"
#include "broker/log_maintenance.h"
#include "runtime/file.h"
#include "runtime/random.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::error_code;

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

auto lg() { return log::get("broker"); }

constexpr int16_t kCreateTopicsVersion = 7;
constexpr int16_t kDeleteTopicsVersion = 6;
}  // namespace

broker::broker(broker_config config, std::string cluster_id, bool recover)
    : config_(std::move(config)), cluster_id_(std::move(cluster_id)), recover_(recover) {
  size_t n = runtime::shard_count();
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<shard_state>();
    s->partitions = std::make_unique<partition_manager>(config_, i, n, recover_);
    s->fetchers = std::make_unique<replica_fetchers>(*this);
    shards_.push_back(std::move(s));
  }
  offsets_log_ = std::make_unique<consumer_offsets_log>(*this);
  groups_ = std::make_unique<coordinator::group_service>(group_config_from(config_), *offsets_log_, 0);
  producer_ids_ = std::make_unique<producer_id_manager>(*this);
  // The transaction coordinator shares shard 0 with the producer ids it hands out.
  txn_log_ = std::make_unique<consumer_offsets_log>(*this, transaction_state_spec(config_));
  txn_markers_ = std::make_unique<broker_txn_marker_sender>(*this);
  transactions_ = std::make_unique<coordinator::transaction_service>(
      txn_config_from(config_), *txn_log_, *txn_markers_, 0, [this] { return producer_ids_->next_id(); });
  txn_verifier_ = std::make_unique<broker_txn_verifier>(*this);
}

broker::~broker() = default;

metadata::image_ptr broker::image() const {
  auto img = shards_[runtime::this_shard()]->image;
  if (img) return img;
  // Before the first publication: an empty image of this cluster.
  static thread_local metadata::image_ptr empty;
  if (!empty || empty->cluster_id != cluster_id_) {
    metadata::image e;
    e.cluster_id = cluster_id_;
    empty = std::make_shared<const metadata::image>(std::move(e));
  }
  return empty;
}

partition_manager& broker::partitions() { return *shards_[runtime::this_shard()]->partitions; }

bool broker::is_active_controller() const { return controller_ && controller_->active(); }

int32_t broker::active_controller_id() const { return quorum_ ? quorum_->leader_id() : -1; }

result<void> broker::bind(const std::vector<listener_endpoint>& endpoints, listener_kind kind) {
  for (auto& l : endpoints) {
    auto bound = runtime::listen(l.host, l.port);
    if (!bound) return bound.err();
    bound_ports_.push_back(bound.value()->port());
    lg()->info("listening on {}://{}:{}{}", l.name, l.host.empty() ? "0.0.0.0" : l.host, bound.value()->port(),
               kind == listener_kind::controller ? " (controller)" : "");
    auto* raw = bound.value().get();
    listeners_.push_back(std::move(bound.value()));
    runtime::spawn(0, [this, raw, kind, name = l.name] { return accept_loop(raw, kind, name); });
  }
  return ok();
}

runtime::task<result<void>> broker::start() {
  // The metadata quorum: the voters of controller.quorum.voters (or those
  // controller.quorum.bootstrap.servers names), or this node alone (no
  // process.roles: a quorum of one, no network).
  raft::driver_config rc;
  rc.node_id = config_.node_id;
  rc.cluster_id = cluster_id_;
  rc.metadata_log_dir = config_.metadata_log_dir.empty() ? config_.log_dirs.front() : config_.metadata_log_dir;
  if (!config_.controller_listener_names.empty()) rc.controller_listener = config_.controller_listener_names.front();
  if (config_.roles_given && config_.quorum_voters.empty()) {
    // A broker-only node given controller.quorum.bootstrap.servers only.
    auto found = co_await discover_voters(config_, config_.initial_broker_registration_timeout_ms);
    if (!found) co_return found.err();
    rc.voters = std::move(found.value());
  } else if (config_.roles_given) {
    for (auto& v : config_.quorum_voters) rc.voters.push_back({v.id, v.host, v.port});
  } else {
    rc.voters.push_back({config_.node_id, "", 0});
  }
  rc.election_timeout_ms = config_.quorum_election_timeout_ms;
  rc.election_backoff_max_ms = config_.quorum_election_backoff_max_ms;
  rc.fetch_timeout_ms = config_.quorum_fetch_timeout_ms;
  rc.request_timeout_ms = config_.quorum_request_timeout_ms;
  rc.retry_backoff_ms = config_.quorum_retry_backoff_ms;
  auto q = raft::driver::open(rc, recover_);
  if (!q) co_return q.err();
  quorum_ = std::move(q.value());

  metadata::image base;
  base.cluster_id = cluster_id_;
  loader_ = std::make_unique<metadata::loader>(
      *quorum_, base,
      metadata::snapshot_policy{config_.metadata_log_max_record_bytes_between_snapshots,
                                config_.metadata_log_max_snapshot_interval_ms});
  if (auto r = loader_->start(); !r) co_return r.err();
  if (config_.is_controller) {
    metadata::controller_settings cs;
    cs.cluster_id = cluster_id_;
    cs.session_timeout_ms = config_.broker_session_timeout_ms;
    cs.auto_leader_rebalance = config_.auto_leader_rebalance_enable;
    cs.leader_imbalance_check_ms = config_.leader_imbalance_check_interval_seconds * 1000;
    cs.leader_imbalance_percentage = config_.leader_imbalance_per_broker_percentage;
    cs.unclean_leader_election_enable = config_.unclean_leader_election_enable;
    controller_ = std::make_unique<metadata::controller_service>(cs, *quorum_, *loader_);
  }
  // The quorum's own listener first: the voters need each other to elect.
  if (config_.is_controller && config_.roles_given)
    if (auto r = bind(controller_listeners(config_), listener_kind::controller); !r) co_return r.err();
  quorum_->start();
  if (controller_) controller_->start();
  runtime::spawn(0, [this] { return metadata_loop(); });
  if (!config_.is_broker) co_return ok();

  lifecycle_ = std::make_unique<broker_lifecycle>(*this);
  if (auto r = co_await lifecycle_->start(config_.initial_broker_registration_timeout_ms); !r) co_return r.err();
  // The image is whole now (it has this broker's registration): the shards
  // may open their partitions.
  may_publish_ = true;
  co_await publish(with_controller_id(loader_->current()));
  size_t partitions = 0;
  for (auto& s : shards_) partitions += s->partitions->size();
  lg()->info("loaded {} topics, {} partitions over {} shards", loader_->current()->topics.size(), partitions,
             shards_.size());
  // Before clients connect: groups in partitions still loading answer
  // COORDINATOR_LOAD_IN_PROGRESS.
  groups_->start();
  transactions_->start();
  if (auto r = bind(broker_listeners(config_), listener_kind::broker); !r) co_return r.err();
  for (size_t i = 0; i < shards_.size(); ++i) {
    runtime::spawn(i, [this] { return run_log_maintenance(*this); });
    runtime::spawn(i, [this] { return run_isr_changes(*this); });
  }
  runtime::spawn(0, [this] { return run_high_watermark_checkpoints(*this); });
  co_return ok();
}

runtime::task<void> broker::metadata_loop() {
  while (!stopping_) {
    uint64_t seen = quorum_->changes();
    auto changed = loader_->catch_up(runtime::wall_clock_ms());
    if (!changed) {
      // A record we cannot apply: this node's image would go wrong from here.
      runtime::current().halt("cannot apply the metadata log: " + changed.err().message);
      co_return;
    }
    if (controller_) controller_->on_applied();
    if (may_publish_) {
      auto img = with_controller_id(loader_->current());
      if (!published_ || img->last_offset != published_->last_offset || img->controller_id != published_->controller_id)
        co_await publish(img);
    }
    if (auto r = loader_->maybe_snapshot(runtime::wall_clock_ms()); !r)
      log::get("metadata")->error("{}", r.err().message);
    co_await quorum_->wait_for_change(seen, 500);
  }
}

metadata::image_ptr broker::with_controller_id(metadata::image_ptr img) const {
  // Clients are told of a controller they can reach: the quorum's leader if
  // it is a live broker, else this broker (it forwards admin requests to
  // whichever node the quorum elects), else any live broker — as Kafka's
  // brokers name a live broker rather than an unreachable controller.
  int32_t id = -1;
  int32_t leader = quorum_->leader_id();
  if (auto* b = img->broker(leader); b && !b->fenced) id = leader;
  if (id < 0 && config_.is_broker)
    if (auto* self = img->broker(config_.node_id); self && !self->fenced) id = config_.node_id;
  if (id < 0) {
    auto live = img->unfenced_brokers();
    if (!live.empty()) id = live.front();
  }
  if (id == img->controller_id) return img;
  auto copy = std::make_shared<metadata::image>(*img);
  copy->controller_id = id;
  return copy;
}

runtime::task<void> broker::accept_loop(runtime::listener* l, listener_kind kind, std::string name) {
  while (!stopping_) {
    size_t target = next_shard_++ % shards_.size();
    auto c = co_await l->accept(target);
    if (!c) {
      if (stopping_) break;
      lg()->warn("accept failed: {}", c.err().message);
      continue;
    }
    runtime::spawn(target, [this, conn = std::move(c.value()), kind, name]() -> runtime::task<void> {
      co_await serve_connection(*this, conn, kind, name);
    });
  }
}

runtime::task<void> broker::shutdown(bool controlled) {
  // As Kafka's brokers do, wait for the controller's go-ahead at most one
  // session: past it the controller fences this broker anyway, and the last
  // node of a cluster being stopped has no quorum left to ask.
  if (controlled && lifecycle_ && !stopping_) co_await lifecycle_->controlled_shutdown(config_.broker_session_timeout_ms);
  stopping_ = true;
  if (lifecycle_) lifecycle_->stop();
  groups_->stop();
  transactions_->stop();
  for (auto& l : listeners_) l->close();
  if (may_publish_) co_await checkpoint_high_watermarks(*this);
  for (size_t i = 0; i < shards_.size(); ++i) {
    co_await runtime::submit_to_void(i, [this, i]() -> runtime::task<void> {
      shards_[i]->fetchers->close();
      shards_[i]->partitions->close_all();
      co_return;
    });
  }
  for (auto& [_, c] : controller_clients_) c->close();
  if (controller_) controller_->stop();
  if (quorum_) co_await quorum_->shutdown();
}

runtime::task<void> broker::publish(metadata::image_ptr img) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    co_await runtime::submit_to_void(i, [this, i, img]() -> runtime::task<void> {
      auto& s = *shards_[i];
      // Publications can overtake each other; an older image never replaces a newer one.
      if (s.image && s.image->last_offset > img->last_offset) co_return;
      s.image = img;
      s.partitions->apply_image(*img, config_.node_id);
      s.fetchers->reconcile();
      co_return;
    });
  }
  if (!published_ || img->last_offset >= published_->last_offset) {
    published_ = img;
    published_offset_ = img->last_offset;
    // The groups this broker coordinates: those of the offsets partitions it leads.
    if (auto* t = img->topic(std::string(coordinator::offsets_topic_name))) {
      std::vector<bool> owned;
      for (auto& p : t->partitions) owned.push_back(p.leader == config_.node_id);
      co_await runtime::submit_to_void(groups_->home_shard(), [this, owned]() -> runtime::task<void> {
        groups_->set_owned_partitions(owned);
        co_return;
      });
    }
    // The transactional ids it coordinates: those of the __transaction_state
    // partitions it leads (with their leader epochs, the coordinator epoch).
    if (auto* t = img->topic(std::string(coordinator::transaction_state_topic_name))) {
      std::vector<int32_t> epochs;
      for (auto& p : t->partitions) epochs.push_back(p.leader == config_.node_id ? p.leader_epoch : -1);
      co_await runtime::submit_to_void(transactions_->home_shard(), [this, epochs]() -> runtime::task<void> {
        transactions_->set_owned_partitions(epochs);
        co_return;
      });
    }
  }
  published_changed_.notify_all();
  // Leaderships and ISRs may have changed: waiting produces and fetches look again.
  notify(event::appended);
  notify(event::high_watermark);
}

runtime::task<void> broker::wait_until_published(int64_t offset, int64_t timeout_ms) {
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  while (may_publish_ && published_offset_ < offset && !stopping_ && runtime::monotonic_ms() < deadline)
    co_await published_changed_.wait_for(std::min<int64_t>(100, deadline - runtime::monotonic_ms()));
}

runtime::task<metadata::decision> broker::controller_write_at(metadata::controller_service::plan_fn plan,
                                                              bool validate_only) {
  co_return co_await runtime::submit_to(0, [this, plan = std::move(plan),
                                            validate_only]() -> runtime::task<metadata::decision> {
    if (!controller_)
      co_return metadata::decision{error_code::not_controller, "This node is not a controller."};
    auto d = co_await controller_->write(plan, validate_only);
    // Answer once this node's shards see the change (a client's next
    // request here must find it).
    if (d.ok() && !validate_only && is_broker()) co_await wait_until_published(loader_->applied_offset() - 1, 10000);
    co_return d;
  });
}

runtime::task<metadata::decision> broker::controller_write(controller_plan plan, bool validate_only) {
  co_return co_await controller_write_at(
      [plan = std::move(plan)](const metadata::image& img, int64_t, std::vector<metadata::record>& out) {
        return plan(img, out);
      },
      validate_only);
}

protocol::rpc_client* broker::controller_client() {
  int32_t leader = quorum_->leader_id();
  if (leader < 0) return nullptr;
  auto* v = quorum_->voter(leader);
  if (!v || v->host.empty()) return nullptr;
  auto& c = controller_clients_[leader];
  if (!c) c = std::make_unique<protocol::rpc_client>(v->host, v->port, "broker-" + std::to_string(config_.node_id));
  return c.get();
}

runtime::task<result<bytes>> broker::call_controller_raw(int16_t api_key, int16_t version, iobuf body,
                                                         int64_t timeout_ms) {
  const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
  std::string last_error = "no active controller";
  while (runtime::monotonic_ms() < deadline && !stopping()) {
    if (quorum_->leader_id() == config_.node_id && controller_) co_return error{"the active controller is this node"};
    auto* c = controller_client();
    if (!c) {
      co_await quorum_->wait_for_change(quorum_->changes(), 100);
      continue;
    }
    iobuf copy;
    for (auto& ch : body.chunks()) copy.append(bytes_view(std::get<bytes>(ch)));
    auto r = co_await c->call_raw(api_key, version, std::move(copy),
                                  std::min<int64_t>(deadline - runtime::monotonic_ms(),
                                                    config_.quorum_request_timeout_ms * 5));
    if (r) co_return r;
    last_error = r.err().message;
    co_await runtime::sleep_for(config_.quorum_retry_backoff_ms * 5);
  }
  co_return error{"cannot reach the active controller: " + last_error};
}

runtime::task<std::vector<metadata::decision>> broker::create_topics(std::vector<metadata::topic_spec> specs,
                                                                     bool validate_only) {
  co_return co_await runtime::submit_to(0, [this, specs = std::move(specs), validate_only]()
                                               -> runtime::task<std::vector<metadata::decision>> {
    std::vector<metadata::decision> out;
    if (controller_ && quorum_->leader_id() == config_.node_id) {
      metadata::controller_defaults defaults{config_.num_partitions, config_.default_replication_factor,
                                             runtime::random_u64()};
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
    // Another node is the active controller: ask it, as Kafka's brokers do
    // for topics they create themselves.
    protocol::create_topics_request req;
    req.timeout_ms = 30000;
    req.validate_only = validate_only;
    for (auto& s : specs) {
      auto& t = req.topics.emplace_back();
      t.name = s.name;
      t.num_partitions = s.num_partitions;
      t.replication_factor = s.replication_factor;
      for (auto& [p, replicas] : s.assignments) t.assignments.push_back({p, replicas, {}});
      for (auto& [k, v] : s.configs) t.configs.push_back({k, v, {}});
    }
    auto r = co_await call_controller<protocol::create_topics_response>(req, kCreateTopicsVersion, 30000);
    for (auto& s : specs) {
      metadata::decision d{error_code::request_timed_out, r ? "" : r.err().message};
      if (r)
        for (auto& t : r->topics)
          if (t.name == s.name) d = {static_cast<error_code>(t.error_code), t.error_message.value_or("")};
      out.push_back(d);
    }
    // Wait (a little) until this node sees the new topics.
    const int64_t deadline = runtime::monotonic_ms() + 5000;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!out[i].ok() || validate_only) continue;
      while (!image()->topic(specs[i].name) && runtime::monotonic_ms() < deadline && !stopping_)
        co_await published_changed_.wait_for(100);
    }
    co_return out;
  });
}

runtime::task<std::vector<metadata::decision>> broker::delete_topics(std::vector<std::string> names) {
  co_return co_await runtime::submit_to(0, [this, names = std::move(names)]()
                                               -> runtime::task<std::vector<metadata::decision>> {
    std::vector<metadata::decision> out;
    if (controller_ && quorum_->leader_id() == config_.node_id) {
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
    protocol::delete_topics_request req;
    req.timeout_ms = 30000;
    for (auto& n : names) req.topics.push_back({n, {}, {}});
    auto r = co_await call_controller<protocol::delete_topics_response>(req, kDeleteTopicsVersion, 30000);
    for (auto& n : names) {
      metadata::decision d{error_code::request_timed_out, r ? "" : r.err().message};
      if (r)
        for (auto& t : r->responses)
          if (t.name == n) d = {static_cast<error_code>(t.error_code), t.error_message.value_or("")};
      out.push_back(d);
    }
    co_return out;
  });
}

void broker::notify(event e) {
  const auto k = static_cast<size_t>(e);
  events_[k].fetch_add(1);
  for (size_t i = 0; i < shards_.size(); ++i) {
    auto& s = *shards_[i];
    if (!s.has_waiters[k].exchange(false)) continue;
    if (i == runtime::this_shard()) {
      s.wake[k].notify_all();
    } else {
      runtime::current().post(i, [&s, k] { s.wake[k].notify_all(); });
    }
  }
}

runtime::task<void> broker::wait_for(event e, uint64_t seen_epoch, int64_t timeout_ms) {
  const auto k = static_cast<size_t>(e);
  auto& s = *shards_[runtime::this_shard()];
  s.has_waiters[k].store(true);
  // An event between the caller's read and this point has already bumped the epoch.
  if (events_[k].load() != seen_epoch) co_return;
  co_await s.wake[k].wait_for(timeout_ms);
}

}  // namespace gregor::broker
