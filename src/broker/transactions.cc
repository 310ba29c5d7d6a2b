#include "broker/transactions.h"

#include <set>

#include "base/log.h"
#include "broker/broker.h"
#include "runtime/clock.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
// A marker waits at most 30 s for its ISR at the leader (handlers/write_txn_markers.cc).
constexpr int64_t kMarkerCallTimeoutMs = 35000;
constexpr int64_t kRetryBackoffMs = 100;
constexpr int64_t kMaxRetryBackoffMs = 2000;
}  // namespace

coordinator::txn_service_config txn_config_from(const broker_config& c) {
  coordinator::txn_service_config t;
  t.coordinator.transaction_state_log_num_partitions = c.transaction_state_log_num_partitions;
  t.coordinator.transaction_max_timeout_ms = c.transaction_max_timeout_ms;
  t.coordinator.offsets_topic_num_partitions = c.offsets_topic_num_partitions;
  t.abort_timed_out_transaction_cleanup_interval_ms = c.transaction_abort_timed_out_transaction_cleanup_interval_ms;
  t.coordinator.transactional_id_expiration_ms = c.transactional_id_expiration_ms;
  t.remove_expired_transaction_cleanup_interval_ms = c.transaction_remove_expired_transaction_cleanup_interval_ms;
  return t;
}

protocol::rpc_client* broker_clients::client_for(int32_t node_id) {
  auto img = b_.image();
  auto* reg = img->broker(node_id);
  if (!reg || reg->fenced) return nullptr;
  auto* ep = reg->endpoint(b_.config().inter_broker_listener_name);
  if (!ep) return nullptr;
  auto& c = clients_[node_id];
  if (c && (c->host() != ep->host || c->port() != static_cast<uint16_t>(ep->port))) c.reset();
  if (!c) c = std::make_unique<protocol::rpc_client>(ep->host, static_cast<uint16_t>(ep->port), client_id_);
  return c.get();
}

broker_txn_marker_sender::broker_txn_marker_sender(broker& b)
    : b_(b), clients_(b, "txn-coordinator-" + std::to_string(b.config().node_id)) {}

runtime::task<bool> broker_txn_marker_sender::send(markers m, std::function<bool()> still_current) {
  auto lg = log::get("coordinator");
  std::set<coordinator::topic_partition> left(m.partitions.begin(), m.partitions.end());
  int64_t backoff = kRetryBackoffMs;
  while (!left.empty()) {
    if (!still_current() || b_.stopping()) co_return false;
    auto img = b_.image();
    std::map<int32_t, std::map<std::string, std::vector<int32_t>>> by_leader;
    for (auto it = left.begin(); it != left.end();) {
      auto* t = img->topic(it->first);
      if (!t || it->second < 0 || static_cast<size_t>(it->second) >= t->partitions.size()) {
        // Deleted since: nothing to close there (Kafka drops it too).
        it = left.erase(it);
        continue;
      }
      int32_t leader = t->partitions[static_cast<size_t>(it->second)].leader;
      if (leader >= 0) by_leader[leader][it->first].push_back(it->second);
      ++it;
    }
    for (auto& [leader, topics] : by_leader) {
      auto* client = clients_.client_for(leader);
      if (!client) continue;
      protocol::write_txn_markers_request req;
      auto& mk = req.markers.emplace_back();
      mk.producer_id = m.producer_id;
      mk.producer_epoch = m.producer_epoch;
      mk.transaction_result = m.commit;
      mk.coordinator_epoch = m.coordinator_epoch;
      for (auto& [name, parts] : topics) {
        auto& t = mk.topics.emplace_back();
        t.name = name;
        t.partition_indexes = parts;
      }
      auto r = co_await client->call<protocol::write_txn_markers_response>(req, 1, kMarkerCallTimeoutMs);
      if (!r) {
        lg->debug("WriteTxnMarkers to node {} failed: {}", leader, r.err().message);
        continue;
      }
      for (auto& mr : r.value().markers)
        for (auto& t : mr.topics)
          for (auto& p : t.partitions) {
            auto e = static_cast<error_code>(p.error_code);
            if (e == error_code::none) {
              left.erase({t.name, p.partition_index});
            } else if (e == error_code::transaction_coordinator_fenced) {
              lg->warn("markers of producer {}: coordinator fenced at {}-{}", m.producer_id, t.name,
                       p.partition_index);
              co_return false;
            } else {
              lg->debug("marker of producer {} at {}-{}: {}; retrying", m.producer_id, t.name, p.partition_index,
                        protocol::error_name(e));
            }
          }
    }
    if (!left.empty()) {
      co_await runtime::sleep_for(backoff);
      backoff = std::min(backoff * 2, kMaxRetryBackoffMs);
    }
  }
  co_return true;
}

