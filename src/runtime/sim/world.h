#pragma once
// The simulated backend: a whole cluster in one thread on virtual time.
//
// A world holds nodes (machines), a network between them and a disk per
// node. Everything any node does — a resumed coroutine, a timer, a frame
// arriving, a cross-shard hop — is an event in one queue, ordered by virtual
// time and then by the order it was scheduled, and run one at a time with
// the calling thread's backend set to the node it belongs to. Every choice
// the world makes (latencies, lost or duplicated frames, which unsynced
// writes survive a crash, the nodes' random numbers) comes from one seeded
// generator, so a run is a function of its seed and of what the test does:
// a failing seed replays exactly.
//
// Faults:
//   network  latency, drop, duplicate and reorder of whole writes (so every
//            write must carry whole frames, see net.h); partitions between
//            any two nodes (frames and connection attempts across them are
//            lost; connections stay half-open, as over a cut link).
//   disk     a crash keeps what was synced, plus a random prefix of the
//            writes made since (the last one possibly torn); EIO on writes,
//            reads and syncs with set probabilities; ENOSPC beyond a
//            capacity. Directory operations (create, rename, remove) are
//            durable at once.
//   process  crash() at any moment; halt() from the node itself (an fsync
//            that failed) crashes it too.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/file.h"

namespace gregor::runtime::sim {

class world;
class node;
class disk;
class network;

struct network_faults {
  int64_t min_latency_us = 50;
  int64_t max_latency_us = 1'000;
  double drop = 0;       // a write is lost
  double duplicate = 0;  // a write arrives twice
  double reorder = 0;    // a write is held back, so later ones overtake it
  int64_t reorder_delay_max_us = 20'000;
};

struct disk_faults {
  double write_error = 0;  // pwrite/truncate fail with EIO
  double read_error = 0;   // pread fails with EIO
  double sync_error = 0;   // fsync fails with EIO
  uint64_t capacity_bytes = UINT64_MAX;  // beyond it, writes fail with ENOSPC
  bool torn_tail_on_crash = true;        // the last surviving unsynced write may be cut short
};

class world {
 public:
  explicit world(uint64_t seed);
  ~world();
  world(const world&) = delete;
  world& operator=(const world&) = delete;

  uint64_t seed() const { return seed_; }
  int64_t now_us() const { return now_us_; }
  int64_t now_ms() const { return now_us_ / 1000; }

  // A machine named `host` (the address others connect to) with `shards`
  // shards. Its disk survives its crashes.
  node& add_node(int32_t id, const std::string& host, size_t shards);
  node& get(int32_t id);
  std::vector<node*> nodes();

  // Runs the next event; false when there is none.
  bool step();
  // Runs events until virtual time reaches now + ms (idle time passes too).
  void run_for(int64_t ms);
  // Runs until pred() holds (checked after every event) or max_ms pass;
  // returns whether it held.
  bool run_until(const std::function<bool()>& pred, int64_t max_ms);
  // Called after every event (invariant checks).
  void on_step(std::function<void()> fn) { after_step_ = std::move(fn); }
  uint64_t steps() const { return steps_; }
  // Virtual time stopped moving: a great many events in a row at the same
  // instant (a loop that never waits). Running stops; tests report it.
  bool stuck() const { return stuck_; }

  network_faults& net_faults() { return net_faults_; }
  // Cuts / restores both directions between two nodes.
  void partition(int32_t a, int32_t b);
  void heal(int32_t a, int32_t b);
  void heal_all();
  bool partitioned(int32_t a, int32_t b) const;

  // The world's own random numbers (for the test's choices).
  uint64_t random_u64() { return rng_(); }
  uint64_t random_below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool chance(double p);
  int64_t random_between(int64_t lo, int64_t hi);  // inclusive

  // ---- for the backend's parts (node, network, disk)
  using action = std::function<void()>;
  // Runs `fn` on `shard` of `n` at now + delay_us, unless the process
  // `incarnation` of n is gone by then (crashed, or restarted since).
  void schedule(node* n, uint64_t incarnation, size_t shard, int64_t delay_us, action fn);
  // The same for n's current process.
  void schedule(node* n, size_t shard, int64_t delay_us, action fn);
  network& net() { return *net_; }

 private:
  struct event {
    int64_t at_us;
    uint64_t seq;
    node* target;
    uint64_t incarnation;
    size_t shard;
    action fn;
  };
  struct later {
    bool operator()(const event& a, const event& b) const {
      return a.at_us != b.at_us ? a.at_us > b.at_us : a.seq > b.seq;
    }
  };

  uint64_t seed_;
  std::mt19937_64 rng_;
  int64_t now_us_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t steps_ = 0;
  uint64_t steps_at_this_time_ = 0;
  bool stuck_ = false;
  std::priority_queue<event, std::vector<event>, later> queue_;
  std::map<int32_t, std::unique_ptr<node>> nodes_;
  std::unique_ptr<network> net_;
  network_faults net_faults_;
  std::set<std::pair<int32_t, int32_t>> cuts_;
  std::function<void()> after_step_;
};

// One machine: a backend for the process running on it, and its disk.
class node final : public backend {
 public:
  node(world& w, int32_t id, std::string host, size_t shards);
  ~node() override;

  int32_t id() const { return id_; }
  const std::string& host() const { return host_; }
  world& owner() { return world_; }

  // Boots the process: runs boot() on shard 0 now; what it returns (the
  // application object) lives until the process dies.
  void start(std::function<std::shared_ptr<void>()> boot);
  // Kills the process as kill -9 would: its coroutines are destroyed, its
  // connections reset, its application object dropped, and the disk keeps
  // only what the crash model lets survive. A no-op if it is not running.
  void crash();
  bool running() const { return running_ && !halted_; }
  // Counts processes started on this machine; events of an older one are void.
  uint64_t incarnation() const { return incarnation_; }
  // The application object of the running process (nullptr if none).
  std::shared_ptr<void> process() const { return process_; }
  const std::string& halt_reason() const { return halt_reason_; }

  disk& storage() { return *disk_; }
  disk_faults& faults();

  // ---- backend
  size_t shard_count() const override { return shards_; }
  void post(size_t shard, std::coroutine_handle<> h) override;
  void post(size_t shard, std::function<void()> fn) override;
  std::unique_ptr<timer_impl> make_timer() override;
  int64_t wall_clock_ms() override;
  int64_t monotonic_ms() override;
  uint64_t random_u64() override;
  filesystem& files() override;
  result<std::unique_ptr<listener>> listen(const std::string& host, uint16_t port) override;
  task<result<std::shared_ptr<connection>>> connect(const std::string& host, uint16_t port,
                                                    int64_t timeout_ms) override;
  void halt(const std::string& why) override;

 private:
  friend class world;
  world& world_;
  int32_t id_;
  std::string host_;
  size_t shards_;
  std::unique_ptr<disk> disk_;
  std::shared_ptr<void> process_;
  bool running_ = false;
  bool halted_ = false;
  std::string halt_reason_;
  uint64_t incarnation_ = 0;
  int64_t clock_offset_ms_ = 0;
  // Cross-shard posts keep their order per (from, to) shard pair.
  std::map<std::pair<size_t, size_t>, int64_t> last_post_us_;
};

}  // namespace gregor::runtime::sim
