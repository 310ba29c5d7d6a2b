#pragma once
// Shared pieces of the `gregor` command-line tools (topics, console-producer,
// console-consumer, consumer-groups, configs, perf-producer, perf-consumer).
// Each tool registers a CLI11 subcommand; its callback stores the exit code.
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/result.h"

namespace gregor::cli {

// Registers the subcommands. `exit_code` receives the chosen tool's result.
void register_topics(CLI::App& app, int& exit_code);
void register_console_producer(CLI::App& app, int& exit_code);
void register_console_consumer(CLI::App& app, int& exit_code);
void register_consumer_groups(CLI::App& app, int& exit_code);
void register_configs(CLI::App& app, int& exit_code);
void register_perf_producer(CLI::App& app, int& exit_code);
void register_perf_consumer(CLI::App& app, int& exit_code);
void register_cluster_tools(CLI::App& app, int& exit_code);  // metadata-quorum, leader-election, storage

// Prints "gregor <tool>: <message>" on stderr and returns 1.
int fail(const std::string& tool, const std::string& message);

// "k=v" pairs (also "k1=v1,k2=v2" in one argument when `split_commas`).
result<std::map<std::string, std::string>> parse_pairs(const std::vector<std::string>& items, bool split_commas);
// A Java-style .properties file.
result<std::map<std::string, std::string>> read_properties_file(const std::string& path);

// SIGINT / SIGTERM set a flag instead of killing the tool, so it can flush,
// commit and print its summary.
void install_stop_signals();
bool stop_requested();

}  // namespace gregor::cli
