#pragma once
// `gregor server`: a node's process. node_process does what any process of a
// node does on whatever backend runs it — check and format the data
// directories, start the node, stop it — so that a simulation runs exactly
// what production runs; run_server adds the production engine and signals.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "broker/broker.h"
#include "broker/config.h"
#include "runtime/task.h"

namespace gregor::broker {

class node_process {
 public:
  // On the calling thread's backend: locks and formats the data dirs and
  // builds the node (nothing runs yet). An error names what is wrong.
  static result<std::unique_ptr<node_process>> create(const broker_config& config);

  // Starts the node on shard 0. on_failure runs if it cannot start (the
  // process should end).
  void start(std::function<void(const std::string&)> on_failure);
  // Stops (controlled: leaderships move away first) and leaves the clean
  // shutdown marker, so the next start skips log recovery.
  runtime::task<void> stop(bool controlled);

  broker& node() { return *broker_; }
  bool started() const { return started_; }
  const std::string& cluster_id() const { return cluster_id_; }

 private:
  node_process(broker_config config, std::string cluster_id, bool recover);
  broker_config config_;
  std::string cluster_id_;
  std::unique_ptr<broker> broker_;
  bool started_ = false;
};

// Runs until a shutdown signal; returns the process exit code.
int run_server(const broker_config& config);

}  // namespace gregor::broker
