#include "cluster_sim.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "base/log.h"
#include "broker/partition_manager.h"
#include "broker/server.h"
#include "metadata/cluster_control.h"
#include "protocol/record_batch.h"
#include "protocol/rpc_client.h"
#include "runtime/clock.h"
#include "runtime/random.h"
#include "runtime/sim/disk.h"
#include "runtime/sim/world.h"
#include "storage/log.h"

namespace gregor::sim {

namespace rs = runtime::sim;
using protocol::error_code;

namespace {

constexpr int32_t kClient = 1000;
constexpr uint16_t kBrokerPort = 9092;
constexpr uint16_t kControllerPort = 9093;
constexpr const char* kClusterId = "c2ltdWxhdGVkLWNsdXN0QQ";

// The data workload's topic.
//
// flush.messages=1: every append is fsynced before the leader counts it (its
// own) or a follower fetches past it. The simulated disk loses what was not
// synced when a node crashes, on any node, any number of times, and Kafka's
// promise for acks=all rests on replication, not on fsync: with the default
// flush settings a crash of every in-sync replica (or of enough of them, one
// after the other, before they caught up again) loses acknowledged records
// in Kafka too, which is not a bug to report. Kafka's own answer for users
// who need power-loss durability is this setting, so the data topic uses it
// and the checks hold Gregor to the full promise under every crash the sim
// draws. (The other topics keep the defaults: the metadata-only checks do
// not look at their data.)
constexpr const char* kDataTopic = "data";
constexpr int32_t kDataPartitions = 2;
constexpr int16_t kFetchVersion = 12;  // current_leader_epoch (v9+); v13+ names topics by id
constexpr int kProducers = 2;
// Producer i (from 0) is kFirstProducerId + i, epoch 0: far above the ids
// the controller hands out in blocks of 1000 from 0 (the transactional
// producer's come from there).
constexpr int64_t kFirstProducerId = 1'000'000'001;
constexpr const char* kTransactionalId = "sim-txn";
constexpr int32_t kTransactionTimeoutMs = 10'000;

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

// The bytes of a read's records, file regions read in.
bool flatten(const iobuf& buf, bytes& out, std::string& why) {
  for (auto& c : buf.chunks()) {
    if (auto* b = std::get_if<bytes>(&c)) {
      out.insert(out.end(), b->begin(), b->end());
      continue;
    }
    auto& r = std::get<file_region>(c);
    size_t at = out.size();
    out.resize(at + r.size);
    if (auto e = r.source->read_exact_at(r.position, out.data() + at, r.size); !e) {
      why = e.err().message;
      return false;
    }
  }
  return true;
}

struct log_record {
  int64_t offset;
  int32_t epoch;  // the partition leader epoch of its batch
  std::string value;
  int64_t producer_id = -1;  // of its batch (-1: none)
  int32_t sequence = -1;     // the record's own: its batch's base sequence plus its offset delta
  int16_t producer_epoch = -1;
  bool transactional = false;
  bool control = false;
  int16_t control_type = -1;  // a marker's: 0 abort, 1 commit (its key: version, type)
};

// Decodes the records of whole batches; false (and why) if one does not parse.
bool decode_records(bytes_view data, std::vector<log_record>& out, std::string& why, int64_t* next = nullptr) {
  protocol::batch_iterator it(data);
  protocol::batch_header h;
  while (auto batch = it.next(&h)) {
    auto rr = protocol::record_reader::open(*batch);
    if (!rr) {
      why = fmt::format("batch at offset {} does not parse: {}", h.base_offset, rr.err().message);
      return false;
    }
    protocol::record_view rv;
    while (true) {
      auto more = rr->next(rv);
      if (!more) {
        why = fmt::format("batch at offset {}: {}", h.base_offset, more.err().message);
        return false;
      }
      if (!more.value()) break;
      std::string v = rv.value ? std::string(rv.value->begin(), rv.value->end()) : std::string("<null>");
      int32_t seq = h.base_sequence >= 0 ? h.base_sequence + static_cast<int32_t>(rv.offset - h.base_offset) : -1;
      log_record lr{rv.offset, h.partition_leader_epoch, std::move(v), h.producer_id, seq};
      lr.producer_epoch = h.producer_epoch;
      lr.transactional = h.is_transactional();
      lr.control = h.is_control();
      if (lr.control && rv.key && rv.key->size() >= 4)
        lr.control_type = static_cast<int16_t>((static_cast<int>((*rv.key)[2]) << 8) | static_cast<int>((*rv.key)[3]));
      out.push_back(std::move(lr));
    }
    if (next) *next = h.next_offset();
  }
  if (!it.error().empty()) {
    why = it.error();
    return false;
  }
  return true;
}

// The records of a partition's log in [from, to).
bool read_log(storage::log& log, int64_t from, int64_t to, std::vector<log_record>& out, std::string& why) {
  int64_t pos = from;
  while (pos < to) {
    auto r = log.read(pos, 1 << 16, true, to);
    if (!r) {
      why = r.err().message;
      return false;
    }
    if (r.value().offset_out_of_range) {
      why = fmt::format("offset {} is outside the log [{}, {})", pos, r.value().log_start_offset,
                        r.value().log_end_offset);
      return false;
    }
    bytes data;
    if (!flatten(r.value().records, data, why)) return false;
    if (data.empty()) break;
    int64_t next = pos;
    std::vector<log_record> recs;
    if (!decode_records(bytes_view(data), recs, why, &next)) return false;
    for (auto& rec : recs)
      if (rec.offset >= from && rec.offset < to) out.push_back(std::move(rec));
    if (next <= pos) break;
    pos = next;
  }
  return true;
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
    sim_log_ = log::get("sim");
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
      if (o_.data) runtime::spawn(0, [this] { return data_loop(); });
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
    if (out_.ok && o_.data) check_data_readable();
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
        // Kafka's 50 would make most of a run's partitions and steps __transaction_state's.
        {"transaction.state.log.num.partitions", "3"},
        {"log.level", o_.log_level},
    };
    if (o_.data) {
      // Followers that stop fetching leave the ISR within a fault period
      // (Kafka's 30 s would hardly ever shrink it in a 30 s run), a fetch to
      // a leader cut off gives up as soon, and restarts find recent
      // high-watermark checkpoints.
      props["replica.lag.time.max.ms"] = "5000";
      props["replica.socket.timeout.ms"] = "5000";
      props["replica.high.watermark.checkpoint.interval.ms"] = "1000";
      // Crashes here lose every unsynced write, on every replica at once: a
      // partition whose ISR all crash keeps only what was synced (as the data
      // topic's flush.messages=1 does for it). __transaction_state too.
      props["log.flush.interval.messages"] = "1";
    }
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
    check_metadata();
    if (out_.ok && o_.data) check_data();
  }

