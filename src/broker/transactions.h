#pragma once
// The broker's side of the transaction coordinator: its settings from the
// broker's, and the marker sender that writes a transaction's COMMIT/ABORT
// markers on the leaders of its partitions with WriteTxnMarkers v1 (this
// node included: it sends to itself like to any other broker).
#include <map>
#include <memory>

#include "coordinator/transaction_service.h"
#include "protocol/rpc_client.h"

namespace gregor::broker {

class broker;

coordinator::txn_service_config txn_config_from(const struct broker_config& c);

// Connections to other brokers' inter-broker listeners, one per node, made
// on first use and remade when a node's endpoint changes. Used on one shard
// (the coordinator's home): the connections belong to it.
class broker_clients {
 public:
  broker_clients(broker& b, std::string client_id) : b_(b), client_id_(std::move(client_id)) {}
  // Null when the node is unknown, fenced or has no inter-broker endpoint.
  protocol::rpc_client* client_for(int32_t node_id);

 private:
  broker& b_;
  std::string client_id_;
  std::map<int32_t, std::unique_ptr<protocol::rpc_client>> clients_;
};

// Lives on the coordinator's home shard.
class broker_txn_marker_sender final : public coordinator::txn_marker_sender {
 public:
  explicit broker_txn_marker_sender(broker& b);
  runtime::task<bool> send(markers m, std::function<bool()> still_current) override;

 private:
  broker& b_;
  broker_clients clients_;
};

// KIP-890 part 1: a partition leader asks a transactional id's coordinator
// (AddPartitionsToTxn v4 with verify_only, itself included) whether
// partitions are in the producer's ongoing transaction before the first
// transactional batch there is written. Lives on the coordinator's home shard.
class broker_txn_verifier {
 public:
  explicit broker_txn_verifier(broker& b);
  // One error per partition, as Produce answers it: none when verified;
  // NOT_ENOUGH_REPLICAS (retriable for every client, as Kafka maps it) while
  // the coordinator is unknown, moving, loading or busy with the
  // transaction's end; INVALID_PRODUCER_EPOCH when fenced; INVALID_TXN_STATE
  // when the partition is not in the transaction.
  runtime::task<std::vector<protocol::error_code>> verify(std::string transactional_id, int64_t producer_id,
                                                           int16_t producer_epoch,
                                                           std::vector<coordinator::topic_partition> partitions,
                                                           int64_t timeout_ms);

 private:
  broker& b_;
  broker_clients clients_;
};

}  // namespace gregor::broker
