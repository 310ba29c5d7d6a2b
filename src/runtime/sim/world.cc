#include "runtime/sim/world.h"

#include "base/assert.h"
#include "base/log.h"
#include "runtime/sim/disk.h"
#include "runtime/sim/network.h"

namespace gregor::runtime::sim {

namespace {
// 2026-01-01T00:00:00Z: virtual wall clocks start here.
constexpr int64_t kEpochMs = 1'767'225'600'000;
// Cross-shard posts wait up to this long, so shards interleave differently
// from seed to seed (their order per shard pair is kept).
constexpr int64_t kMaxPostJitterUs = 20;
}  // namespace

// ---- world

world::world(uint64_t seed) : seed_(seed), rng_(seed), net_(std::make_unique<network>(*this)) {}

world::~world() {
  // Processes first (their coroutines may refer to the network), then the rest.
  for (auto& [_, n] : nodes_) n->crash();
  while (!queue_.empty()) queue_.pop();
}

node& world::add_node(int32_t id, const std::string& host, size_t shards) {
  GREGOR_ASSERT(!nodes_.count(id), "node {} added twice", id);
  auto n = std::make_unique<node>(*this, id, host, shards);
  auto& ref = *n;
  nodes_[id] = std::move(n);
  return ref;
}

node& world::get(int32_t id) {
  auto it = nodes_.find(id);
  GREGOR_ASSERT(it != nodes_.end(), "no node {}", id);
  return *it->second;
}

std::vector<node*> world::nodes() {
  std::vector<node*> out;
  for (auto& [_, n] : nodes_) out.push_back(n.get());
  return out;
}

bool world::chance(double p) {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
}

int64_t world::random_between(int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
}

void world::schedule(node* n, uint64_t incarnation, size_t shard, int64_t delay_us, action fn) {
  queue_.push(event{now_us_ + std::max<int64_t>(delay_us, 0), next_seq_++, n, incarnation, shard, std::move(fn)});
}

void world::schedule(node* n, size_t shard, int64_t delay_us, action fn) {
  schedule(n, n->incarnation(), shard, delay_us, std::move(fn));
}

bool world::step() {
  while (!queue_.empty() && !stuck_) {
    event ev = std::move(const_cast<event&>(queue_.top()));
    queue_.pop();
    if (ev.at_us > now_us_) {
      now_us_ = ev.at_us;
      steps_at_this_time_ = 0;
    } else if (++steps_at_this_time_ > 1'000'000) {
      log::get("sim")->error("virtual time is stuck at {} us: a million events without it moving", now_us_);
      stuck_ = true;
      return false;
    }
    node* n = ev.target;
    if (n->incarnation() != ev.incarnation || !n->running()) continue;  // its process is gone
    {
      scoped_current here(n, ev.shard);
      ev.fn();
    }
    ++steps_;
    if (n->halted_) {
      log::get("sim")->warn("node {} halted: {}", n->id(), n->halt_reason_);
      n->crash();
    }
    if (after_step_) after_step_();
    return true;
  }
  return false;
}

void world::run_for(int64_t ms) {
  const int64_t end = now_us_ + ms * 1000;
  while (!queue_.empty() && queue_.top().at_us <= end && !stuck_) step();
  if (now_us_ < end) now_us_ = end;
}

bool world::run_until(const std::function<bool()>& pred, int64_t max_ms) {
  const int64_t end = now_us_ + max_ms * 1000;
  if (pred()) return true;
  while (!queue_.empty() && queue_.top().at_us <= end && !stuck_) {
    if (step() && pred()) return true;
  }
  if (now_us_ < end) now_us_ = end;
  return pred();
}

void world::partition(int32_t a, int32_t b) {
  cuts_.insert({a, b});
  cuts_.insert({b, a});
}

void world::heal(int32_t a, int32_t b) {
  cuts_.erase({a, b});
  cuts_.erase({b, a});
}

void world::heal_all() { cuts_.clear(); }

bool world::partitioned(int32_t a, int32_t b) const { return a != b && cuts_.count({a, b}) > 0; }

// ---- node

node::node(world& w, int32_t id, std::string host, size_t shards)
    : world_(w), id_(id), host_(std::move(host)), shards_(shards), disk_(std::make_unique<disk>(*this)) {
  // Machines' clocks disagree a little.
  clock_offset_ms_ = w.random_between(-50, 50);
}

node::~node() = default;

disk_faults& node::faults() { return disk_->faults; }

void node::start(std::function<std::shared_ptr<void>()> boot) {
  GREGOR_ASSERT(!running_, "node {} is already running", id_);
  running_ = true;
  halted_ = false;
  halt_reason_.clear();
  last_post_us_.clear();
  {
    scoped_current here(this, 0);
    process_ = boot();
  }
  // It could not even start (halt() during boot): the process is gone.
  if (halted_) crash();
}

void node::crash() {
  if (!running_) return;
  running_ = false;
  ++incarnation_;
  world_.net().crashed(*this);
  {
    scoped_current here(this, 0);
    roots().destroy_all();
    process_.reset();
  }
  disk_->crash();
  halted_ = false;
}

void node::post(size_t shard, std::coroutine_handle<> h) {
  post(shard, [h] { h.resume(); });
}

void node::post(size_t shard, std::function<void()> fn) {
  if (!running()) return;
  GREGOR_ASSERT(shard < shards_, "post to shard {} of a node with {}", shard, shards_);
  int64_t delay = 0;
  const size_t from = this_shard();
  if (shard != from) {
    int64_t at = world_.now_us() + world_.random_between(0, kMaxPostJitterUs);
    auto& last = last_post_us_[{from, shard}];
    at = std::max(at, last);
    last = at;
    delay = at - world_.now_us();
  }
  world_.schedule(this, incarnation_, shard, delay, std::move(fn));
}

namespace {
class sim_timer final : public timer_impl {
 public:
  sim_timer(node& n, size_t shard) : n_(n), shard_(shard), state_(std::make_shared<state>()) {}
  ~sim_timer() override {
    state_->pending = false;
    state_->done = nullptr;
  }
  void wait(int64_t delay_ms, std::function<void(bool)> done) override {
    auto st = state_;
    st->pending = true;
    st->done = std::move(done);
    uint64_t token = ++st->token;
    n_.owner().schedule(&n_, n_.incarnation(), shard_, delay_ms * 1000, [st, token] {
      if (!st->pending || st->token != token) return;
      fire(*st, true);
    });
  }
  void cancel() override {
    auto st = state_;
    if (!st->pending) return;
    uint64_t token = st->token;
    n_.owner().schedule(&n_, n_.incarnation(), shard_, 0, [st, token] {
      if (!st->pending || st->token != token) return;
      fire(*st, false);
    });
  }

