// gregor perf-producer / perf-consumer: kafka-producer-perf-test.sh and
// kafka-consumer-perf-test.sh, with the same progress lines and summaries.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "app/cli_common.h"
#include "client/consumer.h"
#include "client/producer.h"

namespace gregor::cli {

namespace {

struct perf_producer_opts {
  std::string bootstrap;
  std::string topic;
  int64_t num_records = 0;
  int32_t record_size = 100;
  double throughput = -1;
  std::vector<std::string> producer_props;
  std::string producer_config;
  int64_t reporting_interval_ms = 5000;
  // Kafka's ProducerPerformance: with a transactional id the records go in
  // transactions, each committed after transaction_duration_ms.
  std::string transactional_id;
  int64_t transaction_duration_ms = 100;
};

// Kafka's ProducerPerformance.Stats, trimmed.
class stats {
 public:
  stats(int64_t num_records, int64_t interval_ms) : interval_ms_(interval_ms) {
    start_ = window_start_ = client::sys::monotonic_ms();
    latencies_.reserve(static_cast<size_t>(std::min<int64_t>(num_records, 1 << 22)));
    sample_every_ = std::max<int64_t>(1, num_records / (1 << 22));
  }
  void record(int64_t latency_ms, int64_t bytes) {
    std::lock_guard g(mu_);
    ++count_;
    bytes_ += bytes;
    total_latency_ += latency_ms;
    max_latency_ = std::max(max_latency_, latency_ms);
    ++w_count_;
    w_bytes_ += bytes;
    w_total_latency_ += latency_ms;
    w_max_latency_ = std::max(w_max_latency_, latency_ms);
    if (count_ % sample_every_ == 0) latencies_.push_back(static_cast<int32_t>(latency_ms));
    const int64_t now = client::sys::monotonic_ms();
    if (now - window_start_ >= interval_ms_) {
      print_window(now);
      window_start_ = now;
      w_count_ = w_bytes_ = w_total_latency_ = w_max_latency_ = 0;
    }
  }
  void print_total() {
    std::lock_guard g(mu_);
    const double elapsed = std::max<int64_t>(1, client::sys::monotonic_ms() - start_) / 1000.0;
    const double rps = count_ / elapsed;
    const double mbps = bytes_ / elapsed / (1024.0 * 1024.0);
    std::sort(latencies_.begin(), latencies_.end());
    auto pct = [&](double p) {
      if (latencies_.empty()) return 0;
      return latencies_[std::min(latencies_.size() - 1, static_cast<size_t>(p * latencies_.size()))];
    };
    std::printf(
        "%lld records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, %d ms 50th, "
        "%d ms 95th, %d ms 99th, %d ms 99.9th.\n",
        static_cast<long long>(count_), rps, mbps, count_ ? static_cast<double>(total_latency_) / count_ : 0.0,
        static_cast<double>(max_latency_), pct(0.5), pct(0.95), pct(0.99), pct(0.999));
    std::fflush(stdout);
  }

