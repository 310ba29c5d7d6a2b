#pragma once
// The simulated network: listeners and connections between nodes of one
// world. A write is one unit that arrives after a random latency, in order
// on its connection unless a fault reorders it; it may also be lost or
// duplicated. Across a partition, units and connection attempts are lost.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/net.h"
#include "runtime/sim/world.h"

namespace gregor::runtime::sim {

class network {
 public:
  explicit network(world& w) : world_(w) {}

  result<std::unique_ptr<listener>> listen(node& n, const std::string& host, uint16_t port);
  task<result<std::shared_ptr<connection>>> connect(node& from, const std::string& host, uint16_t port,
                                                    int64_t timeout_ms);
  // The process on n died: its listeners go, its connections are reset.
  void crashed(node& n);

  // One side of a connection.
  struct endpoint {
    node* owner = nullptr;
    uint64_t incarnation = 0;
    size_t shard = 0;
    std::weak_ptr<endpoint> peer;
    std::deque<uint8_t> inbound;
    bool peer_closed = false;  // FIN arrived: reads fail once the buffer runs dry
    bool reset = false;        // RST arrived: reads and writes fail
    bool closed = false;       // closed here
    std::coroutine_handle<> reader;
    int64_t last_arrival_us = 0;  // of in-order units, so they keep their order
    void wake_reader(world& w);
  };

  // One listening port.
  struct port_state {
    node* owner = nullptr;
    uint64_t incarnation = 0;
    uint16_t port = 0;
    bool closed = false;
    std::deque<std::shared_ptr<endpoint>> backlog;
    std::coroutine_handle<> acceptor;
    size_t acceptor_shard = 0;
  };

  // Sends `data` from `from` to its peer as one unit (or a FIN / RST).
  enum class unit_kind { data, fin, rst };
  void send(endpoint& from, unit_kind kind, bytes data);

 private:
  uint16_t ephemeral_port(node& n);

  world& world_;
  std::map<std::pair<int32_t, uint16_t>, std::shared_ptr<port_state>> ports_;
  std::map<int32_t, std::vector<std::weak_ptr<endpoint>>> endpoints_;  // by owning node
  std::map<int32_t, uint16_t> next_port_;
};

}  // namespace gregor::runtime::sim