  void check_metadata() {
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
    stop_producing_ = true;
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
      // After a delete, a duplicated CreateTopics may have made a new topic of
      // the same name (another id): what was acknowledged for the old one says
      // nothing about it.
      bool same_topic = !fate.delete_attempted || (t && t->topic_id == fate.topic_id);
      if (t && same_topic && fate.partitions_acked > static_cast<int32_t>(t->partitions.size()))
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
      if (final_created_) continue;  // done; the data workload may still be reading
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

  // ---- the data workload: what must hold of the data topic's replicas

  // A record that must never disappear: acknowledged to a producer (acks=all)
  // or read by a consumer (so it was below its leader's high watermark).
  struct durable_record {
    std::string value;
    // Every leader from this epoch on must hold it. For an acknowledged
    // record, the epoch that wrote it (the leader answers only if it still
    // leads in the epoch it appended in, so that is the epoch in its batch);
    // but for one acknowledged on a retry, the newest epoch when the answer
    // came (a leader recognises a retry of a batch an earlier leader wrote
    // and the client never heard of: committed in some epoch up to its own,
    // not necessarily in the one that wrote it; seed 26649);
    // for one a consumer read, the epoch of the leader it read it from (the
    // epoch that wrote it is no bound: a leader between the two may have
    // lacked it while it was not committed yet). -1 until known.
    int32_t epoch = -1;
    bool acked_on_retry = false;  // epoch set from the answer, not lowered to its batch's
    bool acked = false;
    bool consumed = false;
    int32_t read_from = -1;  // the node a consumer first read it from

    std::string origin() const {
      if (acked_on_retry) return fmt::format("acknowledged on a retry, when the newest leader epoch was {}", epoch);
      if (acked) return fmt::format("acknowledged, written in epoch {}", epoch);
      return fmt::format("read by a consumer from node {} in leader epoch {}", read_from, epoch);
    }
  };
  // A record some replica held below its high watermark.
  struct committed_record {
    std::string value;
    int32_t epoch;
    int32_t node;
  };
  // An idempotent producer's record: (producer id, sequence).
  using producer_seq = std::pair<int64_t, int32_t>;
  static std::string seq_name(const producer_seq& ps) {
    return fmt::format("producer {} sequence {}", ps.first, ps.second);
  }
  // One data replica on one node, while that node's process lives.
  struct replica_watch {
    uint64_t incarnation = ~0ULL;
    int64_t hw = -1;
    int64_t checked = 0;  // its records below this were compared with committed_data_
    // As leader: the durable records found in its log, for this epoch and
    // durable generation.
    int32_t leader_epoch = -1;
    uint64_t verified_gen = 0;
    int64_t verified_leo = -1;
    std::set<int64_t> verified;
    std::string last_state;  // for the debug log of changes
  };

  static std::string tp_name(int32_t p) { return fmt::format("{}-{}", kDataTopic, p); }

  // Calls fn(node id, partition, replica, log) for each data replica of a
  // running node (of one partition, or of all), on the shard that owns it;
  // stops at the first false.
  template <class F>
  bool each_data_replica(F&& fn, int32_t only_partition = -1) {
    for (int32_t id : ids_) {
      auto* proc = process(id);
      if (!proc) continue;
      auto& n = w_.get(id);
      for (int32_t p = 0; p < kDataPartitions; ++p) {
        if (only_partition >= 0 && p != only_partition) continue;
        runtime::scoped_current here(&n, broker::shard_of(kDataTopic, p, n.shard_count()));
        auto& pm = proc->node().partitions();
        auto* rep = pm.replica(kDataTopic, p);
        auto* log = pm.find(kDataTopic, p);
        if (rep && log && !fn(id, p, *rep, *log)) return false;
      }
    }
    return true;
  }

  void check_data() {
    each_data_replica([this](int32_t id, int32_t p, broker::replica_state& rep, storage::log& log) {
      auto& rw = replica_watch_[{id, p}];
      if (auto inc = w_.get(id).incarnation(); rw.incarnation != inc) rw = replica_watch{inc};
      int64_t hw = rep.current_high_watermark();
      int64_t leo = log.log_end_offset();
      if (hw < rw.hw) {
        fail(fmt::format("node {}'s high watermark of {} went back from {} to {} (log end {}, {})", id, tp_name(p),
                         rw.hw, hw, leo, role_of(rep)));
        return false;
      }
      rw.hw = hw;
      if (hw > leo) {
        fail(fmt::format("node {}'s high watermark of {} is {}, past its log end {} ({})", id, tp_name(p), hw, leo,
                         role_of(rep)));
        return false;
      }
      if (rep.leader) {
        out_.max_data_epoch = std::max(out_.max_data_epoch, rep.leader->leader_epoch());
        newest_data_epoch_[p] = std::max(newest_data_epoch_[p], rep.leader->leader_epoch());
      }
      if (sim_log_->should_log(spdlog::level::debug)) {
        auto state = fmt::format("{}, high watermark {}, log end {}", role_of(rep), hw, leo);
        if (rep.leader) state += fmt::format(", ISR {}", fmt::join(rep.leader->isr(), ","));
        if (state != rw.last_state) sim_log_->debug("n{} {}: {}", id, tp_name(p), state);
        rw.last_state = std::move(state);
      }
      if (hw > rw.checked && !verify_data_committed(id, p, log, rw, hw, rep)) return false;
      return !rep.leader || verify_leader_holds(id, p, log, rw, rep.leader->leader_epoch());
    });
  }

  static std::string role_of(const broker::replica_state& r) {
    if (r.leader) return fmt::format("leader in epoch {}", r.leader->leader_epoch());
    if (r.follower) return fmt::format("follower of {} in epoch {}", r.follower->leader_id(), r.follower->leader_epoch());
    return fmt::format("no leader, epoch {}", r.leader_epoch);
  }

  // Compares the replica's records in [rw.checked, hw) with what any replica
  // ever held below its high watermark, and with the durable records.
  bool verify_data_committed(int32_t id, int32_t p, storage::log& log, replica_watch& rw, int64_t hw,
                             const broker::replica_state& rep) {
    rw.checked = std::max(rw.checked, log.log_start_offset());
    std::vector<log_record> recs;
    std::string why;
    if (!read_log(log, rw.checked, hw, recs, why)) {
      fail(fmt::format("node {} cannot read its log of {} below its high watermark {} ({}): {}", id, tp_name(p), hw,
                       role_of(rep), why));
      return false;
    }
    auto& committed = committed_data_[p];
    for (auto& r : recs) {
      auto [it, fresh] = committed.try_emplace(r.offset, committed_record{r.value, r.epoch, id});
      // Idempotent producers' batches (a transactional producer's sequences
      // start again at each epoch bump: the transaction checks cover it).
      if (fresh && r.producer_id >= 0 && !r.transactional && !r.control && !check_exactly_once(id, p, r, hw, rep))
        return false;
      if (!fresh && (it->second.value != r.value || it->second.epoch != r.epoch)) {
        fail(fmt::format("node {}'s record of {} at offset {} below its high watermark {} ({}) is {} (epoch {}); "
                         "node {} held {} (epoch {}) there below its own",
                         id, tp_name(p), r.offset, hw, role_of(rep), r.value, r.epoch, it->second.node,
                         it->second.value, it->second.epoch));
        return false;
      }
      if (auto d = durable_[p].find(r.offset); d != durable_[p].end()) {
        if (d->second.value != r.value) {
          fail(fmt::format("node {}'s record of {} at offset {} below its high watermark {} ({}) is {} (epoch {}), "
                           "but {} was {} there",
                           id, tp_name(p), r.offset, hw, role_of(rep), r.value, r.epoch, d->second.value,
                           d->second.origin()));
          return false;
        }
        if (d->second.acked && !d->second.acked_on_retry && (d->second.epoch < 0 || r.epoch < d->second.epoch)) {
          d->second.epoch = r.epoch;
          ++durable_gen_;
        }
      }
      rw.checked = r.offset + 1;
    }
    return true;
  }

  // A record of an idempotent producer, below node `id`'s high watermark, at
  // an offset no replica had below its own before. Below high watermarks the
  // offsets come in order (every replica compares its log from its start),
  // so this sees a partition's committed records one after the other: its
  // producer's previous sequence must be there already, its own not.
  bool check_exactly_once(int32_t id, int32_t p, const log_record& r, int64_t hw, const broker::replica_state& rep) {
    producer_seq ps{r.producer_id, r.sequence};
    auto& seqs = seq_offsets_[p];
    auto [it, fresh] = seqs.try_emplace(ps, r.offset);
    if (!fresh) {
      fail(fmt::format("node {} holds {} ({}) of {} twice below its high watermark {} ({}): at offsets {} and {}", id,
                       r.value, seq_name(ps), tp_name(p), hw, role_of(rep), it->second, r.offset));
      return false;
    }
    if (r.sequence > 0) {
      auto prev = seqs.find({r.producer_id, r.sequence - 1});
      if (prev == seqs.end() || prev->second >= r.offset) {
        fail(fmt::format("node {} holds {} ({}) of {} at offset {} below its high watermark {} ({}), but sequence {} "
                         "is not before it",
                         id, r.value, seq_name(ps), tp_name(p), r.offset, hw, role_of(rep), r.sequence - 1));
        return false;
      }
    }
    if (auto a = acked_seqs_[p].find(ps); a != acked_seqs_[p].end() && a->second != r.offset) {
      fail(fmt::format("{} ({}) of {} was acknowledged at offset {}, but node {} holds it at offset {} below its high "
                       "watermark {} ({})",
                       r.value, seq_name(ps), tp_name(p), a->second, id, r.offset, hw, role_of(rep)));
      return false;
    }
    return true;
  }

  // A leader in `epoch` holds every durable record whose epoch is not above it.
  bool verify_leader_holds(int32_t id, int32_t p, storage::log& log, replica_watch& rw, int32_t epoch) {
    int64_t leo = log.log_end_offset();
    if (rw.leader_epoch != epoch || leo < rw.verified_leo) {
      rw.leader_epoch = epoch;
      rw.verified.clear();
      rw.verified_gen = 0;
    }
    if (rw.verified_gen == durable_gen_) return true;
    for (auto& [offset, d] : durable_[p]) {
      if (d.epoch < 0 || d.epoch > epoch || rw.verified.count(offset)) continue;
      if (offset >= leo) {
        fail(fmt::format("node {} leads {} in epoch {} but its log ends at {}: {} at offset {} ({}) is missing", id,
                         tp_name(p), epoch, leo, d.value, offset, d.origin()));
        return false;
      }
      std::vector<log_record> recs;
      std::string why;
      if (!read_log(log, offset, offset + 1, recs, why)) {
        fail(fmt::format("node {} leads {} in epoch {} but cannot read offset {} of its log: {}", id, tp_name(p),
                         epoch, offset, why));
        return false;
      }
      if (recs.empty() || recs.front().offset != offset || recs.front().value != d.value) {
        fail(fmt::format("node {} leads {} in epoch {} and holds {} at offset {}, where {} was {}", id, tp_name(p),
                         epoch,
                         recs.empty() || recs.front().offset != offset ? std::string("no record")
                                                                       : recs.front().value + " (epoch " +
                                                                             std::to_string(recs.front().epoch) + ")",
                         offset, d.value, d.origin()));
        return false;
      }
      rw.verified.insert(offset);
    }
    rw.verified_gen = durable_gen_;
    rw.verified_leo = leo;
    return true;
  }

  // A producer was told `value` is at `offset` (for an idempotent producer's
  // batch, `ps` says whose and which; `retry` if that answered a resend).
  void on_acked(int32_t p, int64_t offset, const std::string& value, std::optional<producer_seq> ps = std::nullopt,
                bool retry = false) {
    ++out_.records_acked;
    if (retry) ++out_.acked_on_retry;
    sim_log_->debug("{} acknowledged at {} offset {}{}{}", value, tp_name(p), offset,
                    ps ? " (" + seq_name(*ps) + ")" : std::string(), retry ? " on a retry" : "");
    if (ps) {
      auto [a, fresh_ack] = acked_seqs_[p].try_emplace(*ps, offset);
      if (!fresh_ack)
        return fail(fmt::format("{} ({}) of {} was acknowledged twice: at offset {}, then at {}", value,
                                seq_name(*ps), tp_name(p), a->second, offset));
      if (auto s = seq_offsets_[p].find(*ps); s != seq_offsets_[p].end() && s->second != offset)
        return fail(fmt::format("{} ({}) of {} was acknowledged{} at offset {}, but a replica held it at offset {} "
                                "below its high watermark",
                                value, seq_name(*ps), tp_name(p), retry ? " on a retry" : "", offset, s->second));
    }
    auto [it, fresh] = durable_[p].try_emplace(offset, durable_record{value});
    auto& d = it->second;
    if (!fresh && d.value != value)
      return fail(fmt::format("{} at offset {} of {} was acknowledged, but {} was {} there", value, offset, tp_name(p),
                              d.value, d.origin()));
    d.acked = true;
    if (retry) {  // (a consumer's read, if one came first, may bound it lower)
      d.acked_on_retry = true;
      d.epoch = d.epoch < 0 ? newest_data_epoch_[p] : std::min(d.epoch, newest_data_epoch_[p]);
    }
    if (auto c = committed_data_[p].find(offset); c != committed_data_[p].end()) {
      if (c->second.value != value)
        return fail(fmt::format("{} at offset {} of {} was acknowledged, but node {} held {} (epoch {}) there below "
                                "its high watermark",
                                value, offset, tp_name(p), c->second.node, c->second.value, c->second.epoch));
      if (!d.acked_on_retry && (d.epoch < 0 || c->second.epoch < d.epoch)) d.epoch = c->second.epoch;
    }
    // The epoch that wrote it, from any replica that has it now (the leader
    // that answered has, unless it crashed since).
    if (d.epoch < 0)
      if (auto e = epoch_in_some_log(p, offset, value)) d.epoch = *e;
    ++durable_gen_;
  }

  // The leader epoch of the batch holding `value` at `offset` in a running
  // replica's log, if one has it.
  std::optional<int32_t> epoch_in_some_log(int32_t p, int64_t offset, const std::string& value) {
    std::optional<int32_t> found;
    each_data_replica(
        [&](int32_t, int32_t, broker::replica_state&, storage::log& log) {
          if (offset < log.log_start_offset() || offset >= log.log_end_offset()) return true;
          std::vector<log_record> recs;
          std::string why;
          if (read_log(log, offset, offset + 1, recs, why) && !recs.empty() && recs.front().offset == offset &&
              recs.front().value == value)
            found = recs.front().epoch;
          return !found;
        },
        p);
    return found;
  }

  // A consumer read `value` at `offset` from node `from`, the leader in
  // `leader_epoch` or a follower of it. Below a follower's high watermark is
  // only what its leader in that epoch had committed, so every leader from
  // that epoch on must hold it too.
  void on_consumed(int32_t p, int64_t offset, const std::string& value, int32_t leader_epoch, int32_t from,
                   std::optional<producer_seq> ps = std::nullopt) {
    if (ps)
      if (auto s = seq_offsets_[p].find(*ps); s != seq_offsets_[p].end() && s->second != offset)
        return fail(fmt::format("a consumer read {} ({}) at offset {} of {} from node {} in leader epoch {}, but a "
                                "replica held it at offset {} below its high watermark",
                                value, seq_name(*ps), offset, tp_name(p), from, leader_epoch, s->second));
    auto [it, fresh] = durable_[p].try_emplace(offset, durable_record{value});
    auto& d = it->second;
    if (!fresh && d.value != value)
      return fail(fmt::format("a consumer read {} at offset {} of {} from node {} in leader epoch {}, but {} was {} "
                              "there",
                              value, offset, tp_name(p), from, leader_epoch, d.value,
                              d.origin()));
    if (auto c = committed_data_[p].find(offset); c != committed_data_[p].end() && c->second.value != value)
      return fail(fmt::format("a consumer read {} at offset {} of {} from node {} in leader epoch {}, but node {} "
                              "held {} (epoch {}) there below its high watermark",
                              value, offset, tp_name(p), from, leader_epoch, c->second.node, c->second.value,
                              c->second.epoch));
    if (!d.consumed) {
      ++out_.records_consumed;
      d.read_from = from;
    }
    d.consumed = true;
    if (d.epoch < 0 || leader_epoch < d.epoch) {
      d.epoch = leader_epoch;
      ++durable_gen_;
    }
  }

  // After healing: a consumer reads every data partition from the start past
  // the last durable record, and finds every acknowledged one.
  void check_data_readable() {
    // Idempotent producers first get every batch they made acknowledged.
    bool idle = w_.run_until(
        [this] {
          return !out_.ok || (data_topic_ready_ && produces_in_flight_ == 0 && pending_batches() == 0 && !txn_busy_);
        },
        o_.heal_ms);
    if (!out_.ok) return;
    if (!idle)
      return fail(fmt::format("after healing, the data topic {} ({} produces in flight, {} batches not acknowledged "
                              "yet{}): {};{}",
                              data_topic_ready_ ? "exists" : "could not be created", produces_in_flight_,
                              pending_batches(), txn_busy_ ? ", a transaction not ended" : "", describe(),
                              describe_data()));
    // A transaction's markers follow its EndTxn's answer: every leader's last
    // stable offset reaches its high watermark once they are written.
    std::map<int32_t, int64_t> stable;
    bool settled = w_.run_until([&] { return !out_.ok || transactions_settled(stable); }, o_.heal_ms);
    if (!out_.ok) return;
    if (!settled)
      return fail("after healing, a data partition's last stable offset stays below its high watermark: a hanging "
                  "transaction;" + describe_data());
    for (int32_t p = 0; p < kDataPartitions; ++p)
      final_target_[p] = std::max(durable_[p].empty() ? 0 : durable_[p].rbegin()->first + 1, stable[p]);
    final_read_ = true;
    bool read = w_.run_until([this] { return !out_.ok || final_read_done_; }, o_.heal_ms);
    if (!out_.ok) return;
    if (!read) {
      std::string where;
      for (int32_t p = 0; p < kDataPartitions; ++p)
        where += fmt::format(" {}: read to {} of {};", tp_name(p), final_next_[p], final_target_[p]);
      return fail("after healing, a consumer could not read every data partition past its last durable record:" +
                  where + describe_data());
    }
    for (int32_t p = 0; p < kDataPartitions; ++p)
      for (auto& [offset, d] : durable_[p]) {
        auto it = final_seen_[p].find(offset);
        if (it == final_seen_[p].end())
          return fail(fmt::format("after healing, a consumer reading {} from its start found no record at offset {}, "
                                  "where {} was {}",
                                  tp_name(p), offset, d.value, d.origin()));
        if (it->second != d.value)
          return fail(fmt::format("after healing, a consumer read {} at offset {} of {}, where {} was {}", it->second,
                                  offset, tp_name(p), d.value, d.origin()));
      }
    // Every batch an idempotent producer made is there once (the read found no
    // second copy), in the order of its sequences.
    for (auto& me : producers_) {
      if (me.id < 0) continue;
      for (auto& [p, next] : me.next_sequence) {
        int64_t after = -1;
        for (int32_t seq = 0; seq < next; ++seq) {
          auto it = final_seqs_[p].find({me.id, seq});
          if (it == final_seqs_[p].end())
            return fail(fmt::format("after healing, a consumer reading {} from its start found no {} (acknowledged "
                                    "at offset {})",
                                    tp_name(p), seq_name({me.id, seq}),
                                    acked_seqs_[p].count({me.id, seq}) ? acked_seqs_[p][{me.id, seq}] : -1));
          if (it->second <= after)
            return fail(fmt::format("after healing, a consumer reading {} from its start found {} at offset {}, not "
                                    "after sequence {} at {}",
                                    tp_name(p), seq_name({me.id, seq}), it->second, seq - 1, after));
          after = it->second;
        }
      }
    }
    check_transactions();
  }

  // After the final read: Kafka's promises for transactions, from the log as
  // a read_committed consumer sees it. Each transactional record's fate is the
  // first marker of its producer after it: every record of a transaction has
  // the same (atomicity); one committed (EndTxn answered) has COMMIT, one the
  // client aborted or gave up before sending a commit has ABORT; none is left
  // without a marker once the producer is idle (no hanging transaction).
  void check_transactions() {
    std::map<int64_t, std::set<int16_t>> outcome;  // transaction number -> marker types its records got
    for (int32_t p = 0; p < kDataPartitions; ++p) {
      std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>> open;  // producer -> (transaction, offset)
      for (auto& [offset, r] : final_records_[p]) {
        if (r.control) {
          for (auto& [n, at] : open[r.producer_id]) outcome[n].insert(r.control_type);
          open.erase(r.producer_id);
        } else if (r.transactional) {
          int64_t n = transaction_of(r.value);
          if (n <= 0) return fail(fmt::format("{} at offset {} of {} is in a transactional batch, but no transaction "
                                              "wrote it", r.value, offset, tp_name(p)));
          open[r.producer_id].emplace_back(n, offset);
        }
      }
      for (auto& [pid, recs] : open)
        if (!recs.empty())
          return fail(fmt::format("after healing, {} of transaction {} (producer {}) at offset {} of {} has no marker "
                                  "after it: a hanging transaction; {}",
                                  recs.front().first, recs.front().first, pid, recs.front().second, tp_name(p),
                                  describe_data()));
    }
    for (auto& [n, t] : txns_) {
      auto& got = outcome[n];
      if (got.size() > 1)
        return fail(fmt::format("transaction {} was both committed and aborted: its records got both markers;{}", n,
                                describe_transaction(n)));
      bool committed = got.count(1) > 0, aborted = got.count(0) > 0;
      if (t.fate == txn_fate::committed && (aborted || (!committed && t.records > 0)))
        return fail(fmt::format("transaction {} ({} records) was committed (EndTxn answered), but its records {};{}",
                                n, t.records, aborted ? "were aborted" : "have no COMMIT marker",
                                describe_transaction(n)));
      if (t.fate == txn_fate::aborted && committed)
        return fail(fmt::format("transaction {} was aborted{}, but its records were committed;{}", n,
                                t.commit_sent ? "" : " (no commit was ever asked for)", describe_transaction(n)));
      ++(committed ? out_.txns_committed : aborted ? out_.txns_aborted : out_.txns_empty);
    }
  }

  // Transaction n's records in the final read and the markers after them,
  // as " data-P: offset value (producer/epoch) ... offset COMMIT|ABORT (producer/epoch)".
  std::string describe_transaction(int64_t n) {
    std::string s;
    for (int32_t p = 0; p < kDataPartitions; ++p) {
      bool in = false;
      std::string part;
      for (auto& [offset, r] : final_records_[p]) {
        if (!r.control && r.transactional && transaction_of(r.value) == n) {
          in = true;
          part += fmt::format(" {} {} ({}/{})", offset, r.value, r.producer_id, r.producer_epoch);
        } else if (in && r.control) {
          part += fmt::format(" {} {} ({}/{})", offset, r.control_type == 1 ? "COMMIT" : "ABORT", r.producer_id,
                              r.producer_epoch);
          break;
        } else if (in && r.transactional) {
          part += fmt::format(" {} {} ({}/{})", offset, r.value, r.producer_id, r.producer_epoch);
        }
      }
      if (in) s += fmt::format(" {}:{}", tp_name(p), part);
    }
    return s;
  }

  static int64_t transaction_of(const std::string& value) {
    // "t<transaction>.<record>"
    if (value.size() < 2 || value[0] != 't') return -1;
    auto dot = value.find('.');
    if (dot == std::string::npos) return -1;
    try {
      return std::stoll(value.substr(1, dot - 1));
    } catch (...) {
      return -1;
    }
  }

  // True once every data partition has a leader whose last stable offset is
  // its high watermark; stable: partition -> that offset.
  bool transactions_settled(std::map<int32_t, int64_t>& stable) {
    stable.clear();
    each_data_replica([&](int32_t, int32_t p, broker::replica_state& rep, storage::log& log) {
      if (!rep.leader) return true;
      int64_t hw = rep.current_high_watermark();
      if (log.last_stable_offset(hw) == hw) stable[p] = hw;
      return true;
    });
    return static_cast<int32_t>(stable.size()) == kDataPartitions;
  }

  std::string describe_data() {
    std::string s;
    each_data_replica([&](int32_t id, int32_t p, broker::replica_state& rep, storage::log& log) {
      s += fmt::format(" n{}:{}={}/hw{}/leo{}/epochs", id, tp_name(p), role_of(rep), rep.current_high_watermark(),
                       log.log_end_offset());
      for (auto& e : log.leader_epochs().entries()) s += fmt::format("{}@{},", e.epoch, e.start_offset);
      if (rep.leader) {
        s += fmt::format("/isr{}", fmt::join(rep.leader->isr(), ","));
        if (rep.leader->proposal_in_flight())
          s += fmt::format("/proposing{}", fmt::join(rep.leader->in_flight()->isr, ","));
        for (auto& [f, fp] : rep.leader->followers())
          s += fmt::format("/f{}:leo{},caught-up-at{}", f, fp.log_end_offset, fp.last_caught_up_ms);
      }
      return true;
    });
    return s;
  }

  // ---- the data workload: the client's side

  // The leader of a data partition and its epoch, as the image of a random
  // running node has it (it may be stale: the request then fails, and the
  // client tries again).
  struct partition_view {
    int32_t leader;
    int32_t leader_epoch;
    std::vector<int32_t> replicas;
  };
  std::optional<partition_view> data_partition(int32_t p) {
    std::vector<int32_t> up;
    for (int32_t id : ids_)
      if (auto* proc = process(id); proc && proc->node().loader_if_open()) up.push_back(id);
    if (up.empty()) return std::nullopt;
    auto img = process(up[runtime::random_below(up.size())])->node().metadata_loader().current();
    auto* t = img->topic(kDataTopic);
    if (!t || static_cast<size_t>(p) >= t->partitions.size()) return std::nullopt;
    auto& ps = t->partitions[static_cast<size_t>(p)];
    if (ps.leader < 0) return std::nullopt;
    return partition_view{ps.leader, ps.leader_epoch, ps.replicas};
  }

  runtime::task<void> data_loop() {
    const int nodes = static_cast<int>(ids_.size());
    while (!stop_client_ && !data_topic_ready_) {
      co_await runtime::sleep_for(static_cast<int64_t>(200 + runtime::random_below(300)));
      protocol::create_topics_request req;
      req.timeout_ms = 10000;
      auto& t = req.topics.emplace_back();
      t.name = kDataTopic;
      t.num_partitions = kDataPartitions;
      t.replication_factor = static_cast<int16_t>(std::min(3, nodes));
      t.configs.push_back({"min.insync.replicas", std::to_string(std::min(2, nodes)), {}});
      t.configs.push_back({"flush.messages", "1", {}});
      auto& c = client_for(ids_[runtime::random_below(ids_.size())]);
      auto r = co_await c.call<protocol::create_topics_response>(req, 7, 15000);
      if (!r || r->topics.empty()) continue;
      auto e = static_cast<error_code>(r->topics[0].error_code);
      if (e == error_code::none || e == error_code::topic_already_exists) data_topic_ready_ = true;
    }
    if (stop_client_) co_return;
    producers_.resize(kProducers);
    for (int i = 0; i < kProducers; ++i) {
      producers_[static_cast<size_t>(i)].id = o_.idempotence ? kFirstProducerId + i : -1;
      runtime::spawn(0, [this, i] { return producer_loop(i); });
    }
    if (o_.transactions) runtime::spawn(0, [this] { return transactional_producer_loop(); });
    runtime::spawn(0, [this] { return consumer_loop(); });
  }

  // An idempotent producer's batch sent and not acknowledged yet.
  struct pending_batch {
    bytes batch;  // exactly what goes out again
    std::string value;
    int32_t sequence;
    int sends = 0;
  };
  // A producer as a Kafka client: its sequence per partition, and at most one
  // batch in flight per partition.
  struct producer {
    int64_t id = -1;  // -1 without idempotence
    std::map<int32_t, int32_t> next_sequence;  // partition -> the next batch's base sequence
    std::map<int32_t, pending_batch> pending;  // partition -> the batch in flight there
  };

  enum class txn_fate { open, committed, aborted, uncertain };
  struct transaction {
    bool commit = false;       // what EndTxn asks for
    bool commit_sent = false;  // an EndTxn(commit) went out
    txn_fate fate = txn_fate::open;
    int records = 0;  // acknowledged
    int64_t producer_id = -1;
    int16_t epoch = -1;
  };

  size_t pending_batches() const {
    size_t n = 0;
    for (auto& pr : producers_) n += pr.pending.size();
    return n;
  }

  // Errors after which a Kafka producer sends the batch again (retriable in
  // Kafka's sense, or a leader that is moving).
  static bool retriable(error_code e) {
    switch (e) {
      case error_code::not_leader_or_follower:
      case error_code::not_enough_replicas:
      case error_code::not_enough_replicas_after_append:
      case error_code::request_timed_out:
      case error_code::unknown_topic_or_partition:
      case error_code::leader_not_available:
      case error_code::kafka_storage_error:
      case error_code::network_exception:
      case error_code::unknown_leader_epoch:
      case error_code::fenced_leader_epoch: return true;
      default: return false;
    }
  }

  // acks=all, one batch to one data partition (borrowed: it must outlive the call's encoding).
  static protocol::produce_request produce_request_for(int32_t p, const bytes& batch) {
    protocol::produce_request req;
    req.acks = -1;
    req.timeout_ms = 10000;
    auto& t = req.topic_data.emplace_back();
    t.name = kDataTopic;
    auto& pd = t.partition_data.emplace_back();
    pd.index = p;
    pd.records = protocol::records::borrow(bytes_view(batch));
    return req;
  }

  runtime::task<void> producer_loop(int index) {
    auto& me = producers_[static_cast<size_t>(index)];
    while (!stop_client_ && out_.ok) {
      // Between sends, and before a retry (Kafka's retry.backoff.ms is 100).
      co_await runtime::sleep_for(static_cast<int64_t>(20 + runtime::random_below(200)));
      if (stop_client_ || !out_.ok) break;
      // After the faults, only the batches in flight go out again, until
      // each is acknowledged.
      if (stop_producing_ && me.pending.empty()) break;
      int32_t p;
      if (stop_producing_) {
        auto it = me.pending.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(runtime::random_below(me.pending.size())));
        p = it->first;
      } else {
        p = static_cast<int32_t>(runtime::random_below(kDataPartitions));
      }
      auto view = data_partition(p);
      if (!view) continue;
      auto found = me.pending.find(p);
      bool retry = found != me.pending.end();
      if (!retry) {
        pending_batch b;
        b.value = fmt::format("v{}", ++out_.produce_attempts);
        b.sequence = me.id >= 0 ? me.next_sequence[p]++ : -1;
        protocol::batch_builder_options bo;
        if (me.id >= 0) {
          bo.producer_id = me.id;
          bo.producer_epoch = 0;
          bo.base_sequence = b.sequence;
        }
        protocol::batch_builder builder(bo);
        builder.add(runtime::wall_clock_ms(), std::nullopt, std::optional<std::string_view>(b.value));
        b.batch = builder.build();
        found = me.pending.emplace(p, std::move(b)).first;
      } else {
        ++out_.produce_retries;
      }
      pending_batch& b = found->second;
      ++b.sends;
      // The request is encoded (copied) before the call goes out: `b.batch`
      // stays as built, for a retry.
      auto req = produce_request_for(p, b.batch);
      ++produces_in_flight_;
      auto r = co_await client_for(view->leader).call<protocol::produce_response>(req, 7, 15000);
      --produces_in_flight_;
      if (!out_.ok) break;
      // `found` may be stale only if someone else touched me.pending: no one does.
      std::optional<error_code> answer;
      if (r && !r->responses.empty() && !r->responses[0].partition_responses.empty())
        answer = static_cast<error_code>(r->responses[0].partition_responses[0].error_code);
      if (answer == error_code::none) {
        auto& pr = r->responses[0].partition_responses[0];
        std::optional<producer_seq> ps;
        if (me.id >= 0) ps = producer_seq{me.id, b.sequence};
        on_acked(p, pr.base_offset, b.value, ps, b.sends > 1);
        me.pending.erase(p);
        continue;
      }
      // No answer (lost, late, a connection down) or an error.
      if (me.id < 0) {  // a plain producer gives up on the record
        me.pending.erase(p);
        continue;
      }
      if (!answer || retriable(*answer)) continue;  // the same batch again, next time round
      // A leader deposed (cut off, it does not know yet) lacks what its
      // successors appended, the producer's last acknowledged batches among
      // them: its OUT_OF_ORDER_SEQUENCE_NUMBER says only that the client's
      // metadata was stale (a Kafka client refreshes it, then bumps its epoch
      // or retries). From a leader of the newest epoch it is a bug.
      if (*answer == error_code::out_of_order_sequence_number && view->leader_epoch < newest_data_epoch_[p]) {
        sim_log_->debug("{} ({}) of {}: node {}, leader in the stale epoch {} (now {}), answered {}", b.value,
                        seq_name({me.id, b.sequence}), tp_name(p), view->leader, view->leader_epoch,
                        newest_data_epoch_[p], protocol::error_name(*answer));
        continue;
      }
      auto& pr = r->responses[0].partition_responses[0];
      fail(fmt::format("node {} (leader of {} in epoch {} as some image had it) answered {} (producer {} sequence "
                       "{}, send {}) with {}: {}",
                       view->leader, tp_name(p), view->leader_epoch, b.value, me.id, b.sequence, b.sends,
                       protocol::error_name(*answer), pr.error_message.value_or("")));
      co_return;
    }
  }