 private:
  void print_window(int64_t now) {
    const double elapsed = std::max<int64_t>(1, now - window_start_) / 1000.0;
    std::printf("%lld records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.\n",
                static_cast<long long>(w_count_), w_count_ / elapsed, w_bytes_ / elapsed / (1024.0 * 1024.0),
                w_count_ ? static_cast<double>(w_total_latency_) / w_count_ : 0.0,
                static_cast<double>(w_max_latency_));
    std::fflush(stdout);
  }
  std::mutex mu_;
  int64_t interval_ms_;
  int64_t start_, window_start_;
  int64_t count_ = 0, bytes_ = 0, total_latency_ = 0, max_latency_ = 0;
  int64_t w_count_ = 0, w_bytes_ = 0, w_total_latency_ = 0, w_max_latency_ = 0;
  int64_t sample_every_ = 1;
  std::vector<int32_t> latencies_;
};

int run_perf_producer(const perf_producer_opts& o) {
  const char* tool = "perf-producer";
  install_stop_signals();
  if (o.num_records <= 0) return fail(tool, "--num-records must be positive");
  if (o.record_size <= 0) return fail(tool, "--record-size must be positive");
  client::producer_config cfg;
  cfg.client_id = "perf-producer";
  std::map<std::string, std::string> pp;
  if (!o.producer_config.empty()) {
    auto f = read_properties_file(o.producer_config);
    if (!f) return fail(tool, f.err().message);
    pp = f.value();
  }
  auto cmd = parse_pairs(o.producer_props, false);
  if (!cmd) return fail(tool, cmd.err().message);
  for (auto& [k, v] : cmd.value()) pp[k] = v;
  if (!o.bootstrap.empty()) pp["bootstrap.servers"] = o.bootstrap;
  if (!pp.count("bootstrap.servers")) return fail(tool, "--bootstrap-server (or --producer-props bootstrap.servers=) is required");
  for (auto& [k, v] : pp)
    if (auto r = cfg.set(k, v); !r) return fail(tool, r.err().message);
  if (!pp.count("max.block.ms")) cfg.max_block_ms = 10000;
  if (!o.transactional_id.empty()) cfg.transactional_id = o.transactional_id;
  const bool transactional = cfg.transactional_id.has_value();
  if (transactional && o.transaction_duration_ms <= 0) return fail(tool, "--transaction-duration-ms must be positive");
  if (auto r = cfg.validate(); !r) return fail(tool, r.err().message);

  client::producer producer(cfg);
  if (auto parts = producer.partitions_for(o.topic); !parts) return fail(tool, parts.err().message);
  int64_t txn_started_ms = 0;
  if (transactional) {
    if (auto r = producer.init_transactions(); !r) return fail(tool, r.err().message);
    if (auto r = producer.begin_transaction(); !r) return fail(tool, r.err().message);
    txn_started_ms = client::sys::monotonic_ms();
  }
  std::string txn_error;
  // Kafka's payload: random uppercase letters.
  bytes payload(static_cast<size_t>(o.record_size));
  for (auto& b : payload) b = static_cast<uint8_t>('A' + client::sys::random_below(26));
  stats st(o.num_records, o.reporting_interval_ms);
  std::atomic<int64_t> failed{0};
  std::atomic<bool> printed{false};
  const int64_t start = client::sys::monotonic_ms();
  for (int64_t i = 0; i < o.num_records && !stop_requested(); ++i) {
    const int64_t sent_at = client::sys::monotonic_ms();
    client::producer_record r;
    r.topic = o.topic;
    r.value = payload;
    producer.send(std::move(r), [&, sent_at](const client::record_metadata& md) {
      if (!md.ok()) {
        ++failed;
        if (!printed.exchange(true)) std::fprintf(stderr, "gregor %s: %s\n", tool, md.describe_error().c_str());
        return;
      }
      st.record(client::sys::monotonic_ms() - sent_at, o.record_size);
    });
    if (o.throughput > 0) {
      // Throttle: never ahead of i / throughput seconds.
      const int64_t due = start + static_cast<int64_t>((i + 1) * 1000.0 / o.throughput);
      const int64_t now = client::sys::monotonic_ms();
      if (due > now) client::sys::sleep_ms(due - now);
    }
    if (failed > 0) break;
    if (transactional && client::sys::monotonic_ms() - txn_started_ms >= o.transaction_duration_ms) {
      auto r = producer.commit_transaction();
      if (r) r = producer.begin_transaction();
      if (!r) {
        txn_error = r.err().message;
        break;
      }
      txn_started_ms = client::sys::monotonic_ms();
    }
  }
  if (transactional && txn_error.empty() && failed == 0) {
    if (auto r = producer.commit_transaction(); !r) txn_error = r.err().message;
  }
  if (!txn_error.empty()) std::fprintf(stderr, "gregor %s: transaction failed: %s\n", tool, txn_error.c_str());
  producer.close();
  // Whether the records went with a producer id (enable.idempotence).
  auto idem = producer.idempotence();
  if (idem.enabled && idem.producer_id >= 0)
    std::printf("Idempotence: on (producer id %lld, epoch %d).\n", static_cast<long long>(idem.producer_id),
                idem.producer_epoch);
  else if (idem.enabled)
    std::printf("Idempotence: on (no producer id obtained%s%s).\n", idem.note.empty() ? "" : ": ", idem.note.c_str());
  else
    std::printf("Idempotence: %s.\n", idem.note.empty() ? "off" : idem.note.c_str());
  if (transactional)
    std::printf("Transactions: %lld committed (transactional id %s, one every %lld ms)%s.\n",
                static_cast<long long>(producer.transactions_committed()), cfg.transactional_id->c_str(),
                static_cast<long long>(o.transaction_duration_ms), txn_error.empty() ? "" : ", the last one failed");
  st.print_total();
  return failed > 0 || !txn_error.empty() ? 1 : 0;
}

struct perf_consumer_opts {
  std::string bootstrap;
  std::string topic;
  int64_t messages = 0;
  std::string group = "perf-consumer-group";
  int64_t timeout_ms = 10000;
  std::vector<std::string> consumer_props;
  bool show_detailed_stats = false;
  int64_t reporting_interval_ms = 5000;
  bool print_header = true;
};

std::string format_time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}:{:03d}", buf, static_cast<int>(ms % 1000));
}