broker_txn_verifier::broker_txn_verifier(broker& b)
    : b_(b), clients_(b, "txn-verifier-" + std::to_string(b.config().node_id)) {}

namespace {
error_code produce_error_for(error_code e) {
  switch (e) {
    case error_code::coordinator_not_available:
    case error_code::not_coordinator:
    case error_code::coordinator_load_in_progress:
    case error_code::concurrent_transactions:
    case error_code::request_timed_out:
    case error_code::network_exception:
      return error_code::not_enough_replicas;
    case error_code::producer_fenced:
      return error_code::invalid_producer_epoch;
    default:
      return e;
  }
}
}  // namespace

runtime::task<std::vector<error_code>> broker_txn_verifier::verify(std::string id, int64_t producer_id,
                                                                   int16_t producer_epoch,
                                                                   std::vector<coordinator::topic_partition> tps,
                                                                   int64_t timeout_ms) {
  std::vector<error_code> out(tps.size(), error_code::not_enough_replicas);
  auto img = b_.image();
  auto* state = img->topic(coordinator::transaction_state_topic_name);
  if (!state || state->partitions.empty()) co_return out;
  int32_t p = coordinator::partition_for_transactional_id(id, static_cast<int32_t>(state->partitions.size()));
  int32_t coordinator_node = state->partitions[static_cast<size_t>(p)].leader;
  if (coordinator_node < 0) co_return out;

  protocol::add_partitions_to_txn_request req;
  auto& t = req.transactions.emplace_back();
  t.transactional_id = id;
  t.producer_id = producer_id;
  t.producer_epoch = producer_epoch;
  t.verify_only = true;
  for (auto& [topic, partition] : tps) {
    if (t.topics.empty() || t.topics.back().name != topic) t.topics.emplace_back().name = topic;
    t.topics.back().partitions.push_back(partition);
  }
  protocol::add_partitions_to_txn_response resp;
  if (coordinator_node == b_.config().node_id) {
    auto exists = [img](const std::string& topic, int32_t partition) {
      auto* tt = img->topic(topic);
      return tt && partition >= 0 && static_cast<size_t>(partition) < tt->partitions.size();
    };
    resp = co_await b_.transactions().add_partitions_to_txn(4, std::move(req), std::move(exists));
  } else {
    auto* client = clients_.client_for(coordinator_node);
    if (!client) co_return out;
    auto r = co_await client->call<protocol::add_partitions_to_txn_response>(req, 4, timeout_ms);
    if (!r) {
      log::get("coordinator")->debug("verifying {} with node {}: {}", id, coordinator_node, r.err().message);
      co_return out;
    }
    resp = std::move(r.value());
  }
  if (resp.error_code != 0) {
    std::fill(out.begin(), out.end(), produce_error_for(static_cast<error_code>(resp.error_code)));
    co_return out;
  }
  for (auto& tr : resp.results_by_transaction)
    for (auto& topic : tr.topic_results)
      for (auto& pr : topic.results_by_partition)
        for (size_t i = 0; i < tps.size(); ++i)
          if (tps[i].first == topic.name && tps[i].second == pr.partition_index)
            out[i] = produce_error_for(static_cast<error_code>(pr.partition_error_code));
  co_return out;
}

}  // namespace gregor::broker
