#include "broker/server.h"

#include <algorithm>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/meta_properties.h"
#include "runtime/engine.h"
#include "runtime/file.h"
#include "runtime/process.h"
#include "storage/log_manager.h"

namespace gregor::broker {

int run_server(const broker_config& config) {
  log::set_level(config.log_level);
  auto lg = log::get("broker");
  for (auto& dir : config.log_dirs) {
    if (auto r = runtime::fs::create_directories(dir); !r) {
      lg->error("{}", r.err().message);
      return 1;
    }
    if (auto r = runtime::fs::lock_exclusive(dir + "/.lock"); !r) {
      lg->error("{}", r.err().message);
      return 1;
    }
  }
  // The metadata log's directory is formatted too when it is not one of the log dirs.
  auto dirs = config.log_dirs;
  if (!config.metadata_log_dir.empty() && std::find(dirs.begin(), dirs.end(), config.metadata_log_dir) == dirs.end())
    dirs.push_back(config.metadata_log_dir);
  bool first_start = true;
  for (auto& dir : dirs) first_start = first_start && !runtime::fs::exists(dir + "/meta.properties");
  auto cluster_id = ensure_formatted(dirs, config.node_id, wanted_cluster_id(config));
  if (!cluster_id) {
    lg->error("cannot start: {}", cluster_id.err().message);
    return 1;
  }
  // A clean shutdown left a marker in every log dir: then recovery is skipped.
  bool clean = true;
  for (auto& dir : config.log_dirs) {
    auto had = storage::consume_clean_shutdown_marker(dir);
    if (!had) {
      lg->error("cannot start: {}", had.err().message);
      return 1;
    }
    clean = clean && had.value();
  }
  if (first_start) clean = true;  // nothing to recover in a directory formatted just now
  lg->info("starting Gregor node {} of cluster {} ({})", config.node_id, cluster_id.value(),
           first_start ? "first start" : clean ? "clean shutdown last time" : "unclean shutdown last time: recovering logs");

  size_t shards = config.num_shards > 0 ? static_cast<size_t>(config.num_shards) : runtime::default_shard_count();
  runtime::engine engine(shards);
  // Set-up below (the broker's constructor, the signal handler) runs on
  // this thread, which becomes shard 0 when the engine runs.
  runtime::scoped_current on_engine(&engine, 0);
  broker b(config, cluster_id.value(), !clean);
  int exit_code = 0;

  runtime::on_shutdown_signal([&] {
    lg->info("shutting down");
    engine.spawn(0, [&]() -> runtime::task<void> {
      co_await b.shutdown(/*controlled=*/true);
      for (auto& dir : config.log_dirs)
        if (auto r = storage::write_clean_shutdown_marker(dir); !r)
          lg->error("cannot write the clean shutdown marker: {}", r.err().message);
      lg->info("shut down cleanly");
      engine.stop();
    });
  });
  engine.spawn(0, [&]() -> runtime::task<void> {
    auto started = co_await b.start();
    if (!started) {
      lg->error("cannot start: {}", started.err().message);
      exit_code = 1;
      co_await b.shutdown();
      engine.stop();
      co_return;
    }
    lg->info("Gregor started: node {} with {} shards, data in {}", config.node_id, shards, config.log_dirs.front());
  });
  engine.run();
  return exit_code;
}

}  // namespace gregor::broker
