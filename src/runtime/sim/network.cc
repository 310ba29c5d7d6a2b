#include "runtime/sim/network.h"

#include <algorithm>

namespace gregor::runtime::sim {

namespace {

// Parks the calling coroutine in `slot` until someone resumes it.
struct park_in {
  std::coroutine_handle<>* slot;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept { *slot = h; }
  void await_resume() const noexcept {}
};

class sim_connection final : public connection {
 public:
  sim_connection(network& net, std::shared_ptr<network::endpoint> ep, std::string peer)
      : net_(net), ep_(std::move(ep)) {
    peer_ = std::move(peer);
  }
  ~sim_connection() override { close(); }

  task<result<void>> read_exact(uint8_t* dst, size_t n) override {
    auto ep = ep_;
    while (ep->inbound.size() < n) {
      if (ep->closed) co_return error{"connection closed"};
      if (ep->reset) co_return error{"connection reset by peer"};
      if (ep->peer_closed) co_return error{"connection closed by peer"};
      co_await park_in{&ep->reader};
    }
    std::copy_n(ep->inbound.begin(), n, dst);
    ep->inbound.erase(ep->inbound.begin(), ep->inbound.begin() + static_cast<std::ptrdiff_t>(n));
    co_return ok();
  }

  task<result<void>> write(const iobuf& buf) override {
    if (ep_->closed) co_return error{"connection closed"};
    if (ep_->reset) co_return error{"connection reset by peer"};
    bytes data;
    data.reserve(buf.size());
    for (auto& c : buf.chunks()) {
      if (auto* b = std::get_if<bytes>(&c)) {
        data.insert(data.end(), b->begin(), b->end());
        continue;
      }
      auto& r = std::get<file_region>(c);
      size_t at = data.size();
      data.resize(at + r.size);
      if (auto got = r.source->read_exact_at(r.position, data.data() + at, r.size); !got) co_return got.err();
    }
    net_.send(*ep_, network::unit_kind::data, std::move(data));
    co_return ok();
  }

  void close() override {
    if (ep_->closed) return;
    ep_->closed = true;
    net_.send(*ep_, network::unit_kind::fin, {});
    ep_->wake_reader(ep_->owner->owner());
  }

 private:
  network& net_;
  std::shared_ptr<network::endpoint> ep_;
};

class sim_listener final : public listener {
 public:
  sim_listener(network& net, std::shared_ptr<network::port_state> port, std::string host)
      : net_(net), port_(std::move(port)), host_(std::move(host)) {}
  ~sim_listener() override { close(); }

  task<result<std::shared_ptr<connection>>> accept(size_t target_shard) override {
    auto p = port_;
    for (;;) {
      if (p->closed) co_return error{"listener closed"};
      if (!p->backlog.empty()) {
        auto ep = std::move(p->backlog.front());
        p->backlog.pop_front();
        ep->shard = target_shard;
        std::string peer = "unknown";
        if (auto other = ep->peer.lock()) peer = other->owner->host();
        co_return std::shared_ptr<connection>(std::make_shared<sim_connection>(net_, ep, peer));
      }
      p->acceptor_shard = this_shard();
      co_await park_in{&p->acceptor};
    }
  }

  uint16_t port() const override { return port_->port; }

  void close() override {
    if (port_->closed) return;
    port_->closed = true;
    if (port_->acceptor) {
      auto h = std::exchange(port_->acceptor, {});
      auto& w = port_->owner->owner();
      w.schedule(port_->owner, port_->incarnation, port_->acceptor_shard, 0, [h] { h.resume(); });
    }
    // Connections not yet accepted are refused.
    for (auto& ep : port_->backlog) {
      ep->closed = true;
      net_.send(*ep, network::unit_kind::rst, {});
    }
    port_->backlog.clear();
  }

