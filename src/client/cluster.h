#pragma once
// What a client knows about the cluster: bootstrap servers, brokers, topic
// metadata, and one connection per broker. Thread-safe: metadata is an
// immutable snapshot swapped under a mutex, and each connection is used by one
// thread at a time (a connection_lease holds its lock).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "client/connection.h"

namespace gregor::client {

struct common_config {
  std::string bootstrap_servers = "localhost:9092";
  std::string client_id = "gregor-client";
  int64_t request_timeout_ms = 30000;
  int64_t socket_connection_setup_timeout_ms = 10000;
  int64_t retry_backoff_ms = 100;
  int64_t metadata_max_age_ms = 300000;
};

struct partition_info {
  int32_t partition = 0;
  int16_t error_code = 0;
  int32_t leader = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
  std::vector<int32_t> offline;
};

struct topic_info {
  std::string name;
  int16_t error_code = 0;
  protocol::uuid topic_id;
  bool is_internal = false;
  std::vector<partition_info> partitions;  // sorted by partition
};

struct broker_info {
  int32_t node_id = 0;
  std::string host;
  int32_t port = 0;
  std::optional<std::string> rack;
};

struct cluster_metadata {
  std::string cluster_id;
  int32_t controller_id = -1;
  std::vector<broker_info> brokers;
  std::map<std::string, topic_info> topics;
  int64_t fetched_at_ms = 0;

  const topic_info* topic(const std::string& name) const {
    auto it = topics.find(name);
    return it == topics.end() ? nullptr : &it->second;
  }
  const broker_info* broker(int32_t id) const {
    for (auto& b : brokers)
      if (b.node_id == id) return &b;
    return nullptr;
  }
};

// Exclusive use of one broker connection while the lease lives.
class connection_lease {
 public:
  connection_lease(std::unique_lock<std::mutex> lock, connection* c) : lock_(std::move(lock)), c_(c) {}
  connection* operator->() const { return c_; }
  connection& operator*() const { return *c_; }
  // Gives the connection back early.
  void release() {
    if (lock_.owns_lock()) lock_.unlock();
  }

 private:
  std::unique_lock<std::mutex> lock_;
  connection* c_;
};

std::string describe_error(int16_t code);  // "UNKNOWN_TOPIC_OR_PARTITION (3)"

class cluster {
 public:
  explicit cluster(common_config config);
  ~cluster();

  const common_config& config() const { return config_; }

  // Fetches metadata for `topics` (nullopt: all topics) from any reachable
  // broker and merges it into the cache (all-topics replaces it).
  result<std::shared_ptr<const cluster_metadata>> refresh(const std::optional<std::vector<std::string>>& topics,
                                                          bool allow_auto_create = false);
  // The cached snapshot (never null; empty before the first refresh).
  std::shared_ptr<const cluster_metadata> metadata() const;

  // A connection to a broker by node id (connecting if needed).
  result<connection_lease> node(int32_t node_id);
  // A connection to any broker: a known one, else a bootstrap server.
  result<connection_lease> any();
  // The coordinator's connection (FindCoordinator, cached until
  // forget_coordinator): of a group (key_type 0), or of a transactional id
  // (key_type 1, the transaction coordinator).
  result<connection_lease> coordinator(const std::string& key, int8_t key_type = coordinator_group);
  result<int32_t> coordinator_id(const std::string& key, int8_t key_type = coordinator_group);
  void forget_coordinator(const std::string& key, int8_t key_type = coordinator_group);
  static constexpr int8_t coordinator_group = 0;
  static constexpr int8_t coordinator_transaction = 1;

  // Calls any broker, retrying other brokers on transport failures.
  template <class Req>
  result<typename response_for<Req>::type> call_any(const Req& req) {
    std::string last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto c = any();
      if (!c) return c.err();
      auto r = (*c)->call(req, config_.request_timeout_ms);
      if (r || (*c)->is_open()) return r;
      last = r.err().message;
    }
    return error{last};
  }
  template <class Req>
  result<typename response_for<Req>::type> call_node(int32_t node_id, const Req& req) {
    auto c = node(node_id);
    if (!c) return c.err();
    return (*c)->call(req, config_.request_timeout_ms);
  }
  template <class Req>
  result<typename response_for<Req>::type> call_coordinator(const std::string& group_id, const Req& req) {
    auto c = coordinator(group_id);
    if (!c) return c.err();
    return (*c)->call(req, config_.request_timeout_ms);
  }

 private:
  struct slot {
    std::mutex mu;
    std::unique_ptr<connection> conn;
    std::string host;
    int port = 0;
  };
  result<connection_lease> lease(slot& s);
  slot& slot_for(int32_t node_id, const std::string& host, int port);

  common_config config_;
  std::vector<std::pair<std::string, int>> bootstrap_;
  mutable std::mutex mu_;
  std::shared_ptr<const cluster_metadata> metadata_;
  std::map<int32_t, std::unique_ptr<slot>> slots_;  // bootstrap servers get ids -1, -2, ...
  std::map<std::pair<int8_t, std::string>, int32_t> coordinators_;  // by (key_type, key)
  size_t next_any_ = 0;
};

// Parses "host:port[,host:port...]".
result<std::vector<std::pair<std::string, int>>> parse_bootstrap(const std::string& s);

}  // namespace gregor::client
