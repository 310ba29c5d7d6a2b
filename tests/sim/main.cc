// gregor-sim: runs the cluster simulation for one seed or many, prints a line
// per failure with the command that replays it, and a summary.
//
//   gregor-sim --seed 42 --log-level debug      one seed, with the nodes' logs
//   gregor-sim --seeds 1-1000                   a campaign (progress every 10 s)
#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cluster_sim.h"

int main(int argc, char** argv) {
  CLI::App app{"Gregor's deterministic cluster simulation"};
  gregor::sim::options o;
  std::string seeds;
  bool no_faults = false;
  bool no_data = false;
  bool no_idempotence = false;
  bool no_transactions = false;
  bool keep_going = false;
  app.add_option("--seed", o.seed, "The seed to run");
  app.add_option("--seeds", seeds, "A range of seeds to run, as FIRST-LAST");
  app.add_option("--voters", o.voters, "Broker+controller nodes (3 or 5)")->check(CLI::Range(1, 7));
  app.add_option("--brokers", o.brokers, "Broker-only nodes")->check(CLI::Range(0, 5));
  app.add_option("--fault-ms", o.fault_ms, "Virtual milliseconds of faults and workload");
  app.add_option("--heal-ms", o.heal_ms, "Virtual milliseconds allowed to recover");
  app.add_option("--log-level", o.log_level, "Nodes' log level (off, info, debug, ...)");
  app.add_flag("--no-faults", no_faults, "Workload only");
  app.add_flag("--no-data", no_data, "Metadata workload only: no data topic, producers or consumer");
  app.add_flag("--no-idempotence", no_idempotence,
               "Plain producers: no producer id, no retries (one attempt per record)");
  app.add_flag("--no-transactions", no_transactions, "No transactional producer");
  app.add_flag("--keep-going", keep_going, "Run every seed of a range even after failures");
  CLI11_PARSE(app, argc, argv);
  o.faults = !no_faults;
  o.data = !no_data;
  o.idempotence = !no_idempotence;
  o.transactions = !no_transactions;

  uint64_t first = o.seed, last = o.seed;
  if (!seeds.empty()) {
    auto dash = seeds.find('-');
    if (dash == std::string::npos) {
      std::fprintf(stderr, "gregor-sim: --seeds expects FIRST-LAST, got '%s'\n", seeds.c_str());
      return 2;
    }
    first = std::stoull(seeds.substr(0, dash));
    last = std::stoull(seeds.substr(dash + 1));
  }
  auto started = std::chrono::steady_clock::now();
  auto last_report = started;
  uint64_t ran = 0, failed = 0;
  long long acked = 0, attempts = 0, consumed = 0, retries = 0, acked_on_retry = 0;
  long long txns_committed = 0, txns_aborted = 0, txns_empty = 0;
  for (uint64_t seed = first; seed <= last; ++seed) {
    o.seed = seed;
    auto r = gregor::sim::run(o);
    ++ran;
    acked += r.records_acked;
    attempts += r.produce_attempts;
    consumed += r.records_consumed;
    retries += r.produce_retries;
    acked_on_retry += r.acked_on_retry;
    txns_committed += r.txns_committed;
    txns_aborted += r.txns_aborted;
    txns_empty += r.txns_empty;
    if (!r.ok) {
      ++failed;
      std::printf("FAIL seed %llu: %s\n  replay: %s\n", static_cast<unsigned long long>(seed), r.failure.c_str(),
                  gregor::sim::replay_command(o).c_str());
      std::fflush(stdout);
      if (!keep_going) break;
    } else if (first == last) {
      std::printf("ok seed %llu: %llu steps, %lld ms virtual, %d crashes, %d partitions, epoch %d, %d topics, "
                  "committed offset %lld; data: %lld of %lld batches acknowledged (%lld on a retry; %lld retries), "
                  "%lld read, leader epoch %d; transactions: %d committed, %d aborted, %d empty\n",
                  static_cast<unsigned long long>(seed), static_cast<unsigned long long>(r.steps),
                  static_cast<long long>(r.virtual_ms), r.crashes, r.partitions, r.max_epoch, r.topics_acked,
                  static_cast<long long>(r.committed_offset), static_cast<long long>(r.records_acked),
                  static_cast<long long>(r.produce_attempts), static_cast<long long>(r.acked_on_retry),
                  static_cast<long long>(r.produce_retries), static_cast<long long>(r.records_consumed),
                  r.max_data_epoch, r.txns_committed, r.txns_aborted, r.txns_empty);
    }
    auto now = std::chrono::steady_clock::now();
    if (now - last_report > std::chrono::seconds(10)) {
      last_report = now;
      std::printf("... %llu seeds run (up to %llu), %llu failed, %lld s\n", static_cast<unsigned long long>(ran),
                  static_cast<unsigned long long>(seed), static_cast<unsigned long long>(failed),
                  static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(now - started).count()));
      std::fflush(stdout);
    }
  }
  if (o.data)
    std::printf("data: %lld of %lld batches acknowledged (%lld on a retry; %lld retries), %lld records read by the "
                "consumer\n",
                acked, attempts, acked_on_retry, retries, consumed);
  if (o.data && o.transactions)
    std::printf("transactions: %lld committed, %lld aborted, %lld with no record in the log\n", txns_committed,
                txns_aborted, txns_empty);
  std::printf("%llu seeds, %llu failed, in %lld s\n", static_cast<unsigned long long>(ran),
              static_cast<unsigned long long>(failed),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count()));
  return failed == 0 ? 0 : 1;
}