  // ---- the transactional producer: a Kafka client's transactional protocol
  // by hand (FindCoordinator, InitProducerId, AddPartitionsToTxn, Produce,
  // EndTxn), one transaction at a time, each writing 1-3 records to one or
  // both data partitions, then committing (2 in 3) or aborting. A request
  // without an answer is sent again, to the coordinator found again; a
  // transaction the coordinator ended (fenced by a timeout's epoch bump) or
  // that cannot go on is given up: a new InitProducerId aborts it.

  static bool coordinator_retriable(error_code e) {
    switch (e) {
      case error_code::not_coordinator:
      case error_code::coordinator_not_available:
      case error_code::coordinator_load_in_progress:
      case error_code::concurrent_transactions:
      case error_code::request_timed_out:
      case error_code::network_exception: return true;
      default: return false;
    }
  }

  // The coordinator's answer to req, finding the coordinator first if need
  // be; nullopt when none came (the coordinator is looked up again next time).
  template <class Resp, class Req>
  runtime::task<std::optional<Resp>> call_txn_coordinator(const Req& req, int16_t version) {
    if (txn_coordinator_ < 0) {
      protocol::find_coordinator_request fc;
      fc.key_type = 1;
      fc.coordinator_keys = {kTransactionalId};
      auto r = co_await client_for(ids_[runtime::random_below(ids_.size())])
                   .call<protocol::find_coordinator_response>(fc, 4, 5000);
      if (!r || r->coordinators.empty() || r->coordinators[0].error_code != 0) co_return std::nullopt;
      txn_coordinator_ = r->coordinators[0].node_id;
    }
    auto r = co_await client_for(txn_coordinator_).call<Resp>(req, version, 5000);
    if (!r) {
      txn_coordinator_ = -1;
      co_return std::nullopt;
    }
    co_return std::move(r.value());
  }

