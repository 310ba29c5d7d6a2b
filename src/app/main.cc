// The gregor binary. `gregor server` runs a broker; later subcommands are the
// command-line tools.
#include <cstdio>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include "app/cli_common.h"
#include "broker/config.h"
#include "broker/server.h"
#include "runtime/file.h"
#include "runtime/process.h"

namespace {

// Descriptors a broker needs besides segment files: client and replication
// sockets, checkpoint files, the data directory lock, the event loop's own.
constexpr uint64_t kOpenFilesForSockets = 1024;

// Bounds the segment files held open, and refuses to start when the process
// may not open that many plus sockets: better one clear line now than
// "Too many open files" under load. 0 on success.
int check_open_files(const gregor::broker::broker_config& config) {
  const auto bound = static_cast<uint64_t>(config.log_max_open_files);
  gregor::runtime::set_max_open_files(bound);
  if (bound == 0) return 0;  // unbounded: the need depends on the partitions
  const uint64_t limit = gregor::runtime::raise_open_files_limit();
  const uint64_t need = bound + kOpenFilesForSockets;
  if (limit >= need) return 0;
  // Lowering the bound helps only while the limit leaves room beyond the sockets' share.
  std::string lower = limit > kOpenFilesForSockets
                          ? " or lower log.max.open.files to at most " + std::to_string(limit - kOpenFilesForSockets)
                          : std::string();
  std::fprintf(stderr,
               "gregor: the open-files limit is %llu but the broker needs %llu (log.max.open.files=%llu plus %llu "
               "for sockets); raise it (ulimit -n %llu)%s\n",
               static_cast<unsigned long long>(limit), static_cast<unsigned long long>(need),
               static_cast<unsigned long long>(bound), static_cast<unsigned long long>(kOpenFilesForSockets),
               static_cast<unsigned long long>(need), lower.c_str());
  return 2;
}

int server_main(const std::string& config_file, const std::vector<std::string>& overrides) {
  using namespace gregor;
  std::map<std::string, std::string> props;
  if (!config_file.empty()) {
    auto text = runtime::fs::read_file(config_file);
    if (!text) {
      std::fprintf(stderr, "gregor: cannot read config file: %s\n", text.err().message.c_str());
      return 2;
    }
    auto parsed = broker::parse_properties(text.value());
    if (!parsed) {
      std::fprintf(stderr, "gregor: %s: %s\n", config_file.c_str(), parsed.err().message.c_str());
      return 2;
    }
    props = parsed.value();
  }
  for (auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "gregor: --override expects key=value, got '%s'\n", o.c_str());
      return 2;
    }
    props[o.substr(0, eq)] = o.substr(eq + 1);
  }
  std::vector<std::string> warnings;
  auto config = broker::make_broker_config(props, &warnings);
  if (!config) {
    std::fprintf(stderr, "gregor: invalid configuration: %s\n", config.err().message.c_str());
    return 2;
  }
  for (auto& w : warnings) std::fprintf(stderr, "gregor: warning: %s\n", w.c_str());
  if (int rc = check_open_files(config.value()); rc != 0) return rc;
  return broker::run_server(config.value());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Gregor: a Kafka-compatible streaming platform"};
  app.require_subcommand(1);

  auto* server = app.add_subcommand("server", "Run a broker");
  std::string config_file;
  std::vector<std::string> overrides;
  server->add_option("--config,-c", config_file, "server.properties file (Kafka's keys)")->check(CLI::ExistingFile);
  server->add_option("--override", overrides, "key=value, overriding the config file (repeatable)");

  // The command-line tools (Kafka's names and flags): each callback runs its
  // tool and stores the exit code.
  int tool_exit_code = 0;
  gregor::cli::register_topics(app, tool_exit_code);
  gregor::cli::register_console_producer(app, tool_exit_code);
  gregor::cli::register_console_consumer(app, tool_exit_code);
  gregor::cli::register_consumer_groups(app, tool_exit_code);
  gregor::cli::register_configs(app, tool_exit_code);
  gregor::cli::register_perf_producer(app, tool_exit_code);
  gregor::cli::register_perf_consumer(app, tool_exit_code);
  gregor::cli::register_cluster_tools(app, tool_exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // A bad flag: one line, and a non-zero exit.
    std::fprintf(stderr, "gregor: %s (see gregor --help)\n", e.what());
    return e.get_exit_code() != 0 ? e.get_exit_code() : 2;
  }
  if (server->parsed()) return server_main(config_file, overrides);
  return tool_exit_code;
}
