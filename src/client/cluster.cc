#include "client/cluster.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace gregor::client {

std::string describe_error(int16_t code) {
  std::string n = protocol::error_name(code);
  for (auto& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return fmt::format("{} ({})", n, code);
}

result<std::vector<std::pair<std::string, int>>> parse_bootstrap(const std::string& s) {
  std::vector<std::pair<std::string, int>> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    // Strip spaces and an optional PLAINTEXT:// prefix.
    item.erase(std::remove_if(item.begin(), item.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }),
               item.end());
    if (auto p = item.find("://"); p != std::string::npos) item = item.substr(p + 3);
    if (!item.empty()) {
      auto colon = item.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == item.size())
        return error{fmt::format("bad bootstrap server '{}': expected host:port", item)};
      std::string host = item.substr(0, colon);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      int port = 0;
      for (char c : item.substr(colon + 1)) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return error{fmt::format("bad port in '{}'", item)};
        port = port * 10 + (c - '0');
        if (port > 65535) return error{fmt::format("bad port in '{}'", item)};
      }
      out.emplace_back(host, port);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return error{"no bootstrap servers given"};
  return out;
}

cluster::cluster(common_config config) : config_(std::move(config)) {
  auto b = parse_bootstrap(config_.bootstrap_servers);
  if (b) bootstrap_ = b.value();
  metadata_ = std::make_shared<cluster_metadata>();
}

cluster::~cluster() = default;

std::shared_ptr<const cluster_metadata> cluster::metadata() const {
  std::lock_guard g(mu_);
  return metadata_;
}

cluster::slot& cluster::slot_for(int32_t node_id, const std::string& host, int port) {
  auto& s = slots_[node_id];
  if (!s) s = std::make_unique<slot>();
  s->host = host;
  s->port = port;
  return *s;
}

result<connection_lease> cluster::lease(slot& s) {
  std::unique_lock lock(s.mu);
  if (!s.conn || !s.conn->is_open() || s.conn->host() != s.host || s.conn->port() != s.port) {
    s.conn.reset();
    auto c = connection::open(s.host, s.port, config_.client_id, config_.socket_connection_setup_timeout_ms);
    if (!c) return c.err();
    s.conn = std::move(c.value());
  }
  return connection_lease(std::move(lock), s.conn.get());
}

result<connection_lease> cluster::node(int32_t node_id) {
  slot* s = nullptr;
  {
    std::lock_guard g(mu_);
    auto* b = metadata_->broker(node_id);
    if (!b) {
      auto it = slots_.find(node_id);
      if (it == slots_.end()) return error{fmt::format("unknown broker id {}", node_id)};
      s = it->second.get();
    } else {
      s = &slot_for(node_id, b->host, b->port);
    }
  }
  return lease(*s);
}

result<connection_lease> cluster::any() {
  std::vector<slot*> candidates;
  {
    std::lock_guard g(mu_);
    for (auto& b : metadata_->brokers) candidates.push_back(&slot_for(b.node_id, b.host, b.port));
    for (size_t i = 0; i < bootstrap_.size(); ++i)
      candidates.push_back(&slot_for(-1 - static_cast<int32_t>(i), bootstrap_[i].first, bootstrap_[i].second));
    if (candidates.empty()) return error{"no bootstrap servers given"};
    // Prefer a connection that is already open.
    for (auto* s : candidates) {
      std::unique_lock l(s->mu, std::try_to_lock);
      if (l.owns_lock() && s->conn && s->conn->is_open()) {
        std::swap(candidates.front(), *std::find(candidates.begin(), candidates.end(), s));
        break;
      }
    }
    next_any_++;
  }
  std::string errors;
  for (auto* s : candidates) {
    auto l = lease(*s);
    if (l) return l;
    if (!errors.empty()) errors += "; ";
    errors += l.err().message;
  }
  return error{fmt::format("no broker reachable ({})", errors)};
}