  runtime::task<bool> init_transactions() {
    protocol::init_producer_id_request req;
    req.transactional_id = kTransactionalId;
    req.transaction_timeout_ms = kTransactionTimeoutMs;
    auto r = co_await call_txn_coordinator<protocol::init_producer_id_response>(req, 3);
    if (!r) co_return false;
    auto e = static_cast<error_code>(r->error_code);
    if (e != error_code::none) {
      if (coordinator_retriable(e)) {
        if (e == error_code::not_coordinator || e == error_code::coordinator_not_available) txn_coordinator_ = -1;
        co_return false;
      }
      fail(fmt::format("InitProducerId for {} answered {}", kTransactionalId, protocol::error_name(e)));
      co_return false;
    }
    // Each answer fences what came before: a higher epoch of the same id, or another id.
    auto [seen, fresh] = txn_epochs_.try_emplace(r->producer_id, r->producer_epoch);
    if (!fresh && r->producer_epoch <= seen->second) {
      fail(fmt::format("InitProducerId for {} gave producer {} epoch {}, not above the epoch {} it gave before",
                       kTransactionalId, r->producer_id, r->producer_epoch, seen->second));
      co_return false;
    }
    seen->second = r->producer_epoch;
    txn_producer_id_ = r->producer_id;
    txn_epoch_ = r->producer_epoch;
    txn_sequence_.clear();
    co_return true;
  }

