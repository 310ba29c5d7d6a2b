#pragma once
// The broker: the state every request handler reaches. It keeps, per shard,
// the latest metadata image and the partitions that shard owns; it forwards
// metadata changes to the controller on shard 0 and replies only once every
// shard has the resulting image; and it wakes fetches waiting for data.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/config.h"
#include "broker/partition_manager.h"
#include "coordinator/group_service.h"
#include "metadata/controller.h"
#include "metadata/image.h"
#include "metadata/quorum.h"
#include "runtime/clock.h"
#include "runtime/net.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker {
 public:
  broker(broker_config config, std::string cluster_id, bool recover);
  ~broker();

  // Runs on shard 0: opens the metadata log, publishes the image to every
  // shard (opening their logs), then starts the listeners.
  runtime::task<result<void>> start();
  // Stops accepting, closes every log and the metadata log.
  runtime::task<void> shutdown();

  const broker_config& config() const { return config_; }
  const std::string& cluster_id() const { return cluster_id_; }
  size_t shard_count() const { return shards_.size(); }
  // Ports actually bound, per listener (after start).
  const std::vector<uint16_t>& bound_ports() const { return bound_ports_; }

  // This shard's view.
  metadata::image_ptr image() const;
  partition_manager& partitions();

  // Metadata changes, decided by the controller and committed on shard 0.
  runtime::task<std::vector<metadata::decision>> create_topics(std::vector<metadata::topic_spec> specs,
                                                               bool validate_only);
  runtime::task<std::vector<metadata::decision>> delete_topics(std::vector<std::string> names);
  // A controller decision of any kind: `plan` runs on shard 0 against the
  // current image and fills records; they are committed (unless
  // validate_only or there are none) and published before this returns.
  using controller_plan = std::function<metadata::decision(const metadata::image&, std::vector<metadata::record>&)>;
  runtime::task<metadata::decision> controller_write(controller_plan plan, bool validate_only);
  bool stopping() const { return stopping_.load(); }

  // Long-poll support. A fetch reads append_epoch() before reading, then waits
  // with that value: it returns at once if anything was appended since.
  uint64_t append_epoch() const { return append_epoch_.load(); }
  void notify_appended();  // on the appending shard, after an append
  runtime::task<void> wait_for_append(uint64_t seen_epoch, int64_t timeout_ms);

  // The group coordinator (its state lives on shard 0; callable from any shard).
  coordinator::group_service& groups() { return *groups_; }

 private:
  struct shard_state {
    metadata::image_ptr image;
    std::unique_ptr<partition_manager> partitions;
    runtime::notifier appended;
    std::atomic<bool> has_waiters{false};
  };

  runtime::task<void> publish(metadata::image_ptr img);
  runtime::task<void> accept_loop(runtime::listener* l);
  runtime::task<metadata::decision> commit(std::vector<metadata::record> records);

  broker_config config_;
  std::string cluster_id_;
  bool recover_;
  std::vector<std::unique_ptr<shard_state>> shards_;
  std::unique_ptr<metadata::quorum> quorum_;  // shard 0 only
  std::vector<std::unique_ptr<runtime::listener>> listeners_;
  std::vector<uint16_t> bound_ports_;
  std::atomic<uint64_t> append_epoch_{0};
  std::unique_ptr<coordinator::offsets_log> offsets_log_;
  std::unique_ptr<coordinator::group_service> groups_;
  size_t next_shard_ = 0;
  std::atomic<bool> stopping_{false};  // read by every shard's background loops
};

}  // namespace gregor::broker
