#pragma once
// The consumer. NOT thread-safe, by design (as Kafka's KafkaConsumer): one
// application thread calls poll(), commit, seek and friends. A background
// thread only sends heartbeats while the consumer is a stable group member.
//
// Two modes:
//   - subscribe(topics): the classic group protocol (JoinGroup / SyncGroup /
//     Heartbeat) with a client-side assignor (range, roundrobin,
//     cooperative-sticky), rebalance callbacks, committed offsets;
//   - assign(partitions): no group membership; offsets may still be
//     committed to group.id if one is set.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/admin.h"
#include "client/assignor.h"
#include "client/cluster.h"
#include "protocol/record_batch.h"

namespace gregor::client {

struct consumer_config : common_config {
  std::string group_id;
  std::optional<std::string> group_instance_id;
  int32_t session_timeout_ms = 45000;
  int32_t heartbeat_interval_ms = 3000;
  int32_t max_poll_interval_ms = 300000;
  std::vector<std::string> partition_assignment_strategy = {"range", "cooperative-sticky"};
  bool enable_auto_commit = true;
  int64_t auto_commit_interval_ms = 5000;
  std::string auto_offset_reset = "latest";  // earliest, latest, none
  int32_t fetch_min_bytes = 1;
  int32_t fetch_max_bytes = 52428800;
  int32_t max_partition_fetch_bytes = 1048576;
  int32_t fetch_max_wait_ms = 500;
  int32_t max_poll_records = 500;
  bool check_crcs = true;
  bool read_committed = false;  // isolation.level: read_uncommitted (Kafka's default) or read_committed
  bool allow_auto_create_topics = true;

  result<void> set(const std::string& key, const std::string& value);
};

struct consumer_record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp = -1;
  protocol::timestamp_type timestamp_type = protocol::timestamp_type::create_time;
  int32_t leader_epoch = -1;
  std::optional<bytes> key;
  std::optional<bytes> value;
  std::vector<protocol::record_header> headers;
};

struct rebalance_listener {
  std::function<void(const std::vector<topic_partition>&)> on_partitions_revoked;
  std::function<void(const std::vector<topic_partition>&)> on_partitions_assigned;
  std::function<void(const std::vector<topic_partition>&)> on_partitions_lost;
};

class consumer {
 public:
  explicit consumer(consumer_config config);
  ~consumer();  // close()
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  result<void> subscribe(const std::vector<std::string>& topics, rebalance_listener listener = {});
  void assign(const std::vector<topic_partition>& partitions);
  void unsubscribe();
  std::vector<topic_partition> assignment() const;
  std::vector<std::string> subscription() const { return subscription_; }

  // Waits up to timeout_ms for records (also runs group membership, position
  // resets and auto commit). An error is a failure the caller should see:
  // offset out of range under auto.offset.reset=none, unreachable cluster,
  // a fatal group error.
  result<std::vector<consumer_record>> poll(int64_t timeout_ms);

  // Commits the current positions (or the given offsets: the next offset to
  // read, as in Kafka).
  result<void> commit_sync();
  result<void> commit_sync(const std::map<topic_partition, int64_t>& offsets);
  // Queued and sent on the next poll(); the callback runs inside that poll.
  void commit_async(std::function<void(const result<void>&)> callback = {});
  void commit_async(const std::map<topic_partition, int64_t>& offsets,
                    std::function<void(const result<void>&)> callback = {});

  void seek(const topic_partition& tp, int64_t offset);
  result<void> seek_to_beginning(const std::vector<topic_partition>& tps);
  result<void> seek_to_end(const std::vector<topic_partition>& tps);
  // The offset of the next record poll() returns (resolving it if needed).
  result<int64_t> position(const topic_partition& tp);
  result<std::map<topic_partition, int64_t>> committed(const std::vector<topic_partition>& tps);
  // Earliest / latest offsets of partitions.
  result<std::map<topic_partition, int64_t>> beginning_offsets(const std::vector<topic_partition>& tps);
  result<std::map<topic_partition, int64_t>> end_offsets(const std::vector<topic_partition>& tps);

  // The group membership as last joined (for tests and tools).
  std::string member_id() const;
  int32_t generation() const;

  // Commits (with auto commit), revokes, leaves the group. Idempotent.
  void close();

 private:
  struct partition_state {
    std::optional<int64_t> position;  // next offset poll() returns
    int64_t fetch_position = -1;      // next offset to fetch (>= position)
    int32_t leader_epoch = -1;
    std::deque<consumer_record> buffered;
  };

  result<void> ensure_group(int64_t deadline);
  result<void> join_and_sync(int64_t deadline);
  result<void> update_positions();
  result<void> reset_offsets(const std::vector<topic_partition>& tps, const std::string& policy);
  result<std::map<topic_partition, int64_t>> list_offsets(const std::vector<topic_partition>& tps, int64_t ts);
  result<void> fetch(int64_t max_wait_ms);
  result<void> commit(const std::map<topic_partition, int64_t>& offsets);
  void maybe_auto_commit(bool force);
  void run_pending_async_commits();
  std::map<topic_partition, int64_t> current_positions() const;
  void set_assignment(const std::vector<topic_partition>& tps);
  void revoke(const std::vector<topic_partition>& tps, bool lost);
  void heartbeat_loop();
  void stop_heartbeat();
  void leave_group();
  bool cooperative() const { return protocol_ == "cooperative-sticky"; }

  consumer_config config_;
  cluster cluster_;        // metadata, fetch, list offsets
  cluster group_cluster_;  // the coordinator: join, sync, commit, heartbeat
  std::vector<std::string> subscription_;
  rebalance_listener listener_;
  bool subscribed_ = false;
  std::map<topic_partition, partition_state> assigned_;
  int64_t next_auto_commit_ms_ = 0;
  std::vector<std::pair<std::map<topic_partition, int64_t>, std::function<void(const result<void>&)>>> async_commits_;
  size_t next_partition_ = 0;  // round-robin start for returning buffered records

  // Group membership, shared with the heartbeat thread.
  mutable std::mutex gmu_;
  std::condition_variable hb_cv_;
  std::string member_id_;
  int32_t generation_ = -1;
  std::string protocol_;
  bool stable_ = false;
  std::atomic<bool> rejoin_needed_{false};
  std::atomic<bool> member_lost_{false};
  bool hb_stop_ = false;
  sys::thread heartbeat_;
  bool closed_ = false;
};

}  // namespace gregor::client