  // Asks until answered; false if the transaction cannot go on.
  runtime::task<bool> add_partitions_to_txn(const std::set<int32_t>& parts) {
    protocol::add_partitions_to_txn_request req;
    req.v3_and_below_transactional_id = kTransactionalId;
    req.v3_and_below_producer_id = txn_producer_id_;
    req.v3_and_below_producer_epoch = txn_epoch_;
    auto& t = req.v3_and_below_topics.emplace_back();
    t.name = kDataTopic;
    t.partitions.assign(parts.begin(), parts.end());
    while (!stop_client_ && out_.ok) {
      auto r = co_await call_txn_coordinator<protocol::add_partitions_to_txn_response>(req, 3);
      if (r) {
        error_code e = error_code::none;
        for (auto& tr : r->results_by_topic_v3_and_below)
          for (auto& pr : tr.results_by_partition)
            if (pr.partition_error_code != 0) e = static_cast<error_code>(pr.partition_error_code);
        if (e == error_code::none) co_return true;
        if (!coordinator_retriable(e)) {
          sim_log_->debug("AddPartitionsToTxn of producer {} epoch {}: {}; giving the transaction up",
                          txn_producer_id_, txn_epoch_, protocol::error_name(e));
          co_return false;
        }
        if (e == error_code::not_coordinator || e == error_code::coordinator_not_available) txn_coordinator_ = -1;
      }
      co_await runtime::sleep_for(static_cast<int64_t>(50 + runtime::random_below(100)));
    }
    co_return false;
  }

