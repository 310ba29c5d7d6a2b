#pragma once
// Follower fetchers (Kafka's ReplicaFetcherThread): on each shard, one loop
// per source broker fetches the partitions of that shard this broker follows
// from it, with Fetch v12 and this broker's id as replica_id. Each
// partition's follower_state decides what to do with the answer (append,
// truncate where the logs part, restart at the leader's log start, wait for
// newer metadata); this does the fetching and the log writes.
//
// The leader learns each follower's log end offset from the fetch offsets,
// which is what moves its high watermark: a follower fetches again as soon as
// it has appended, so acks=all produces complete one round trip later.
// Used only from its own shard's thread.
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "broker/partition_manager.h"
#include "protocol/messages.h"

#include "protocol/rpc_client.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker;

class replica_fetchers {
 public:
  explicit replica_fetchers(broker& b) : b_(b) {}

  // After an image is applied: starts a loop for every leader that this
  // shard's replicas now follow and no loop serves yet. Loops end by
  // themselves once nothing here follows their leader.
  void reconcile();
  void close();

 private:
  // What one partition of a fetch was sent with: the answer only applies to
  // the log and the leadership as they were then.
  struct sent_partition {
    topic_partition tp;
    int32_t leader_epoch;
    int64_t log_end_offset;
  };
  struct fetch_round {
    protocol::fetch_request request;
    std::vector<sent_partition> sent;
    protocol::rpc_client* client = nullptr;  // null: the leader's endpoint is unknown
    bool follows_any = false;
    int64_t resume_in_ms = INT64_MAX;  // when a paused partition may fetch again
  };

  runtime::task<void> run(int32_t leader_id);
  fetch_round next_round(int32_t leader_id);
  // Acts on a fetch's answer; false if there was none to act on (back off).
  bool apply_answer(int32_t leader_id, const std::vector<sent_partition>& sent, const result<bytes>& raw);
  // Does what follower_state decided for one partition; a failure, or "".
  std::string follow_log_start(replica_state& r, storage::log& plog, int64_t leader_log_start);
  std::string act(replica_state& r, storage::log& plog, const replication::follower_action& action,
                  const protocol::records& records);
  protocol::rpc_client* client_for(int32_t leader_id, const std::string& host, uint16_t port);

  broker& b_;
  std::map<int32_t, bool> running_;
  std::map<int32_t, std::unique_ptr<protocol::rpc_client>> clients_;
};

}  // namespace gregor::broker