result<std::shared_ptr<const cluster_metadata>> cluster::refresh(const std::optional<std::vector<std::string>>& topics,
                                                                 bool allow_auto_create) {
  protocol::metadata_request req;
  if (topics) {
    req.topics.emplace();
    for (auto& t : *topics) {
      protocol::metadata_request::metadata_request_topic rt;
      rt.name = t;
      req.topics->push_back(rt);
    }
  }
  req.allow_auto_topic_creation = allow_auto_create;
  auto resp = call_any(req);
  if (!resp) return resp.err();
  std::lock_guard g(mu_);
  auto md = std::make_shared<cluster_metadata>();
  if (topics) md->topics = metadata_->topics;
  md->cluster_id = resp->cluster_id.value_or("");
  md->controller_id = resp->controller_id;
  for (auto& b : resp->brokers) md->brokers.push_back({b.node_id, b.host, b.port, b.rack});
  for (auto& t : resp->topics) {
    topic_info ti;
    ti.name = t.name.value_or("");
    ti.error_code = t.error_code;
    ti.topic_id = t.topic_id;
    ti.is_internal = t.is_internal;
    for (auto& p : t.partitions) {
      partition_info pi;
      pi.partition = p.partition_index;
      pi.error_code = p.error_code;
      pi.leader = p.leader_id;
      pi.leader_epoch = p.leader_epoch;
      pi.replicas = p.replica_nodes;
      pi.isr = p.isr_nodes;
      pi.offline = p.offline_replicas;
      ti.partitions.push_back(std::move(pi));
    }
    std::sort(ti.partitions.begin(), ti.partitions.end(),
              [](auto& a, auto& b) { return a.partition < b.partition; });
    if (ti.error_code != 0 && topics) {
      md->topics.erase(ti.name);
      md->topics[ti.name] = std::move(ti);
    } else {
      md->topics[ti.name] = std::move(ti);
    }
  }
  md->fetched_at_ms = sys::monotonic_ms();
  metadata_ = md;
  return std::shared_ptr<const cluster_metadata>(md);
}

result<int32_t> cluster::coordinator_id(const std::string& key, int8_t key_type) {
  {
    std::lock_guard g(mu_);
    auto it = coordinators_.find({key_type, key});
    if (it != coordinators_.end()) return it->second;
  }
  protocol::find_coordinator_request req;
  req.key = key;
  req.key_type = key_type;
  req.coordinator_keys = {key};
  std::string last;
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto resp = call_any(req);
    if (!resp) return resp.err();
    int16_t ec = resp->error_code;
    int32_t node_id = resp->node_id;
    std::string host = resp->host;
    int32_t port = resp->port;
    if (!resp->coordinators.empty()) {
      ec = resp->coordinators[0].error_code;
      node_id = resp->coordinators[0].node_id;
      host = resp->coordinators[0].host;
      port = resp->coordinators[0].port;
    }
    if (ec == 0) {
      std::lock_guard g(mu_);
      coordinators_[{key_type, key}] = node_id;
      // The coordinator may not be in our metadata yet: remember its address.
      slot_for(node_id, host, port);
      if (!metadata_->broker(node_id)) {
        auto md = std::make_shared<cluster_metadata>(*metadata_);
        md->brokers.push_back({node_id, host, port, std::nullopt});
        metadata_ = md;
      }
      return node_id;
    }
    last = describe_error(ec);
    if (ec != protocol::code(protocol::error_code::coordinator_not_available) &&
        ec != protocol::code(protocol::error_code::coordinator_load_in_progress) &&
        ec != protocol::code(protocol::error_code::not_coordinator))
      break;
    sys::sleep_ms(config_.retry_backoff_ms);
  }
  return error{fmt::format("cannot find the coordinator of {} '{}': {}",
                           key_type == coordinator_transaction ? "transactional id" : "group", key, last)};
}

result<connection_lease> cluster::coordinator(const std::string& key, int8_t key_type) {
  auto id = coordinator_id(key, key_type);
  if (!id) return id.err();
  auto c = node(id.value());
  if (!c) forget_coordinator(key, key_type);
  return c;
}

void cluster::forget_coordinator(const std::string& key, int8_t key_type) {
  std::lock_guard g(mu_);
  coordinators_.erase({key_type, key});
}

}  // namespace gregor::client