  // One record of transaction n to partition p, sent (the same bytes) until
  // acknowledged; false if the transaction cannot go on.
  runtime::task<bool> produce_in_txn(int64_t n, int32_t p, int k) {
    std::string value = fmt::format("t{}.{}", n, k);
    protocol::batch_builder_options bo;
    bo.producer_id = txn_producer_id_;
    bo.producer_epoch = txn_epoch_;
    bo.base_sequence = txn_sequence_[p]++;
    bo.transactional = true;
    protocol::batch_builder builder(bo);
    builder.add(runtime::wall_clock_ms(), std::nullopt, std::optional<std::string_view>(value));
    bytes batch = builder.build();
    int sends = 0;
    while (!stop_client_ && out_.ok) {
      auto view = data_partition(p);
      if (!view) {
        co_await runtime::sleep_for(100);
        continue;
      }
      auto req = produce_request_for(p, batch);
      req.transactional_id = kTransactionalId;
      ++sends;
      ++produces_in_flight_;
      auto r = co_await client_for(view->leader).call<protocol::produce_response>(req, 7, 15000);
      --produces_in_flight_;
      if (!out_.ok) co_return false;
      std::optional<error_code> answer;
      if (r && !r->responses.empty() && !r->responses[0].partition_responses.empty())
        answer = static_cast<error_code>(r->responses[0].partition_responses[0].error_code);
      if (answer == error_code::none) {
        on_acked(p, r->responses[0].partition_responses[0].base_offset, value, std::nullopt, sends > 1);
        ++txns_[n].records;
        co_return true;
      }
      if (answer && !retriable(*answer) && *answer != error_code::not_enough_replicas) {
        sim_log_->debug("{} of producer {} epoch {} to {}: {}; giving the transaction up", value, txn_producer_id_,
                        txn_epoch_, tp_name(p), protocol::error_name(*answer));
        co_return false;
      }
      co_await runtime::sleep_for(static_cast<int64_t>(20 + runtime::random_below(200)));
    }
    co_return false;
  }

