#pragma once
// The node: what every request handler reaches. By its process.roles it is
// a broker (partitions, clients, consumer groups), a controller (a voter of
// the metadata quorum, and the active controller when it leads it), or both;
// a node started without process.roles is both, and its own quorum of one.
//
// On shard 0 it runs the metadata quorum's driver, the loader that turns the
// committed metadata log into images, and (controller role) the controller.
// Every shard holds the latest image it was given and the partitions it
// owns. Metadata changes go to the active controller: here when it is this
// node, else through the controller channel (RPCs to the controller's
// listener; client requests travel there inside Envelopes).
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/config.h"
#include "broker/partition_manager.h"
#include "broker/replica_fetcher.h"
#include "coordinator/group_service.h"
#include "coordinator/transaction_service.h"
#include "metadata/controller.h"
#include "metadata/controller_service.h"
#include "metadata/image.h"
#include "metadata/loader.h"
#include "protocol/rpc_client.h"
#include "raft/driver.h"
#include "runtime/clock.h"
#include "runtime/net.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker_lifecycle;
class producer_id_manager;
class broker_txn_verifier;

// Which listener a connection came in on.
enum class listener_kind : uint8_t { broker = 1, controller = 2 };

class broker {
 public:
  broker(broker_config config, std::string cluster_id, bool recover);
  ~broker();

  // Runs on shard 0: opens the metadata quorum and starts its listeners; a
  // broker then registers with the active controller, catches up with the
  // metadata log and only then opens its client listeners.
  runtime::task<result<void>> start();
  // Stops. With `controlled` (SIGTERM), a broker first asks the controller to
  // move its leaderships away and waits until it may go (bounded).
  runtime::task<void> shutdown(bool controlled = false);

  const broker_config& config() const { return config_; }
  const std::string& cluster_id() const { return cluster_id_; }
  size_t shard_count() const { return shards_.size(); }
  // Ports actually bound, per listener (after start), in config order.
  const std::vector<uint16_t>& bound_ports() const { return bound_ports_; }
  bool is_broker() const { return config_.is_broker; }
  bool is_controller() const { return config_.is_controller; }

  // This shard's view.
  metadata::image_ptr image() const;
  partition_manager& partitions();

  // ---- shard 0: the quorum and the controller
  raft::driver& quorum() { return *quorum_; }
  // Null until start() has opened the quorum.
  raft::driver* quorum_if_open() { return quorum_.get(); }
  metadata::loader* loader_if_open() { return loader_.get(); }
  metadata::loader& metadata_loader() { return *loader_; }
  // The active controller, if this node runs one (controller role).
  metadata::controller_service* controller() { return controller_.get(); }
  bool is_active_controller() const;
  // The node that leads the metadata quorum, -1 if unknown.
  int32_t active_controller_id() const;
  broker_lifecycle* lifecycle() { return lifecycle_.get(); }

  // Metadata changes. Any shard; they run on shard 0. Here if this node is
  // the active controller, else sent to it.
  runtime::task<std::vector<metadata::decision>> create_topics(std::vector<metadata::topic_spec> specs,
                                                               bool validate_only);
  runtime::task<std::vector<metadata::decision>> delete_topics(std::vector<std::string> names);
  // A decision of the active controller, which must be this node (handlers of
  // requests that reach the controller, directly or forwarded): `plan` runs
  // against the current image; its records are committed (unless
  // validate_only or there are none) and this node's shards have the
  // resulting image before this returns. NOT_CONTROLLER elsewhere.
  using controller_plan = std::function<metadata::decision(const metadata::image&, std::vector<metadata::record>&)>;
  runtime::task<metadata::decision> controller_write(controller_plan plan, bool validate_only);
  // The same with the offset the first record will get (broker epochs).
  runtime::task<metadata::decision> controller_write_at(metadata::controller_service::plan_fn plan,
                                                        bool validate_only);