int run_perf_consumer(const perf_consumer_opts& o) {
  const char* tool = "perf-consumer";
  install_stop_signals();
  if (o.messages <= 0) return fail(tool, "--messages must be positive");
  client::consumer_config cfg;
  cfg.client_id = "perf-consumer";
  cfg.group_id = o.group;
  cfg.auto_offset_reset = "earliest";
  cfg.enable_auto_commit = true;
  cfg.request_timeout_ms = 15000;
  auto cmd = parse_pairs(o.consumer_props, false);
  if (!cmd) return fail(tool, cmd.err().message);
  std::map<std::string, std::string> cp = cmd.value();
  cp["bootstrap.servers"] = o.bootstrap;
  for (auto& [k, v] : cp)
    if (auto r = cfg.set(k, v); !r) return fail(tool, r.err().message);
  client::admin_config acfg;
  static_cast<client::common_config&>(acfg) = cfg;
  client::admin_client admin(acfg);
  auto d = admin.describe_topics({o.topic});
  if (!d) return fail(tool, d.err().message);
  if (d.value()[0].error_code != 0) return fail(tool, fmt::format("topic '{}' does not exist", o.topic));

  client::consumer consumer(cfg);
  const int64_t start_wall = client::sys::wall_clock_ms();
  const int64_t start = client::sys::monotonic_ms();
  int64_t join_done = -1;
  client::rebalance_listener l;
  l.on_partitions_assigned = [&](const std::vector<client::topic_partition>&) {
    if (join_done < 0) join_done = client::sys::monotonic_ms();
  };
  if (auto r = consumer.subscribe({o.topic}, l); !r) return fail(tool, r.err().message);
  int64_t count = 0, bytes_read = 0;
  int64_t last_record = client::sys::monotonic_ms();
  int rc = 0;
  while (count < o.messages && !stop_requested()) {
    auto recs = consumer.poll(100);
    if (!recs) {
      rc = fail(tool, recs.err().message);
      break;
    }
    if (recs.value().empty()) {
      if (client::sys::monotonic_ms() - last_record > o.timeout_ms) {
        std::fprintf(stderr, "WARNING: Exiting before consuming the expected number of messages: timeout (%lld ms) "
                             "exceeded.\n", static_cast<long long>(o.timeout_ms));
        break;
      }
      continue;
    }
    last_record = client::sys::monotonic_ms();
    for (auto& r : recs.value()) {
      ++count;
      bytes_read += (r.key ? static_cast<int64_t>(r.key->size()) : 0) + (r.value ? static_cast<int64_t>(r.value->size()) : 0);
    }
  }
  const int64_t end = client::sys::monotonic_ms();
  const int64_t end_wall = client::sys::wall_clock_ms();
  consumer.close();
  const double elapsed = std::max<int64_t>(1, end - start) / 1000.0;
  const double mb = bytes_read / (1024.0 * 1024.0);
  const int64_t rebalance_ms = join_done < 0 ? 0 : join_done - start;
  const double fetch_s = std::max<int64_t>(1, end - start - rebalance_ms) / 1000.0;
  if (o.print_header)
    std::printf("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n");
  std::printf("%s, %s, %.4f, %.4f, %lld, %.4f, %lld, %lld, %.4f, %.4f\n", format_time(start_wall).c_str(),
              format_time(end_wall).c_str(), mb, mb / elapsed, static_cast<long long>(count), count / elapsed,
              static_cast<long long>(rebalance_ms), static_cast<long long>(end - start - rebalance_ms), mb / fetch_s,
              count / fetch_s);
  return rc;
}

}  // namespace

void register_perf_producer(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<perf_producer_opts>();
  auto* sub = app.add_subcommand("perf-producer", "Producer throughput and latency (kafka-producer-perf-test)");
  sub->add_option("--bootstrap-server", o->bootstrap, "host:port of a broker");
  sub->add_option("--topic", o->topic, "Topic to produce to")->required();
  sub->add_option("--num-records", o->num_records, "Records to send")->required();
  sub->add_option("--record-size", o->record_size, "Bytes per record");
  sub->add_option("--throughput", o->throughput, "Records/sec cap (-1: none)")->required();
  sub->add_option("--producer-props", o->producer_props, "producer config k=v ...");
  sub->add_option("--producer.config", o->producer_config, "producer config file");
  sub->add_option("--reporting-interval", o->reporting_interval_ms, "Progress line every n ms");
  sub->add_option("--transactional-id", o->transactional_id,
                  "Produce in transactions with this transactional.id (also as --producer-props transactional.id=)");
  sub->add_option("--transaction-duration-ms", o->transaction_duration_ms,
                  "With a transactional id: commit every n ms (default 100)");
  sub->callback([o, &exit_code] { exit_code = run_perf_producer(*o); });
}

void register_perf_consumer(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<perf_consumer_opts>();
  auto* sub = app.add_subcommand("perf-consumer", "Consumer throughput (kafka-consumer-perf-test)");
  sub->add_option("--bootstrap-server", o->bootstrap, "host:port of a broker")->required();
  sub->add_option("--topic", o->topic, "Topic to read")->required();
  sub->add_option("--messages", o->messages, "Records to read")->required();
  sub->add_option("--group", o->group, "Consumer group");
  sub->add_option("--timeout", o->timeout_ms, "Give up after this many ms without records");
  sub->add_option("--consumer-props", o->consumer_props, "consumer config k=v ...");
  sub->callback([o, &exit_code] { exit_code = run_perf_consumer(*o); });
}

}  // namespace gregor::cli