  // EndTxn until answered: the transaction's fate.
  runtime::task<txn_fate> end_txn(transaction& t) {
    protocol::end_txn_request req;
    req.transactional_id = kTransactionalId;
    req.producer_id = txn_producer_id_;
    req.producer_epoch = txn_epoch_;
    req.committed = t.commit;
    while (!stop_client_ && out_.ok) {
      if (t.commit) t.commit_sent = true;
      auto r = co_await call_txn_coordinator<protocol::end_txn_response>(req, 3);
      if (r) {
        auto e = static_cast<error_code>(r->error_code);
        if (e == error_code::none) {
          sim_log_->debug("EndTxn({}) of producer {} epoch {} answered", t.commit ? "commit" : "abort",
                          txn_producer_id_, txn_epoch_);
          co_return t.commit ? txn_fate::committed : txn_fate::aborted;
        }
        if (!coordinator_retriable(e)) {
          sim_log_->debug("EndTxn of producer {} epoch {}: {}", txn_producer_id_, txn_epoch_, protocol::error_name(e));
          break;
        }
        if (e == error_code::not_coordinator || e == error_code::coordinator_not_available) txn_coordinator_ = -1;
      }
      co_await runtime::sleep_for(static_cast<int64_t>(50 + runtime::random_below(100)));
    }
    co_return t.commit_sent ? txn_fate::uncertain : txn_fate::aborted;
  }

  runtime::task<void> transactional_producer_loop() {
    int64_t n = 0;
    while (!stop_client_ && out_.ok && !stop_producing_) {
      co_await runtime::sleep_for(static_cast<int64_t>(50 + runtime::random_below(300)));
      if (stop_client_ || !out_.ok || stop_producing_) break;
      if (txn_producer_id_ < 0 && !co_await init_transactions()) continue;
      auto& t = txns_[++n];
      t.producer_id = txn_producer_id_;
      t.epoch = txn_epoch_;
      txn_busy_ = true;
      std::set<int32_t> parts{static_cast<int32_t>(runtime::random_below(kDataPartitions))};
      if (runtime::random_below(2) == 0) parts.insert(static_cast<int32_t>(runtime::random_below(kDataPartitions)));
      bool going = co_await add_partitions_to_txn(parts);
      int k = 0;
      for (int32_t p : parts)
        for (int i = 0, count = 1 + static_cast<int>(runtime::random_below(2)); going && i < count; ++i)
          going = co_await produce_in_txn(n, p, k++);
      if (going) {
        t.commit = runtime::random_below(3) != 0;
        t.fate = co_await end_txn(t);
        // After a commit, a new epoch: Kafka's EndTxn names no transaction
        // (before KIP-890 part 2 bumps the epoch at each one), so a late copy
        // of it would commit whatever is open next under the same epoch. The
        // simulated network duplicates and delays writes (TCP does not, but a
        // retry on a new connection can race the first try); with an epoch per
        // committed transaction, any commit the checks find was asked for.
        if (t.fate == txn_fate::uncertain || t.fate == txn_fate::committed) txn_producer_id_ = -1;
      } else {
        t.fate = txn_fate::aborted;  // no commit was asked for: the next InitProducerId aborts it
        txn_producer_id_ = -1;
      }
      // Given up: the producer starts again with InitProducerId, which ends
      // (aborts) what is left of it, before the producer counts as idle.
      while (txn_producer_id_ < 0 && !stop_client_ && out_.ok) {
        if (co_await init_transactions()) break;
        co_await runtime::sleep_for(static_cast<int64_t>(100 + runtime::random_below(200)));
      }
      txn_busy_ = false;
    }
  }

