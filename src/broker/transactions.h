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

// Lives on the coordinator's home shard (its connections belong to it).
class broker_txn_marker_sender final : public coordinator::txn_marker_sender {
 public:
  explicit broker_txn_marker_sender(broker& b) : b_(b) {}
  runtime::task<bool> send(markers m, std::function<bool()> still_current) override;

 private:
  protocol::rpc_client* client_for(int32_t node_id);

  broker& b_;
  std::map<int32_t, std::unique_ptr<protocol::rpc_client>> clients_;
};

}  // namespace gregor::broker
