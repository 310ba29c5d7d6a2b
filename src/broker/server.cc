#include "broker/server.h"

#include <algorithm>

#include "base/log.h"
#include "broker/meta_properties.h"
#include "runtime/engine.h"
#include "runtime/file.h"
#include "runtime/process.h"
#include "storage/log_manager.h"

namespace gregor::broker {

node_process::node_process(broker_config config, std::string cluster_id, bool recover)
    : config_(std::move(config)), cluster_id_(std::move(cluster_id)),
      broker_(std::make_unique<broker>(config_, cluster_id_, recover)) {}

result<std::unique_ptr<node_process>> node_process::create(const broker_config& config) {
  auto lg = log::get("broker");
  // The metadata log's directory is formatted too when it is not one of the log dirs.
  auto dirs = config.log_dirs;
  if (!config.metadata_log_dir.empty() && std::find(dirs.begin(), dirs.end(), config.metadata_log_dir) == dirs.end())
    dirs.push_back(config.metadata_log_dir);
  for (auto& dir : dirs) {
    if (auto r = runtime::fs::create_directories(dir); !r) return r.err();
    if (auto r = runtime::fs::lock_exclusive(dir + "/.lock"); !r) return r.err();
  }
  bool first_start = true;
  for (auto& dir : dirs) first_start = first_start && !runtime::fs::exists(dir + "/meta.properties");
  if (first_start && config.roles_given && config.quorum_voters.empty() && config.cluster_id.empty())
    return error{"a broker that finds the quorum through controller.quorum.bootstrap.servers needs the cluster's id "
                 "on its first start: --override cluster.id=<id> (`gregor metadata-quorum --bootstrap-server "
                 "<broker> describe --status` shows it as ClusterId)"};
  auto cluster_id = ensure_formatted(dirs, config.node_id, wanted_cluster_id(config));
  if (!cluster_id) return cluster_id.err();
  // A clean shutdown left a marker in every log dir: then recovery is skipped.
  bool clean = true;
  for (auto& dir : config.log_dirs) {
    auto had = storage::consume_clean_shutdown_marker(dir);
    if (!had) return had.err();
    clean = clean && had.value();
  }
  if (first_start) clean = true;  // nothing to recover in a directory formatted just now
  lg->info("starting Gregor node {} of cluster {} ({})", config.node_id, cluster_id.value(),
           first_start ? "first start" : clean ? "clean shutdown last time" : "unclean shutdown last time: recovering logs");
  return std::unique_ptr<node_process>(new node_process(config, cluster_id.value(), !clean));
}

void node_process::start(std::function<void(const std::string&)> on_failure) {
  runtime::spawn(0, [this, on_failure = std::move(on_failure)]() -> runtime::task<void> {
    auto started = co_await broker_->start();
    if (!started) {
      log::get("broker")->error("cannot start: {}", started.err().message);
      co_await broker_->shutdown();
      on_failure(started.err().message);
      co_return;
    }
    started_ = true;
    log::get("broker")->info("Gregor started: node {} with {} shards, data in {}", config_.node_id,
                             broker_->shard_count(), config_.log_dirs.front());
  });
}

runtime::task<void> node_process::stop(bool controlled) {
  co_await broker_->shutdown(controlled);
  for (auto& dir : config_.log_dirs)
    if (auto r = storage::write_clean_shutdown_marker(dir); !r)
      log::get("broker")->error("cannot write the clean shutdown marker: {}", r.err().message);
  log::get("broker")->info("shut down cleanly");
}

int run_server(const broker_config& config) {
  log::set_level(config.log_level);
  auto lg = log::get("broker");
  size_t shards = config.num_shards > 0 ? static_cast<size_t>(config.num_shards) : runtime::default_shard_count();
  runtime::engine engine(shards);
  // Set-up below (formatting, the node's constructor, the signal handler)
  // runs on this thread, which becomes shard 0 when the engine runs.
  runtime::scoped_current on_engine(&engine, 0);
  auto process = node_process::create(config);
  if (!process) {
    lg->error("cannot start: {}", process.err().message);
    return 1;
  }
  auto& p = *process.value();
  int exit_code = 0;
  runtime::on_shutdown_signal([&] {
    lg->info("shutting down");
    engine.spawn(0, [&]() -> runtime::task<void> {
      co_await p.stop(/*controlled=*/true);
      engine.stop();
    });
  });
  engine.spawn(0, [&]() -> runtime::task<void> {
    p.start([&](const std::string&) {
      exit_code = 1;
      engine.stop();
    });
    co_return;
  });
  engine.run();
  return exit_code;
}

}  // namespace gregor::broker