  runtime::task<void> consumer_loop() {
    std::map<int32_t, int64_t> next;
    bool final_started = false;
    int32_t turn = 0;
    while (!stop_client_) {
      co_await runtime::sleep_for(static_cast<int64_t>(10 + runtime::random_below(100)));
      if (stop_client_ || !out_.ok) break;
      int32_t p;
      if (final_read_) {
        if (!final_started) {
          final_started = true;
          next.clear();
        }
        bool done = true;
        for (int32_t q = 0; q < kDataPartitions; ++q) {
          final_next_[q] = next[q];
          if (next[q] < final_target_[q]) done = false;
        }
        if (done) {
          final_read_done_ = true;
          co_return;
        }
        p = turn++ % kDataPartitions;
        if (next[p] >= final_target_[p]) continue;
      } else {
        p = static_cast<int32_t>(runtime::random_below(kDataPartitions));
        // Now and then read again from an earlier offset: the same records must come back.
        if (runtime::random_below(20) == 0) next[p] = static_cast<int64_t>(runtime::random_below(next[p] + 1));
      }
      auto view = data_partition(p);
      if (!view) continue;
      // Mostly the leader; now and then a follower, which serves consumers
      // (Fetch v11+, KIP-392) what it has below its own high watermark.
      int32_t target = view->leader;
      if (!final_read_ && runtime::random_below(4) == 0)
        target = view->replicas[runtime::random_below(view->replicas.size())];
      protocol::fetch_request req;
      req.replica_id = -1;
      req.max_wait_ms = 200;
      req.min_bytes = 1;
      req.max_bytes = 1 << 20;
      auto& t = req.topics.emplace_back();
      t.topic = kDataTopic;
      auto& fp = t.partitions.emplace_back();
      fp.partition = p;
      // An answer comes only from a replica in that leader epoch: the
      // leader, or a follower of it.
      fp.current_leader_epoch = view->leader_epoch;
      fp.fetch_offset = next[p];
      fp.partition_max_bytes = 1 << 16;
      iobuf body;
      protocol::wire_writer wr(body);
      req.encode(wr, kFetchVersion);
      // The records in the answer point into `raw`.
      auto raw = co_await client_for(target).call_raw(protocol::fetch_request::api_key, kFetchVersion,
                                                      std::move(body), 5000);
      if (!out_.ok || !raw) continue;
      protocol::fetch_response resp;
      protocol::wire_reader rd(raw.value());
      if (!resp.decode(rd, kFetchVersion) || !rd.ok()) {
        fail(fmt::format("node {} sent a malformed Fetch response", target));
        co_return;
      }
      if (resp.error_code != 0 || resp.responses.empty() || resp.responses[0].partitions.empty()) continue;
      auto& pd = resp.responses[0].partitions[0];
      if (pd.error_code != 0) continue;
      std::vector<log_record> recs;
      std::string why;
      int64_t after = next[p];
      if (!decode_records(pd.records.view(), recs, why, &after)) {
        fail(fmt::format("node {} answered a consumer's Fetch of {} at {} with records that do not parse: {}", target,
                         tp_name(p), next[p], why));
        co_return;
      }
      for (auto& rec : recs) {
        if (rec.offset < next[p]) continue;  // the start of a batch before the offset asked for
        if (rec.offset >= pd.high_watermark) {
          fail(fmt::format("node {} ({} of {} in epoch {}) gave a consumer the record {} at offset {}, not below "
                           "the high watermark {} of its answer",
                           target, target == view->leader ? "leader" : "follower", tp_name(p), view->leader_epoch,
                           rec.value, rec.offset, pd.high_watermark));
          co_return;
        }
        std::optional<producer_seq> ps;
        if (rec.producer_id >= 0 && !rec.transactional && !rec.control) ps = producer_seq{rec.producer_id, rec.sequence};
        on_consumed(p, rec.offset, rec.value, view->leader_epoch, target, ps);
        if (final_read_) {
          final_seen_[p][rec.offset] = rec.value;
          final_records_[p][rec.offset] = rec;
          if (ps) {
            auto [f, fresh] = final_seqs_[p].try_emplace(*ps, rec.offset);
            if (!fresh && f->second != rec.offset) {
              fail(fmt::format("after healing, a consumer reading {} from its start found {} ({}) twice: at offsets "
                               "{} and {}",
                               tp_name(p), rec.value, seq_name(*ps), f->second, rec.offset));
              co_return;
            }
          }
        }
        if (!out_.ok) co_return;
      }
      next[p] = std::max(next[p], after);
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
  // The data workload.
  bool data_topic_ready_ = false;
  bool stop_producing_ = false;
  int produces_in_flight_ = 0;
  std::vector<producer> producers_;
  std::map<int32_t, int32_t> newest_data_epoch_;  // partition -> the newest leader epoch a replica led in
  std::map<int32_t, std::map<producer_seq, int64_t>> seq_offsets_;  // partition -> below some HW at
  std::map<int32_t, std::map<producer_seq, int64_t>> acked_seqs_;   // partition -> acknowledged at
  std::map<int32_t, std::map<producer_seq, int64_t>> final_seqs_;   // partition -> the final read found at
  std::map<int32_t, std::map<int64_t, durable_record>> durable_;          // partition -> offset -> record
  std::map<int32_t, std::map<int64_t, committed_record>> committed_data_;  // partition -> offset -> record
  std::shared_ptr<spdlog::logger> sim_log_;
  uint64_t durable_gen_ = 1;  // bumped whenever durable_ changes
  std::map<std::pair<int32_t, int32_t>, replica_watch> replica_watch_;    // (node, partition)
  bool final_read_ = false;
  bool final_read_done_ = false;
  std::map<int32_t, int64_t> final_target_, final_next_;
  std::map<int32_t, std::map<int64_t, std::string>> final_seen_;
  std::map<int32_t, std::map<int64_t, log_record>> final_records_;
  // The transactional producer.
  std::map<int64_t, transaction> txns_;  // by number (from 1)
  int64_t txn_producer_id_ = -1;
  int16_t txn_epoch_ = -1;
  int32_t txn_coordinator_ = -1;
  std::map<int32_t, int32_t> txn_sequence_;  // partition -> the next batch's base sequence, in this epoch
  std::map<int64_t, int16_t> txn_epochs_;    // producer id -> the highest epoch InitProducerId gave
  bool txn_busy_ = false;                    // a transaction not ended (or given up) yet
};

}  // namespace

outcome run(const options& opts) {
  harness h(opts);
  return h.run();
}

std::string replay_command(const options& o) {
  return fmt::format(
      "build/tests/sim/gregor-sim --seed {} --voters {} --brokers {} --fault-ms {}{}{}{}{} --log-level debug", o.seed,
      o.voters, o.brokers, o.fault_ms, o.faults ? "" : " --no-faults", o.data ? "" : " --no-data",
      o.data && !o.idempotence ? " --no-idempotence" : "", o.data && !o.transactions ? " --no-transactions" : "");
}

}  // namespace gregor::sim