 private:
  struct state {
    bool pending = false;
    uint64_t token = 0;
    std::function<void(bool)> done;
  };
  static void fire(state& st, bool expired) {
    st.pending = false;
    auto done = std::move(st.done);
    st.done = nullptr;
    if (done) done(expired);
  }
  node& n_;
  size_t shard_;
  std::shared_ptr<state> state_;
};
}  // namespace

std::unique_ptr<timer_impl> node::make_timer() { return std::make_unique<sim_timer>(*this, this_shard()); }

int64_t node::wall_clock_ms() { return kEpochMs + world_.now_ms() + clock_offset_ms_; }

int64_t node::monotonic_ms() { return 1'000'000 + world_.now_ms(); }

uint64_t node::random_u64() { return world_.random_u64(); }

filesystem& node::files() { return *disk_; }

result<std::unique_ptr<listener>> node::listen(const std::string& host, uint16_t port) {
  return world_.net().listen(*this, host, port);
}

task<result<std::shared_ptr<connection>>> node::connect(const std::string& host, uint16_t port, int64_t timeout_ms) {
  return world_.net().connect(*this, host, port, timeout_ms);
}

void node::halt(const std::string& why) {
  if (halted_) return;
  halted_ = true;
  halt_reason_ = why;
}

}  // namespace gregor::runtime::sim