 private:
  network& net_;
  std::shared_ptr<network::port_state> port_;
  std::string host_;
};

}  // namespace

void network::endpoint::wake_reader(world& w) {
  if (!reader) return;
  auto h = std::exchange(reader, {});
  w.schedule(owner, incarnation, shard, 0, [h] { h.resume(); });
}

uint16_t network::ephemeral_port(node& n) {
  auto& p = next_port_[n.id()];
  if (p < 32768) p = 32768;
  return p++;
}

result<std::unique_ptr<listener>> network::listen(node& n, const std::string& host, uint16_t port) {
  if (!host.empty() && host != "0.0.0.0" && host != n.host())
    return error{"cannot listen on " + host + ":" + std::to_string(port) + ": Cannot assign requested address"};
  if (port == 0) {
    do port = ephemeral_port(n);
    while (ports_.count({n.id(), port}));
  }
  auto key = std::make_pair(n.id(), port);
  if (auto it = ports_.find(key); it != ports_.end() && !it->second->closed &&
                                  it->second->incarnation == n.incarnation())
    return error{"cannot listen on " + host + ":" + std::to_string(port) + ": Address already in use"};
  auto p = std::make_shared<port_state>();
  p->owner = &n;
  p->incarnation = n.incarnation();
  p->port = port;
  ports_[key] = p;
  return std::unique_ptr<listener>(std::make_unique<sim_listener>(*this, p, n.host()));
}

void network::send(endpoint& from, unit_kind kind, bytes data) {
  auto to = from.peer.lock();
  if (!to) return;
  world& w = world_;
  // A dead process sends nothing (its kernel's RST is sent by crashed()).
  if (kind != unit_kind::rst && (from.owner->incarnation() != from.incarnation || !from.owner->running())) return;
  if (w.partitioned(from.owner->id(), to->owner->id())) return;
  const auto& f = w.net_faults();
  int copies = 1;
  bool reorder = false;
  if (kind == unit_kind::data) {
    if (w.chance(f.drop)) return;
    if (w.chance(f.duplicate)) copies = 2;
    reorder = w.chance(f.reorder);
  }
  for (int i = 0; i < copies; ++i) {
    int64_t at = w.now_us() + w.random_between(f.min_latency_us, f.max_latency_us);
    if (reorder) {
      at += w.random_between(0, f.reorder_delay_max_us);
    } else {
      at = std::max(at, to->last_arrival_us);
      to->last_arrival_us = at;
    }
    w.schedule(to->owner, to->incarnation, to->shard, at - w.now_us(), [to, kind, data] {
      if (to->closed) return;
      switch (kind) {
        case unit_kind::data: to->inbound.insert(to->inbound.end(), data.begin(), data.end()); break;
        case unit_kind::fin: to->peer_closed = true; break;
        case unit_kind::rst: to->reset = true; break;
      }
      to->wake_reader(to->owner->owner());
    });
  }
}

task<result<std::shared_ptr<connection>>> network::connect(node& from, const std::string& host, uint16_t port,
                                                           int64_t timeout_ms) {
  struct attempt {
    std::coroutine_handle<> waiter;
    bool done = false;
    std::optional<result<std::shared_ptr<connection>>> out;
  };
  auto a = std::make_shared<attempt>();
  world& w = world_;
  const uint64_t inc = from.incarnation();
  const size_t shard = this_shard();
  auto finish = [a, &from, inc, shard, &w](int64_t delay_us, std::function<result<std::shared_ptr<connection>>()> make) {
    w.schedule(&from, inc, shard, delay_us, [a, make = std::move(make)] {
      if (a->done) return;
      a->done = true;
      a->out = make();
      if (a->waiter) std::exchange(a->waiter, {}).resume();
    });
  };
  const std::string where = host + ":" + std::to_string(port);
  auto latency = [&] { return w.random_between(w.net_faults().min_latency_us, w.net_faults().max_latency_us); };

  node* to = nullptr;
  for (auto* n : w.nodes())
    if (n->host() == host) to = n;
  if (!to) {
    finish(latency(), [where] { return result<std::shared_ptr<connection>>(error{"cannot connect to " + where + ": No route to host"}); });
  } else {
    // Whatever happens, the attempt gives up at its deadline.
    finish(timeout_ms * 1000, [where] {
      return result<std::shared_ptr<connection>>(error{"timed out connecting to " + where});
    });
    if (!w.partitioned(from.id(), to->id())) {
      int64_t there = latency(), back = latency();
      w.schedule(to, to->incarnation(), 0, there, [this, a, to, port, &from, inc, shard, where, back, finish] {
        auto it = ports_.find({to->id(), port});
        if (it == ports_.end() || it->second->closed || it->second->incarnation != to->incarnation() ||
            !to->running() || world_.partitioned(from.id(), to->id())) {
          if (!world_.partitioned(from.id(), to->id()))
            finish(back, [where] {
              return result<std::shared_ptr<connection>>(error{"cannot connect to " + where + ": Connection refused"});
            });
          return;
        }
        auto mine = std::make_shared<endpoint>();
        mine->owner = &from;
        mine->incarnation = inc;
        mine->shard = shard;
        auto theirs = std::make_shared<endpoint>();
        theirs->owner = to;
        theirs->incarnation = to->incarnation();
        mine->peer = theirs;
        theirs->peer = mine;
        for (auto* owner : {&from, to}) {
          auto& list = endpoints_[owner->id()];
          list.push_back(owner == &from ? mine : theirs);
          if (list.size() % 256 == 0) std::erase_if(list, [](auto& e) { return e.expired(); });
        }
        auto& p = *it->second;
        p.backlog.push_back(theirs);
        if (p.acceptor) {
          auto h = std::exchange(p.acceptor, {});
          world_.schedule(to, p.incarnation, p.acceptor_shard, 0, [h] { h.resume(); });
        }
        const std::string peer = to->host() + ":" + std::to_string(port);
        finish(back, [this, mine, peer] {
          return result<std::shared_ptr<connection>>(std::shared_ptr<connection>(std::make_shared<sim_connection>(*this, mine, peer)));
        });
      });
    }
  }
  if (!a->done) co_await park_in{&a->waiter};
  co_return std::move(*a->out);
}

void network::crashed(node& n) {
  for (auto& [key, p] : ports_) {
    if (key.first != n.id() || p->closed) continue;
    p->closed = true;
    p->acceptor = {};
    p->backlog.clear();
  }
  auto it = endpoints_.find(n.id());
  if (it == endpoints_.end()) return;
  for (auto& weak : it->second) {
    auto ep = weak.lock();
    if (!ep || ep->closed) continue;
    ep->closed = true;
    ep->reader = {};
    // The machine's kernel resets the dead process's connections.
    send(*ep, unit_kind::rst, {});
  }
  it->second.clear();
}

}  // namespace gregor::runtime::sim