  // Sends a request to the active controller's listener and returns its
  // response, retrying while there is no controller or it moves (until
  // timeout_ms). Shard 0.
  template <class Resp, class Req>
  runtime::task<result<Resp>> call_controller(const Req& req, int16_t version, int64_t timeout_ms) {
    iobuf body;
    protocol::wire_writer w(body);
    req.encode(w, version);
    auto raw = co_await call_controller_raw(Req::api_key, version, std::move(body), timeout_ms);
    if (!raw) co_return raw.err();
    Resp resp;
    protocol::wire_reader r(raw.value());
    if (!resp.decode(r, version) || !r.ok()) co_return error{"malformed response from the active controller"};
    co_return resp;
  }
  // The raw form: a request frame body in, the response body out.
  runtime::task<result<bytes>> call_controller_raw(int16_t api_key, int16_t version, iobuf body, int64_t timeout_ms);

  bool stopping() const { return stopping_.load(); }

  // Long-poll support, for two kinds of event: records appended to a log
  // here (what a follower's fetch waits for) and a high watermark that moved
  // (what consumers and acks=all produces wait for; a leadership change counts
  // as both). A waiter reads event_epoch() before it looks, then waits with
  // that value: it returns at once if such an event happened since. Waking
  // only the waiters of that kind keeps a replicated append from waking every
  // parked fetch and produce of the broker twice.
  enum class event : uint8_t { appended = 0, high_watermark = 1 };
  uint64_t event_epoch(event e) const { return events_[static_cast<size_t>(e)].load(); }
  void notify(event e);  // on the shard where it happened
  runtime::task<void> wait_for(event e, uint64_t seen_epoch, int64_t timeout_ms);

  // The group coordinator (its state lives on shard 0; callable from any shard).
  coordinator::group_service& groups() { return *groups_; }
  // Producer ids for InitProducerId. Shard 0.
  producer_id_manager& producer_ids() { return *producer_ids_; }
  // The transaction coordinator (its state lives on shard 0; callable from any shard).
  coordinator::transaction_service& transactions() { return *transactions_; }
  // On the transaction coordinator's home shard only (its connections live there).
  broker_txn_verifier& txn_verifier() { return *txn_verifier_; }

 private:
  struct shard_state {
    metadata::image_ptr image;
    std::unique_ptr<partition_manager> partitions;
    std::unique_ptr<replica_fetchers> fetchers;
    runtime::notifier wake[2];              // by event
    std::atomic<bool> has_waiters[2] = {};  // by event
  };

  runtime::task<void> publish(metadata::image_ptr img);
  runtime::task<void> accept_loop(runtime::listener* l, listener_kind kind, std::string name);
  runtime::task<void> metadata_loop();
  runtime::task<void> wait_until_published(int64_t offset, int64_t timeout_ms);
  result<void> bind(const std::vector<listener_endpoint>& endpoints, listener_kind kind);
  protocol::rpc_client* controller_client();
  metadata::image_ptr with_controller_id(metadata::image_ptr img) const;

  broker_config config_;
  std::string cluster_id_;
  bool recover_;
  std::vector<std::unique_ptr<shard_state>> shards_;
  // Shard 0.
  std::unique_ptr<raft::driver> quorum_;
  std::unique_ptr<metadata::loader> loader_;
  std::unique_ptr<metadata::controller_service> controller_;
  std::unique_ptr<broker_lifecycle> lifecycle_;
  std::map<int32_t, std::unique_ptr<protocol::rpc_client>> controller_clients_;
  metadata::image_ptr published_;  // the latest image given to the shards
  int64_t published_offset_ = -1;
  bool may_publish_ = false;       // a broker's image is complete (it caught up with its registration)
  runtime::notifier published_changed_;
  std::vector<std::unique_ptr<runtime::listener>> listeners_;
  std::vector<uint16_t> bound_ports_;
  std::atomic<uint64_t> events_[2] = {};  // by event
  std::unique_ptr<coordinator::offsets_log> offsets_log_;
  std::unique_ptr<coordinator::group_service> groups_;
  std::unique_ptr<producer_id_manager> producer_ids_;
  std::unique_ptr<coordinator::offsets_log> txn_log_;
  std::unique_ptr<coordinator::txn_marker_sender> txn_markers_;
  std::unique_ptr<coordinator::transaction_service> transactions_;
  std::unique_ptr<broker_txn_verifier> txn_verifier_;
  size_t next_shard_ = 0;
  std::atomic<bool> stopping_{false};  // read by every shard's background loops
  friend class broker_lifecycle;
};

}  // namespace gregor::broker
