#include "cluster_sim.h"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <set>

#include "base/log.h"
#include "broker/server.h"
#include "metadata/cluster_control.h"
#include "protocol/record_batch.h"
#include "protocol/rpc_client.h"
#include "runtime/clock.h"
#include "runtime/random.h"
#include "runtime/sim/disk.h"
#include "runtime/sim/world.h"

namespace gregor::sim {

namespace rs = runtime::sim;
using protocol::error_code;

namespace {

constexpr int32_t kClient = 1000;
constexpr uint16_t kBrokerPort = 9092;
constexpr uint16_t kControllerPort = 9093;
constexpr const char* kClusterId = "c2ltdWxhdGVkLWNsdXN0QQ";

std::string host_of(int32_t id) { return "n" + std::to_string(id); }

uint64_t fnv(uint64_t h, bytes_view b) {
  for (uint8_t c : b) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// The image as the records that rebuild it, hashed: equal images, equal hashes.
uint64_t fingerprint(const metadata::image& img) {
  uint64_t h = 1469598103934665603ULL;
  for (auto& r : metadata::image_records(img)) h = fnv(h, metadata::encode_record(r));
  return h;
}

struct committed_batch {
  int64_t last_offset;
  int32_t epoch;
  uint32_t crc;
};

// What the client knows of a topic it made.
struct topic_fate {
  bool create_acked = false;
  // The id CreateTopics answered with. A create can take effect twice (a
  // duplicated or retried request, as with any Kafka admin client): after a
  // delete it then makes a new topic of the same name, with another id.
  protocol::uuid topic_id;
  bool delete_attempted = false;
  bool delete_acked = false;
  int32_t partitions_acked = 0;
};

class harness {
 public:
  explicit harness(const options& o) : o_(o), w_(o.seed) {
    for (int32_t i = 1; i <= o.voters + o.brokers; ++i) ids_.push_back(i);
    log::set_level(o.log_level);
    log::set_prefix([this] {
      auto* n = dynamic_cast<rs::node*>(&runtime::current());
      return fmt::format("{:9.3f} {}", static_cast<double>(w_.now_us()) / 1e6, n ? host_of(n->id()) : "--");
    });
  }
  ~harness() { log::set_prefix(nullptr); }

  outcome run() {
    for (int32_t id : ids_) w_.add_node(id, host_of(id), 2);
    auto& client = w_.add_node(kClient, "client", 1);
    for (int32_t id : ids_) boot(id);
    w_.on_step([this] { check(); });
    client.start([this] {
      runtime::spawn(0, [this] { return client_loop(); });
      return std::shared_ptr<void>();
    });

    // Faults and workload.
    const int64_t fault_end = w_.now_ms() + o_.fault_ms;
    while (out_.ok && w_.now_ms() < fault_end && !w_.stuck()) {
      int64_t next = std::min(fault_end, w_.now_ms() + w_.random_between(200, 2500));
      w_.run_for(next - w_.now_ms());
      if (o_.faults && out_.ok) inject();
    }
    if (w_.stuck()) fail("virtual time stopped moving: some loop never waits");
    // Heal, restart everything, and expect the cluster to recover.
    heal();
    if (w_.stuck()) fail("virtual time stopped moving: some loop never waits");
    if (out_.ok) {
      bool settled = w_.run_until([this] { return !out_.ok || settled_state(); }, o_.heal_ms);
      if (out_.ok && !settled) fail("the cluster did not recover within " + std::to_string(o_.heal_ms) + " ms: " + describe());
    }
    if (out_.ok) {
      final_create_ = true;
      bool created = w_.run_until([this] { return !out_.ok || final_created_; }, o_.heal_ms);
      if (out_.ok && !created) fail("no topic could be created after healing: " + describe());
    }
    if (out_.ok) {
      // An answer leaves once its record is committed; the controller's image
      // applies it a step later. Check what is committed, so wait for that.
      w_.run_until([this] {
        auto* c = active_controller();
        return !out_.ok || (c && c->metadata_loader().applied_offset() >= c->quorum().high_watermark());
      }, 5000);
      if (out_.ok) check_acknowledged();
    }
    stop_client_ = true;
    out_.steps = w_.steps();
    out_.virtual_ms = w_.now_ms();
    // Every process goes before the harness that the client's coroutine uses.
    for (auto* n : w_.nodes()) n->crash();
    return out_;
  }

 private:
  // ---- nodes

  broker::broker_config config_for(int32_t id) {
    bool voter = id <= o_.voters;
    std::string voters;
    for (int32_t v = 1; v <= o_.voters; ++v)
      voters += (voters.empty() ? "" : ",") + fmt::format("{}@{}:{}", v, host_of(v), kControllerPort);
    std::map<std::string, std::string> props = {
        {"process.roles", voter ? "broker,controller" : "broker"},
        {"node.id", std::to_string(id)},
        {"listeners", voter ? fmt::format("PLAINTEXT://{0}:{1},CONTROLLER://{0}:{2}", host_of(id), kBrokerPort,
                                          kControllerPort)
                            : fmt::format("PLAINTEXT://{}:{}", host_of(id), kBrokerPort)},
        {"controller.listener.names", "CONTROLLER"},
        {"controller.quorum.voters", voters},
        {"cluster.id", kClusterId},
        {"log.dirs", "/data"},
        {"num.shards", "2"},
        // Small, so that snapshots (and FetchSnapshot) happen within a run.
        {"metadata.log.max.record.bytes.between.snapshots", "4096"},
        {"leader.imbalance.check.interval.seconds", "5"},
        {"offsets.topic.num.partitions", "3"},
        {"log.level", o_.log_level},
    };
    auto c = broker::make_broker_config(props, nullptr);
    if (!c) throw std::runtime_error("simulation config: " + c.err().message);
    return c.value();
  }

  void boot(int32_t id) {
    auto cfg = config_for(id);
    w_.get(id).start([cfg]() -> std::shared_ptr<void> {
      auto p = broker::node_process::create(cfg);
      if (!p) {
        runtime::current().halt("cannot start: " + p.err().message);
        return nullptr;
      }
      std::shared_ptr<broker::node_process> sp(std::move(p.value()));
      sp->start([](const std::string& why) { runtime::current().halt("could not start: " + why); });
      return sp;
    });
  }

  broker::node_process* process(int32_t id) {
    auto& n = w_.get(id);
    if (!n.running()) return nullptr;
    return static_cast<broker::node_process*>(n.process().get());
  }

  // ---- invariants after every event

  struct node_watch {
    uint64_t incarnation = ~0ULL;
    int64_t hw = -1;
    int64_t checked = 0;  // committed batches below this were compared
    int64_t applied = -1;
  };

  void fail(const std::string& why) {
    if (!out_.ok) return;
    out_.ok = false;
    out_.failure = fmt::format("at {} ms (step {}): {}", w_.now_ms(), w_.steps(), why);
  }

  void check() {
    if (!out_.ok) return;
    for (int32_t id : ids_) {
      auto* p = process(id);
      if (!p) continue;
      auto* q = p->node().quorum_if_open();
      auto* ld = p->node().loader_if_open();
      if (!q || !ld) continue;
      auto& st = watch_[id];
      auto& n = w_.get(id);
      if (st.incarnation != n.incarnation()) st = node_watch{n.incarnation(), -1, q->log().log_start_offset(), -1};
      auto& core = q->state();
      out_.max_epoch = std::max(out_.max_epoch, core.epoch());
      if (core.is_leader()) {
        auto [it, fresh] = leaders_.emplace(core.epoch(), id);
        if (it->second != id)
          return fail(fmt::format("two leaders in epoch {}: nodes {} and {}", core.epoch(), it->second, id));
      }
      int64_t hw = core.high_watermark();
      if (hw < st.hw) return fail(fmt::format("node {}'s high watermark went back from {} to {}", id, st.hw, hw));
      st.hw = hw;
      if (hw > st.checked && !verify_committed(id, *q, st, hw)) return;
      if (ld->applied_offset() != st.applied) {
        st.applied = ld->applied_offset();
        auto img = ld->current();
        uint64_t fp = fingerprint(*img);
        auto [it, fresh] = images_.emplace(st.applied, fp);
        if (it->second != fp)
          return fail(fmt::format("node {}'s image at offset {} differs from another node's", id, st.applied));
        if (auto why = metadata::leadership_violation(*img))
          return fail(fmt::format("node {}'s image at offset {}: {}", id, st.applied, *why));
      }
    }
  }

  // Compares the node's batches in [st.checked, hw) with every other node's.
  bool verify_committed(int32_t id, raft::driver& q, node_watch& st, int64_t hw) {
    st.checked = std::max(st.checked, q.log().log_start_offset());
    while (st.checked < hw) {
      auto data = q.log().read(st.checked, 1 << 20, hw);
      if (!data) {
        fail(fmt::format("node {} cannot read its committed metadata log at {}: {}", id, st.checked,
                         data.err().message));
        return false;
      }
      if (data.value().empty()) break;
      protocol::batch_iterator it{bytes_view(data.value())};
      protocol::batch_header h;
      bool any = false;
      while (it.next(&h)) {
        any = true;
        committed_batch b{h.last_offset(), h.partition_leader_epoch, h.crc};
        auto [known, fresh] = committed_.emplace(h.base_offset, b);
        if (!fresh && (known->second.last_offset != b.last_offset || known->second.epoch != b.epoch ||
                       known->second.crc != b.crc)) {
          fail(fmt::format("node {}'s committed batch at offset {} (epoch {}) differs from another node's (epoch {})",
                           id, h.base_offset, b.epoch, known->second.epoch));
          return false;
        }
        out_.committed_offset = std::max(out_.committed_offset, h.next_offset());
        st.checked = h.next_offset();
      }
      if (!any) break;
    }
    return true;
  }

  // ---- faults

  void inject() {
    auto pick = [&] { return ids_[w_.random_below(ids_.size())]; };
    switch (w_.random_below(12)) {
      case 0:
      case 1: {
        int32_t id = pick();
        if (w_.get(id).running()) {
          w_.get(id).crash();
          ++out_.crashes;
        }
        break;
      }
      case 2:
      case 3:
        for (int32_t id : ids_)
          if (!w_.get(id).running()) {
            boot(id);
            break;
          }
        break;
      case 4: {
        int32_t a = pick(), b = pick();
        if (a != b) {
          w_.partition(a, b);
          ++out_.partitions;
        }
        break;
      }
      case 5: {  // isolate one node from everyone
        int32_t a = pick();
        for (auto* n : w_.nodes())
          if (n->id() != a) w_.partition(a, n->id());
        ++out_.partitions;
        break;
      }
      case 6:
      case 7: w_.heal_all(); break;
      case 8: {
        auto& f = w_.net_faults();
        f.drop = static_cast<double>(w_.random_below(4)) / 100;
        f.duplicate = static_cast<double>(w_.random_below(4)) / 100;
        f.reorder = static_cast<double>(w_.random_below(8)) / 100;
        break;
      }
      case 9: {  // a disk that fails its syncs for a while: the node halts
        auto& f = w_.get(pick()).faults();
        f.sync_error = f.sync_error > 0 ? 0 : 0.05;
        break;
      }
      case 10: {
        auto& f = w_.get(pick()).faults();
        f.write_error = f.write_error > 0 ? 0 : 0.02;
        break;
      }
      case 11: break;  // a quiet moment
    }
  }

  void heal() {
    w_.heal_all();
    w_.net_faults() = rs::network_faults{};
    for (int32_t id : ids_) {
      w_.get(id).faults() = rs::disk_faults{};
      if (!w_.get(id).running()) boot(id);
    }
  }

  // ---- recovery

  // The active controller of the newest epoch: a leader cut off from the
  // others may still think it leads an older one until check-quorum (or a
  // message of the new epoch) tells it otherwise.
  broker::broker* active_controller() {
    broker::broker* best = nullptr;
    for (int32_t id = 1; id <= o_.voters; ++id)
      if (auto* p = process(id); p && p->node().quorum_if_open() && p->node().is_active_controller())
        if (!best || p->node().quorum().epoch() > best->quorum().epoch()) best = &p->node();
    return best;
  }

  bool settled_state() {
    for (int32_t id : ids_) {
      auto* p = process(id);
      if (!p || !p->started()) return false;
    }
    auto* c = active_controller();
    if (!c) return false;
    auto img = c->metadata_loader().current();
    for (int32_t id : ids_) {
      auto* b = img->broker(id);
      if (!b || b->fenced || b->in_controlled_shutdown) return false;
    }
    int64_t hw = c->quorum().high_watermark();
    for (int32_t id : ids_)
      if (process(id)->node().metadata_loader().applied_offset() < hw) return false;
    // Every voter follows that leader in its epoch (no stale leader left).
    for (int32_t id = 1; id <= o_.voters; ++id) {
      auto& q = process(id)->node().quorum();
      if (q.epoch() != c->quorum().epoch() || q.leader_id() != c->quorum().leader_id()) return false;
    }
    return true;
  }

  std::string describe() {
    std::string s;
    for (int32_t id : ids_) {
      auto* p = process(id);
      if (!p) {
        s += fmt::format(" n{}=down", id);
        continue;
      }
      auto* q = p->node().quorum_if_open();
      if (!q) {
        s += fmt::format(" n{}=starting", id);
        continue;
      }
      s += fmt::format(" n{}={}/e{}/l{}/hw{}/applied{}{}", id, raft::role_name(q->state().current_role()), q->epoch(),
                       q->leader_id(), q->high_watermark(), p->node().metadata_loader().applied_offset(),
                       p->started() ? "" : "/not-started");
    }
    return s;
  }

  void check_acknowledged() {
    auto* c = active_controller();
    if (!c) return fail("no active controller at the end");
    auto img = c->metadata_loader().current();
    for (auto& [name, fate] : fates_) {
      auto* t = img->topic(name);
      if (fate.delete_acked && t && t->topic_id == fate.topic_id)
        return fail("topic " + name + " was deleted (acknowledged) but exists");
      if (fate.create_acked && !fate.delete_attempted && !t)
        return fail("topic " + name + " was created (acknowledged) but is gone from the image of node " + std::to_string(c->config().node_id) + ":" + describe());
      if (t && fate.partitions_acked > static_cast<int32_t>(t->partitions.size()))
        return fail(fmt::format("topic {} was grown to {} partitions (acknowledged) but has {}", name,
                                fate.partitions_acked, t->partitions.size()));
      if (fate.create_acked) ++out_.topics_acked;
    }
  }

  // ---- the client

  protocol::rpc_client& client_for(int32_t id) {
    auto& c = clients_[id];
    if (!c) c = std::make_unique<protocol::rpc_client>(host_of(id), kBrokerPort, "sim-client");
    return *c;
  }

  runtime::task<void> client_loop() {
    int next_topic = 0;
    while (!stop_client_) {
      co_await runtime::sleep_for(static_cast<int64_t>(100 + runtime::random_below(400)));
      int32_t target = ids_[runtime::random_below(ids_.size())];
      auto& c = client_for(target);
      uint64_t op = runtime::random_below(4);
      std::vector<std::string> made;
      for (auto& [name, f] : fates_)
        if (f.create_acked && !f.delete_attempted) made.push_back(name);
      if (final_create_ || op <= 1 || made.empty()) {
        std::string name = (final_create_ ? "final-" : "t") + std::to_string(next_topic++);
        protocol::create_topics_request req;
        req.timeout_ms = 10000;
        auto& t = req.topics.emplace_back();
        t.name = name;
        t.num_partitions = static_cast<int32_t>(1 + runtime::random_below(3));
        t.replication_factor = static_cast<int16_t>(1 + runtime::random_below(std::min<size_t>(3, ids_.size())));
        if (final_create_) t.replication_factor = 1;
        auto r = co_await c.call<protocol::create_topics_response>(req, 7, 15000);
        if (!r || r->topics.empty()) continue;
        auto e = static_cast<error_code>(r->topics[0].error_code);
        if (e == error_code::none) fates_[name].topic_id = r->topics[0].topic_id;
        if (e == error_code::none || e == error_code::topic_already_exists) {
          fates_[name].create_acked = true;
          fates_[name].partitions_acked = t.num_partitions;
          if (final_create_) final_created_ = true;
        }
      } else if (op == 2) {
        std::string name = made[runtime::random_below(made.size())];
        protocol::create_partitions_request req;
        req.timeout_ms = 10000;
        auto& t = req.topics.emplace_back();
        t.name = name;
        t.count = fates_[name].partitions_acked + 1;
        auto r = co_await c.call<protocol::create_partitions_response>(req, 1, 15000);
        if (r && !r->results.empty() && r->results[0].error_code == 0)
          fates_[name].partitions_acked = std::max(fates_[name].partitions_acked, t.count);
      } else {
        std::string name = made[runtime::random_below(made.size())];
        fates_[name].delete_attempted = true;
        protocol::delete_topics_request req;
        req.timeout_ms = 10000;
        req.topic_names.push_back(name);
        auto r = co_await c.call<protocol::delete_topics_response>(req, 3, 15000);
        if (!r || r->responses.empty()) continue;
        auto e = static_cast<error_code>(r->responses[0].error_code);
        // (UNKNOWN_TOPIC_OR_PARTITION proves nothing: a broker that has not
        // seen the topic yet may answer for itself when it cannot reach the
        // controller.)
        if (e == error_code::none) fates_[name].delete_acked = true;
      }
    }
  }

  options o_;
  rs::world w_;
  outcome out_;
  std::vector<int32_t> ids_;
  std::map<int32_t, node_watch> watch_;
  std::map<int32_t, int32_t> leaders_;       // epoch -> leader
  std::map<int64_t, committed_batch> committed_;  // base offset -> batch
  std::map<int64_t, uint64_t> images_;        // applied offset -> image fingerprint
  std::map<std::string, topic_fate> fates_;
  std::map<int32_t, std::unique_ptr<protocol::rpc_client>> clients_;
  bool stop_client_ = false;
  bool final_create_ = false;
  bool final_created_ = false;
};

}  // namespace

outcome run(const options& opts) {
  harness h(opts);
  return h.run();
}

std::string replay_command(const options& o) {
  return fmt::format("build/tests/sim/gregor-sim --seed {} --voters {} --brokers {} --fault-ms {}{} --log-level debug",
                     o.seed, o.voters, o.brokers, o.fault_ms, o.faults ? "" : " --no-faults");
}

}  // namespace gregor::sim
