// gregor-loadgen: a bounded load generator on librdkafka's C API.
//
// Modes:
//   produce-throughput  produce --count records of --record-bytes as fast as the client can,
//                       report msgs/s and MB/s from the first produce() to the last
//                       delivery report. With --transaction-ms and -X transactional.id=ID
//                       the records go in transactions, each committed after that long.
//   produce-latency     produce at a fixed --rate (msgs/s) for --duration-s (or --count
//                       records) after --warmup-s; per record latency from produce() to its
//                       delivery report; report p50/p99/p99.9/max. With --e2e a consumer in
//                       the same process (long-polling: fetch.min.bytes=1, fetch.wait.max.ms
//                       500, Kafka's default) reads every partition from its end, and each
//                       record's end-to-end latency (produce() to the consumer's poll
//                       returning it) is reported too (e2e_p50_ms ...).
//   consume-throughput  start every partition of the topic at the beginning and read until
//                       every partition reports end of partition (or --count records);
//                       report MB/s and msgs/s.
//
// Every mode stops by count and by --timeout-s, whichever comes first. One JSON line with
// the results goes to stdout; progress and librdkafka's own log lines go to stderr.
// MB means 10^6 bytes of record values (keys are empty, headers absent).
//
// The consumer uses librdkafka's legacy (simple) consumer API so that it needs no group
// coordinator: it is the "assign all partitions from the beginning" case without a group.

#include <librdkafka/rdkafka.h>

#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "json_line.h"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             clock_type::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------
// Options

struct options {
  std::string mode;
  std::string bootstrap;
  std::string topic;
  int partitions = 0;  // 0: whatever the topic has
  bool create_topic = false;
  size_t record_bytes = 100;
  int64_t count = 0;
  std::string acks = "1";
  int linger_ms = -1;    // -1: mode default
  int batch_bytes = -1;  // -1: librdkafka default
  double rate = 0;
  double duration_s = 0;  // 0: latency 5 s, throughput unbounded by time
  double warmup_s = 0.5;
  int tick_us = 50;
  int passes = 2;  // consume-throughput: reads of the topic, the last one measured
  int consumers = 1;  // consume-throughput: clients reading the topic side by side
  int64_t spread = 0;  // produce-throughput: >0 sends runs of this many records per partition
  int transaction_ms = 0;  // produce-throughput: >0 commits a transaction this often
  double timeout_s = 120;
  std::string label;
  std::string dump_latencies;  // produce-latency: write "seq send_ms latency_ms" lines here
  bool e2e = false;  // produce-latency: also measure produce() -> consumer poll
  std::vector<std::pair<std::string, std::string>> extra;  // -X key=value
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(
      stderr,
      "gregor-loadgen: %s\n"
      "usage: gregor-loadgen MODE --bootstrap HOST:PORT --topic NAME [options]\n"
      "  MODE: produce-throughput | produce-latency | consume-throughput\n"
      "  --partitions P       partitions to ask for with --create-topic\n"
      "  --create-topic       create the topic with CreateTopics first (errors ignored)\n"
      "  --record-bytes S     record value size (default 100)\n"
      "  --count N            records to produce / to read (consume: optional)\n"
      "  --acks 0|1|all       producer acks (default 1)\n"
      "  --linger-ms L        producer linger.ms (default 5 throughput, 0 latency)\n"
      "  --batch-bytes B      producer batch.size (default: librdkafka's)\n"
      "  --rate R             produce-latency: records per second\n"
      "  --duration-s D       latency: measured seconds (default 5); throughput: stop\n"
      "                       producing after D seconds even if --count is not reached\n"
      "  --warmup-s W         produce-latency: unmeasured seconds first (default 0.5)\n"
      "  --tick-us U          produce-latency: shortest sleep of the pacer (default 50)\n"
      "  --spread RUN         produce-throughput: record i goes to partition\n"
      "                       (i / RUN) %% partitions, so partitions fill evenly\n"
      "                       (default: librdkafka's partitioner, no key)\n"
      "  --transaction-ms T   produce-throughput: transactions (needs -X transactional.id=),\n"
      "                       one committed every T ms, the last at the end\n"
      "  --passes N           consume-throughput: read the topic N times from the\n"
      "                       beginning, measure the last (default 2: one warm-up)\n"
      "  --consumers N        consume-throughput: N clients, each with its own\n"
      "                       connection, consumer i reading partitions p %% N == i\n"
      "                       (default 1)\n"
      "  --timeout-s T        hard stop (default 120)\n"
      "  --label TEXT         copied into the JSON output\n"
      "  --dump-latencies F   produce-latency: write every record's latency to file F\n"
      "  --e2e                produce-latency: also end-to-end latency, to a consumer's poll\n"
      "  -X key=value         any librdkafka configuration property\n",
      why.c_str());
  std::exit(64);
}

options parse_options(int argc, char** argv) {
  options o;
  if (argc < 2) usage("missing mode");
  o.mode = argv[1];
  if (o.mode == "-h" || o.mode == "--help") usage("help");
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--bootstrap") {
      o.bootstrap = value();
    } else if (arg == "--topic") {
      o.topic = value();
    } else if (arg == "--partitions") {
      o.partitions = std::atoi(value().c_str());
    } else if (arg == "--create-topic") {
      o.create_topic = true;
    } else if (arg == "--record-bytes") {
      o.record_bytes = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--count") {
      o.count = std::strtoll(value().c_str(), nullptr, 10);
    } else if (arg == "--acks") {
      o.acks = value();
    } else if (arg == "--linger-ms") {
      o.linger_ms = std::atoi(value().c_str());
    } else if (arg == "--batch-bytes") {
      o.batch_bytes = std::atoi(value().c_str());
    } else if (arg == "--rate") {
      o.rate = std::atof(value().c_str());
    } else if (arg == "--duration-s") {
      o.duration_s = std::atof(value().c_str());
    } else if (arg == "--spread") {
      o.spread = std::strtoll(value().c_str(), nullptr, 10);
    } else if (arg == "--transaction-ms") {
      o.transaction_ms = std::atoi(value().c_str());
    } else if (arg == "--passes") {
      o.passes = std::atoi(value().c_str());
    } else if (arg == "--consumers") {
      o.consumers = std::atoi(value().c_str());
    } else if (arg == "--tick-us") {
      o.tick_us = std::atoi(value().c_str());
    } else if (arg == "--warmup-s") {
      o.warmup_s = std::atof(value().c_str());
    } else if (arg == "--timeout-s") {
      o.timeout_s = std::atof(value().c_str());
    } else if (arg == "--e2e") {
      o.e2e = true;
    } else if (arg == "--dump-latencies") {
      o.dump_latencies = value();
    } else if (arg == "--label") {
      o.label = value();
    } else if (arg == "-X") {
      std::string kv = value();
      auto eq = kv.find('=');
      if (eq == std::string::npos) usage("-X needs key=value: " + kv);
      o.extra.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (o.mode != "produce-throughput" && o.mode != "produce-latency" &&
      o.mode != "consume-throughput")
    usage("unknown mode " + o.mode);
  if (o.bootstrap.empty()) usage("--bootstrap is required");
  if (o.topic.empty()) usage("--topic is required");
  if (o.acks == "-1") o.acks = "all";
  if (o.acks != "0" && o.acks != "1" && o.acks != "all") usage("--acks must be 0, 1 or all");
  if (o.timeout_s <= 0) usage("--timeout-s must be positive");
  if (o.passes < 1) usage("--passes must be >= 1");
  if (o.mode == "produce-throughput" && o.count <= 0) usage("produce-throughput needs --count");
  if (o.mode == "produce-latency" && o.rate <= 0) usage("produce-latency needs --rate");
  if (o.mode != "consume-throughput" && o.record_bytes == 0) usage("--record-bytes must be > 0");
  return o;
}

using bench::json_line;

// ---------------------------------------------------------------------------------------
// librdkafka plumbing

struct run_state {
  // produce
  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> delivery_errors{0};
  std::atomic<int64_t> last_delivery_ns{0};
  std::atomic<int> first_error{0};
  // produce-latency: send time per sequence number, latency per sequence number
  std::vector<int64_t> sent_ns;
  std::vector<int64_t> latency_ns;
  // client errors seen by the error callback
  std::atomic<int64_t> client_errors{0};
  // when librdkafka last said that every broker is down, and when we last made progress
  std::atomic<int64_t> all_down_ns{0};
  std::atomic<int64_t> progress_ns{0};
  // why a run stopped early: "timeout" or "brokers down"
  std::string stop_reason;
};

// True when the run must stop: past its hard deadline, or every broker has been down for
// 5 s with no progress since (a broker that died does not come back during a benchmark).
bool must_stop(run_state& st, clock_type::time_point deadline) {
  auto now = clock_type::now();
  if (now > deadline) {
    if (st.stop_reason.empty()) st.stop_reason = "timeout";
    return true;
  }
  int64_t down = st.all_down_ns.load(std::memory_order_relaxed);
  if (down > 0 && st.progress_ns.load(std::memory_order_relaxed) < down &&
      now_ns() - down > 5'000'000'000) {
    if (st.stop_reason.empty()) st.stop_reason = "brokers down";
    return true;
  }
  return false;
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<run_state*>(opaque);
  int64_t t = now_ns();
  if (m->err) {
    if (st->delivery_errors.fetch_add(1) == 0) {
      st->first_error = m->err;
      std::fprintf(stderr, "gregor-loadgen: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
    return;
  }
  if (!st->latency_ns.empty()) {
    auto seq = reinterpret_cast<uintptr_t>(m->_private);
    if (seq < st->latency_ns.size()) st->latency_ns[seq] = t - st->sent_ns[seq];
  }
  st->delivered.fetch_add(1, std::memory_order_relaxed);
  st->last_delivery_ns.store(t, std::memory_order_relaxed);
  st->progress_ns.store(t, std::memory_order_relaxed);
}

void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* st = static_cast<run_state*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) st->all_down_ns = now_ns();
  int64_t n = st->client_errors.fetch_add(1);
  if (n < 20) {
    std::fprintf(stderr, "gregor-loadgen: client error: %s: %s\n",
                 rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
  }
}

void set_conf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "gregor-loadgen: config %s=%s: %s\n", key.c_str(), value.c_str(),
                 errstr);
    std::exit(64);
  }
}

rd_kafka_t* make_client(const options& o, rd_kafka_type_t type, run_state* st,
                        const std::vector<std::pair<std::string, std::string>>& mode_conf) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  set_conf(conf, "bootstrap.servers", o.bootstrap);
  set_conf(conf, "client.id", "gregor-loadgen");
  set_conf(conf, "socket.nagle.disable", "true");
  for (const auto& [k, v] : mode_conf) set_conf(conf, k, v);
  for (const auto& [k, v] : o.extra) set_conf(conf, k, v);
  rd_kafka_conf_set_opaque(conf, st);
  rd_kafka_conf_set_error_cb(conf, on_error);
  if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
  if (!rk) {
    std::fprintf(stderr, "gregor-loadgen: rd_kafka_new: %s\n", errstr);
    std::exit(1);
  }
  return rk;
}

// Best effort CreateTopics; a broker without it, or an existing topic, is fine: the
// metadata wait below auto-creates or finds the topic.
void create_topic(rd_kafka_t* rk, const options& o) {
  if (o.partitions <= 0) return;
  char errstr[512];
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(o.topic.c_str(), o.partitions, 1, errstr, sizeof errstr);
  if (!nt) {
    std::fprintf(stderr, "gregor-loadgen: NewTopic: %s\n", errstr);
    return;
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(ao, 5000, errstr, sizeof errstr);
  rd_kafka_AdminOptions_set_request_timeout(ao, 8000, errstr, sizeof errstr);
  rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10000);
  if (!ev) {
    std::fprintf(stderr, "gregor-loadgen: CreateTopics: no answer (continuing)\n");
  } else if (rd_kafka_event_error(ev)) {
    std::fprintf(stderr, "gregor-loadgen: CreateTopics: %s (continuing)\n",
                 rd_kafka_event_error_string(ev));
  } else {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "gregor-loadgen: created topic %s with %d partitions\n",
                     o.topic.c_str(), o.partitions);
      } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        std::fprintf(stderr, "gregor-loadgen: CreateTopics %s: %s (continuing)\n",
                     o.topic.c_str(), rd_kafka_err2str(err));
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
}

// Waits until the topic exists with leaders for all of its partitions (and at least
// o.partitions of them when given). Returns the partition count, or -1.
int wait_for_topic(rd_kafka_t* rk, rd_kafka_topic_t* rkt, const options& o, run_state& st,
                   double budget_s) {
  auto t0 = clock_type::now();
  auto deadline = t0 + std::chrono::duration_cast<clock_type::duration>(
                           std::chrono::duration<double>(budget_s));
  std::string last_problem;
  while (!must_stop(st, deadline)) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    if (err) {
      last_problem = rd_kafka_err2str(err);
    } else {
      std::string problem;
      int found = -1;
      for (int i = 0; i < md->topic_cnt; ++i) {
        const auto& t = md->topics[i];
        if (o.topic != t.topic) continue;
        if (t.err) {
          problem = rd_kafka_err2str(t.err);
          break;
        }
        found = t.partition_cnt;
        for (int p = 0; p < t.partition_cnt; ++p) {
          if (t.partitions[p].leader < 0 || t.partitions[p].err) {
            problem = "partition without leader";
            found = -1;
            break;
          }
        }
      }
      rd_kafka_metadata_destroy(md);
      if (found > 0) {
        if (o.partitions > 0 && found < o.partitions)
          std::fprintf(stderr,
                       "gregor-loadgen: topic %s has %d partitions, not the %d asked for; "
                       "going on with %d\n",
                       o.topic.c_str(), found, o.partitions, found);
        return found;
      }
      if (problem.empty()) problem = "topic not in metadata";
      last_problem = problem;
    }
    rd_kafka_poll(rk, 100);  // serves the error callback, and waits a little
  }
  std::fprintf(stderr, "gregor-loadgen: topic %s not ready after %.0f s (%s): %s\n",
               o.topic.c_str(), seconds_between(t0, clock_type::now()), st.stop_reason.c_str(),
               last_problem.c_str());
  return -1;
}

// Random payload bytes; record i uses the window starting at (i * 61) % slack so records
// differ without costing a generator call each.
struct payload_source {
  explicit payload_source(size_t record_bytes) : record_bytes_(record_bytes) {
    bytes_.resize(record_bytes + slack);
    std::mt19937_64 rng(12345);
    for (auto& b : bytes_) b = static_cast<char>(rng());
  }
  const char* at(int64_t i) const { return bytes_.data() + (static_cast<size_t>(i) * 61) % slack; }
  size_t size() const { return record_bytes_; }

 private:
  static constexpr size_t slack = 4096;
  size_t record_bytes_;
  std::vector<char> bytes_;
};

std::vector<std::pair<std::string, std::string>> producer_conf(const options& o, int linger) {
  const std::string message_timeout_ms =
      std::to_string(static_cast<int64_t>(std::max(1000.0, o.timeout_s * 1000)));
  std::vector<std::pair<std::string, std::string>> c = {
      {"acks", o.acks},
      {"linger.ms", std::to_string(linger)},
      {"compression.type", "none"},
      {"enable.idempotence", "false"},
      {"queue.buffering.max.messages", "200000"},
      {"queue.buffering.max.kbytes", "262144"},
      {"message.timeout.ms", message_timeout_ms},
  };
  if (o.batch_bytes > 0) c.emplace_back("batch.size", std::to_string(o.batch_bytes));
  // librdkafka wants message.timeout.ms <= transaction.timeout.ms (default 60 s).
  if (o.transaction_ms > 0) c.emplace_back("transaction.timeout.ms", message_timeout_ms);
  return c;
}

const auto process_start = std::chrono::steady_clock::now();

// CPU seconds this process has used, user and system, all threads: librdkafka's own
// threads do most of a client's work.
double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

void common_json(json_line& j, const options& o) {
  j.str("mode", o.mode).str("topic", o.topic).str("bootstrap", o.bootstrap);
  j.str("client", std::string("librdkafka ") + rd_kafka_version_str());
  if (!o.label.empty()) j.str("label", o.label);
  // The client's share of the machine: on a small machine it shares the cores with
  // the broker, and a latency run is only as good as the CPU left over.
  j.num("client_cpu_s", process_cpu_seconds(), 3)
      .num("client_wall_s",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - process_start).count(), 3);
}

// ---------------------------------------------------------------------------------------
// produce-throughput

int run_produce_throughput(const options& o) {
  run_state st;
  int linger = o.linger_ms >= 0 ? o.linger_ms : 5;
  rd_kafka_t* rk = make_client(o, RD_KAFKA_PRODUCER, &st, producer_conf(o, linger));
  if (o.create_topic) create_topic(rk, o);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  int partitions = wait_for_topic(rk, rkt, o, st, std::min(30.0, o.timeout_s));
  if (partitions < 0) return 1;
  payload_source payload(o.record_bytes);
  // Transactions: one open from the start, committed every --transaction-ms. A commit
  // flushes, so its wait is part of the measured time, as it is for an application.
  int64_t commits = 0;
  std::string txn_error;
  auto txn_call = [&](rd_kafka_error_t* e, const char* what) {
    if (!e) return true;
    if (txn_error.empty()) txn_error = std::string(what) + ": " + rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return false;
  };
  if (o.transaction_ms > 0) {
    if (!txn_call(rd_kafka_init_transactions(rk, 30000), "init_transactions") ||
        !txn_call(rd_kafka_begin_transaction(rk), "begin_transaction")) {
      std::fprintf(stderr, "gregor-loadgen: %s\n", txn_error.c_str());
      return 1;
    }
  }
  std::fprintf(stderr,
               "gregor-loadgen: produce-throughput %" PRId64
               " x %zu B, acks=%s, linger.ms=%d, %d partitions\n",
               o.count, o.record_bytes, o.acks.c_str(), linger, partitions);

  auto t0 = clock_type::now();
  auto deadline = t0 + std::chrono::duration_cast<clock_type::duration>(
                           std::chrono::duration<double>(o.timeout_s));
  int64_t produced = 0;
  int64_t queue_full = 0;
  auto produce_until =
      o.duration_s > 0 ? t0 + std::chrono::duration_cast<clock_type::duration>(
                                  std::chrono::duration<double>(o.duration_s))
                       : clock_type::time_point::max();
  bool timed_out = false;
  bool produce_failed = false;
  bool duration_reached = false;
  auto next_report = t0 + std::chrono::seconds(1);
  const auto txn_every = std::chrono::milliseconds(o.transaction_ms);
  auto txn_started = t0;
  for (int64_t i = 0; i < o.count && !timed_out && !produce_failed && !duration_reached; ++i) {
    if (o.transaction_ms > 0 && (i & 63) == 0 && clock_type::now() - txn_started >= txn_every) {
      if (!txn_call(rd_kafka_commit_transaction(rk, 30000), "commit_transaction") ||
          !txn_call(rd_kafka_begin_transaction(rk), "begin_transaction")) {
        produce_failed = true;
        break;
      }
      ++commits;
      txn_started = clock_type::now();
    }
    const int32_t partition =
        o.spread > 0 ? static_cast<int32_t>((i / o.spread) % partitions) : RD_KAFKA_PARTITION_UA;
    for (;;) {
      if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY,
                           const_cast<char*>(payload.at(i)), payload.size(), nullptr, 0,
                           nullptr) == 0) {
        ++produced;
        break;
      }
      rd_kafka_resp_err_t err = rd_kafka_last_error();
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        std::fprintf(stderr, "gregor-loadgen: produce: %s\n", rd_kafka_err2str(err));
        produce_failed = true;
        break;
      }
      ++queue_full;
      rd_kafka_poll(rk, 1);
      if (must_stop(st, deadline)) {
        timed_out = true;
        break;
      }
    }
    if ((i & 1023) == 0) {
      rd_kafka_poll(rk, 0);
      auto now = clock_type::now();
      if (must_stop(st, deadline)) timed_out = true;
      if (now > produce_until) duration_reached = true;
      if (now > next_report) {
        next_report = now + std::chrono::seconds(1);
        std::fprintf(stderr, "gregor-loadgen:   produced %" PRId64 ", delivered %" PRId64 "\n",
                     produced, st.delivered.load());
      }
    }
  }
  if (o.transaction_ms > 0 && !timed_out && !produce_failed) {
    if (txn_call(rd_kafka_commit_transaction(rk, 30000), "commit_transaction")) ++commits;
    else produce_failed = true;
  }
  if (!txn_error.empty()) std::fprintf(stderr, "gregor-loadgen: transaction failed: %s\n", txn_error.c_str());
  while (!timed_out && rd_kafka_outq_len(rk) > 0) {
    if (must_stop(st, deadline)) {
      timed_out = true;
      break;
    }
    rd_kafka_poll(rk, 50);
  }
  int64_t end_ns = st.last_delivery_ns.load();
  auto t_end_steady = clock_type::now();
  const int64_t t0_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
  double seconds = end_ns > 0 ? static_cast<double>(end_ns - t0_ns) / 1e9
                              : seconds_between(t0, t_end_steady);
  if (timed_out) {
    std::fprintf(stderr, "gregor-loadgen: stopped early: %s\n", st.stop_reason.c_str());
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk, 100);
  }
  int64_t delivered = st.delivered.load();
  double msgs = seconds > 0 ? static_cast<double>(delivered) / seconds : 0;
  double mb = msgs * static_cast<double>(o.record_bytes) / 1e6;
  bool ok = !timed_out && !produce_failed && delivered == produced && delivered > 0;
  std::fprintf(stderr,
               "gregor-loadgen: %" PRId64 " delivered in %.3f s: %.0f msgs/s, %.1f MB/s%s\n",
               delivered, seconds, msgs, mb, ok ? "" : " (INCOMPLETE)");

  json_line j;
  common_json(j, o);
  j.integer("partitions", partitions)
      .integer("record_bytes", static_cast<int64_t>(o.record_bytes))
      .str("acks", o.acks)
      .integer("linger_ms", linger)
      .integer("spread", o.spread)
      .integer("records", o.count)
      .num("duration_s", o.duration_s, 3)
      .integer("produced", produced)
      .integer("delivered", delivered)
      .integer("errors", st.delivery_errors.load())
      .integer("queue_full", queue_full)
      .num("seconds", seconds, 4)
      .num("msgs_per_s", msgs, 1)
      .num("mb_per_s", mb, 2)
      .boolean("timed_out", timed_out)
      .str("stop_reason", st.stop_reason)
      .boolean("ok", ok);
  if (o.transaction_ms > 0) {
    j.integer("transaction_ms", o.transaction_ms).integer("transactions_committed", commits);
    if (!txn_error.empty()) j.str("transaction_error", txn_error);
  }
  j.print();

  rd_kafka_topic_destroy(rkt);
  rd_kafka_flush(rk, 1000);
  rd_kafka_destroy(rk);
  return ok ? 0 : 2;
}

// ---------------------------------------------------------------------------------------
// produce-latency

// percentiles of a sorted vector of nanoseconds, in ms (nearest rank)
double percentile_ms(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1e6;
}

// --e2e: a consumer reading every partition of the topic from its end, in its own client
// (connections of its own) and thread. Each produced record carries its sequence number as
// an 8-byte key; the consumer's poll returning it ends its end-to-end latency.
struct e2e_consumer {
  rd_kafka_t* rk = nullptr;
  rd_kafka_topic_t* rkt = nullptr;
  rd_kafka_queue_t* q = nullptr;
  int partitions = 0;
  std::vector<int64_t> latency_ns;  // per sequence number, -1 until consumed
  const std::vector<int64_t>* sent_ns = nullptr;
  int64_t count_from = 0;             // the first measured sequence number
  std::atomic<int64_t> received{0};  // measured records received
  std::atomic<bool> stop{false};
  std::thread thread;

  bool start(const options& o, run_state* st, int n_partitions, const std::vector<int64_t>& sent) {
    sent_ns = &sent;
    latency_ns.assign(sent.size(), -1);
    partitions = n_partitions;
    // Kafka's consumer defaults: the broker answers a fetch as soon as it has one byte, or
    // after fetch.max.wait.ms (500).
    rk = make_client(o, RD_KAFKA_CONSUMER, st,
                     {{"fetch.wait.max.ms", "500"},
                      {"fetch.min.bytes", "1"},
                      {"enable.partition.eof", "false"},
                      {"enable.auto.commit", "false"},
                      {"group.id", "gregor-loadgen-e2e"}});
    rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
    q = rd_kafka_queue_new(rk);
    for (int p = 0; p < partitions; ++p) {
      if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_END, q) != 0) {
        std::fprintf(stderr, "gregor-loadgen: e2e consume_start %d: %s\n", p,
                     rd_kafka_err2str(rd_kafka_last_error()));
        return false;
      }
    }
    thread = std::thread([this] { run(); });
    return true;
  }

  void run() {
    while (!stop.load(std::memory_order_relaxed)) {
      rd_kafka_message_t* m = rd_kafka_consume_queue(q, 50);
      if (!m) continue;
      int64_t t = now_ns();
      if (!m->err && m->key_len == sizeof(int64_t)) {
        int64_t seq = 0;
        std::memcpy(&seq, m->key, sizeof seq);
        if (seq >= 0 && static_cast<size_t>(seq) < latency_ns.size() && latency_ns[seq] < 0) {
          latency_ns[seq] = t - (*sent_ns)[seq];
          if (seq >= count_from) received.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "gregor-loadgen: e2e consumer: %s\n", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
  }

  void finish() {
    stop = true;
    if (thread.joinable()) thread.join();
    if (rkt) {
      for (int p = 0; p < partitions; ++p) rd_kafka_consume_stop(rkt, p);
      rd_kafka_topic_destroy(rkt);
    }
    if (q) rd_kafka_queue_destroy(q);
    if (rk) rd_kafka_destroy(rk);
    rk = nullptr;
    rkt = nullptr;
    q = nullptr;
  }
};

int run_produce_latency(const options& o) {
  run_state st;
  int linger = o.linger_ms >= 0 ? o.linger_ms : 0;
  const int64_t warmup = static_cast<int64_t>(std::llround(o.rate * o.warmup_s));
  const int64_t measured =
      o.count > 0 ? o.count
                  : static_cast<int64_t>(std::llround(o.rate * (o.duration_s > 0 ? o.duration_s : 5)));
  const int64_t total = warmup + measured;
  if (measured <= 0) usage("produce-latency: nothing to measure");
  st.sent_ns.assign(static_cast<size_t>(total), 0);
  st.latency_ns.assign(static_cast<size_t>(total), -1);

  rd_kafka_t* rk = make_client(o, RD_KAFKA_PRODUCER, &st, producer_conf(o, linger));
  if (o.create_topic) create_topic(rk, o);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  int partitions = wait_for_topic(rk, rkt, o, st, std::min(30.0, o.timeout_s));
  if (partitions < 0) return 1;
  payload_source payload(o.record_bytes);
  e2e_consumer e2e;
  if (o.e2e) {
    e2e.count_from = warmup;
    if (!e2e.start(o, &st, partitions, st.sent_ns)) return 1;
    // Its ListOffsets (the partitions' ends) before the first record is sent; the warm-up
    // records absorb whatever is left.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  std::fprintf(stderr,
               "gregor-loadgen: produce-latency %zu B at %.0f msgs/s, acks=%s, linger.ms=%d, "
               "%d partitions, %" PRId64 " warm-up + %" PRId64 " measured records\n",
               o.record_bytes, o.rate, o.acks.c_str(), linger, partitions, warmup, measured);

  // Delivery reports are served by their own thread so that a report is timed when it
  // arrives, not when the pacing loop next gets round to polling.
  std::atomic<bool> stop_poller{false};
  std::thread poller([&] {
    while (!stop_poller.load(std::memory_order_relaxed)) rd_kafka_poll(rk, 20);
    rd_kafka_poll(rk, 0);
  });

  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // 1 us: sleep_until() close to the schedule
  auto t0 = clock_type::now() + std::chrono::milliseconds(1);
  auto deadline = t0 + std::chrono::duration_cast<clock_type::duration>(
                           std::chrono::duration<double>(o.timeout_s));
  const double period_ns = 1e9 / o.rate;
  const auto min_tick = std::chrono::microseconds(o.tick_us);
  int64_t sent = 0;
  int64_t queue_full = 0;
  bool timed_out = false;
  bool produce_failed = false;
  auto next_report = t0 + std::chrono::seconds(1);
  while (sent < total && !timed_out && !produce_failed) {
    auto now = clock_type::now();
    if (must_stop(st, deadline)) {
      timed_out = true;
      break;
    }
    double elapsed_ns = std::chrono::duration<double, std::nano>(now - t0).count();
    int64_t due = elapsed_ns < 0 ? 0 : static_cast<int64_t>(elapsed_ns / period_ns) + 1;
    due = std::min(due, total);
    while (sent < due) {
      st.sent_ns[static_cast<size_t>(sent)] = now_ns();
      const int64_t key = sent;  // the sequence number, for the --e2e consumer
      if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                           const_cast<char*>(payload.at(sent)), payload.size(),
                           o.e2e ? &key : nullptr, o.e2e ? sizeof key : 0,
                           reinterpret_cast<void*>(static_cast<uintptr_t>(sent))) == 0) {
        ++sent;
        continue;
      }
      rd_kafka_resp_err_t err = rd_kafka_last_error();
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        std::fprintf(stderr, "gregor-loadgen: produce: %s\n", rd_kafka_err2str(err));
        produce_failed = true;
        break;
      }
      ++queue_full;  // overloaded: the schedule slips, which the latencies will show
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      break;
    }
    if (now > next_report) {
      next_report = now + std::chrono::seconds(1);
      std::fprintf(stderr, "gregor-loadgen:   sent %" PRId64 ", delivered %" PRId64 "\n", sent,
                   st.delivered.load());
    }
    // Sleep until the next record is due, but at least min_tick: at high rates records
    // then go out in small bursts instead of one nanosleep per record, which would cost
    // the client more CPU than producing does.
    auto next = t0 + std::chrono::nanoseconds(static_cast<int64_t>(sent * period_ns));
    auto earliest = clock_type::now() + min_tick;
    std::this_thread::sleep_until(std::max(next, earliest));
  }
  auto t_sent = clock_type::now();
  double send_seconds = seconds_between(t0, t_sent);
  while (!timed_out && st.delivered.load() + st.delivery_errors.load() < sent) {
    if (must_stop(st, deadline)) {
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (timed_out) {
    std::fprintf(stderr, "gregor-loadgen: stopped early: %s\n", st.stop_reason.c_str());
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  }
  stop_poller = true;
  poller.join();
  if (o.e2e) {
    // Every measured record reaches the consumer within a fetch.wait.max.ms or so; 5 s
    // more is plenty, and bounded. (The first warm-up records may go before the consumer
    // has found the partitions' ends: they are not waited for.)
    auto e2e_deadline = clock_type::now() + std::chrono::seconds(5);
    while (e2e.received.load() < sent - warmup && clock_type::now() < e2e_deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    e2e.finish();
  }

  if (!o.dump_latencies.empty()) {
    if (FILE* f = std::fopen(o.dump_latencies.c_str(), "w")) {
      const int64_t base = st.sent_ns.empty() ? 0 : st.sent_ns[0];
      for (int64_t i = 0; i < sent; ++i) {
        auto k = static_cast<size_t>(i);
        std::fprintf(f, "%" PRId64 " %.4f %.4f\n", i,
                     static_cast<double>(st.sent_ns[k] - base) / 1e6,
                     static_cast<double>(st.latency_ns[k]) / 1e6);
      }
      std::fclose(f);
    } else {
      std::fprintf(stderr, "gregor-loadgen: cannot write %s\n", o.dump_latencies.c_str());
    }
  }

  std::vector<int64_t> lat;
  lat.reserve(static_cast<size_t>(measured));
  for (int64_t i = warmup; i < sent; ++i) {
    int64_t l = st.latency_ns[static_cast<size_t>(i)];
    if (l >= 0) lat.push_back(l);
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) { return percentile_ms(lat, q); };
  double mean = 0;
  for (auto l : lat) mean += static_cast<double>(l);
  mean = lat.empty() ? NAN : mean / static_cast<double>(lat.size()) / 1e6;
  double achieved = send_seconds > 0 ? static_cast<double>(sent) / send_seconds : 0;
  bool ok = !timed_out && !produce_failed && static_cast<int64_t>(lat.size()) == measured;
  std::fprintf(stderr,
               "gregor-loadgen: %zu latencies at %.0f msgs/s: p50 %.3f ms, p99 %.3f ms, "
               "p99.9 %.3f ms, max %.3f ms%s\n",
               lat.size(), achieved, pct(0.5), pct(0.99), pct(0.999), pct(1.0),
               ok ? "" : " (INCOMPLETE)");

  json_line j;
  common_json(j, o);
  j.integer("partitions", partitions)
      .integer("record_bytes", static_cast<int64_t>(o.record_bytes))
      .str("acks", o.acks)
      .integer("linger_ms", linger)
      .num("target_rate", o.rate, 1)
      .num("achieved_rate", achieved, 1)
      .num("mb_per_s", achieved * static_cast<double>(o.record_bytes) / 1e6, 2)
      .integer("warmup_records", warmup)
      .integer("measured_records", measured)
      .integer("latencies", static_cast<int64_t>(lat.size()))
      .integer("errors", st.delivery_errors.load())
      .integer("queue_full", queue_full)
      .num("p50_ms", pct(0.5), 4)
      .num("p99_ms", pct(0.99), 4)
      .num("p999_ms", pct(0.999), 4)
      .num("max_ms", pct(1.0), 4)
      .num("mean_ms", mean, 4)
      .boolean("timed_out", timed_out)
      .str("stop_reason", st.stop_reason);
  if (o.e2e) {
    std::vector<int64_t> e2e_lat;
    for (int64_t i = warmup; i < sent; ++i) {
      int64_t l = e2e.latency_ns[static_cast<size_t>(i)];
      if (l >= 0) e2e_lat.push_back(l);
    }
    std::sort(e2e_lat.begin(), e2e_lat.end());
    std::fprintf(stderr,
                 "gregor-loadgen: %zu end-to-end latencies: p50 %.3f ms, p99 %.3f ms, "
                 "p99.9 %.3f ms, max %.3f ms\n",
                 e2e_lat.size(), percentile_ms(e2e_lat, 0.5), percentile_ms(e2e_lat, 0.99),
                 percentile_ms(e2e_lat, 0.999), percentile_ms(e2e_lat, 1.0));
    ok = ok && static_cast<int64_t>(e2e_lat.size()) == measured;
    j.integer("e2e_latencies", static_cast<int64_t>(e2e_lat.size()))
        .num("e2e_p50_ms", percentile_ms(e2e_lat, 0.5), 4)
        .num("e2e_p99_ms", percentile_ms(e2e_lat, 0.99), 4)
        .num("e2e_p999_ms", percentile_ms(e2e_lat, 0.999), 4)
        .num("e2e_max_ms", percentile_ms(e2e_lat, 1.0), 4);
  }
  j.boolean("ok", ok);
  j.print();

  rd_kafka_topic_destroy(rkt);
  rd_kafka_flush(rk, 1000);
  rd_kafka_destroy(rk);
  return ok ? 0 : 2;
}

// ---------------------------------------------------------------------------------------
// consume-throughput

// One read of a consumer's partitions from the beginning to the end (or to o.count records).
struct consume_pass {
  int64_t records = 0;
  int64_t bytes = 0;
  int64_t errors = 0;
  clock_type::time_point started;  // before starting the partitions
  clock_type::time_point last;     // when the last record was handed over
  bool timed_out = false;
};

// What the consume callback sees of one pass.
struct consume_progress {
  consume_pass* pass;
  std::vector<bool>* eof;  // by partition number
  size_t eof_count = 0;
  bool got_data = false;
};

void on_consumed(rd_kafka_message_t* m, void* opaque) {
  auto* c = static_cast<consume_progress*>(opaque);
  if (!m->err) {
    ++c->pass->records;
    c->pass->bytes += static_cast<int64_t>(m->len);
    c->got_data = true;
  } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    auto p = static_cast<size_t>(m->partition);
    if (m->partition >= 0 && p < c->eof->size() && !(*c->eof)[p]) {
      (*c->eof)[p] = true;
      ++c->eof_count;
    }
  } else if (c->pass->errors++ < 20) {
    std::fprintf(stderr, "gregor-loadgen: consume error on partition %d: %s\n", m->partition,
                 rd_kafka_message_errstr(m));
  }
}

consume_pass read_from_beginning(rd_kafka_t* rk, rd_kafka_topic_t* rkt,
                                 const std::vector<int32_t>& partitions, int partition_count,
                                 const options& o, run_state& st,
                                 clock_type::time_point deadline) {
  consume_pass r;
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  r.started = r.last = clock_type::now();
  for (int32_t p : partitions) {
    if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q) != 0) {
      std::fprintf(stderr, "gregor-loadgen: consume_start %d: %s\n", p,
                   rd_kafka_err2str(rd_kafka_last_error()));
      ++r.errors;
      r.timed_out = true;
      rd_kafka_queue_destroy(q);
      return r;
    }
  }
  std::vector<bool> eof(static_cast<size_t>(partition_count), false);
  consume_progress c{&r, &eof};
  auto next_report = r.started + std::chrono::seconds(1);
  for (;;) {
    if (o.count > 0 && r.records >= o.count) break;
    // Every partition is at its end: nothing more comes, whatever --count says.
    if (c.eof_count == partitions.size()) break;
    auto now = clock_type::now();
    if (must_stop(st, deadline)) {
      r.timed_out = true;
      break;
    }
    if (now > next_report) {
      next_report = now + std::chrono::seconds(1);
      std::fprintf(stderr, "gregor-loadgen:   read %" PRId64 " records, %.1f MB\n", r.records,
                   static_cast<double>(r.bytes) / 1e6);
    }
    rd_kafka_poll(rk, 0);  // serves the error callback
    // The callback API returns as soon as it has served what is queued. The batch API
    // (rd_kafka_consume_batch_queue) waits until its array is full or its timeout ends,
    // so the call that gets the last records would add up to its timeout to the pass.
    c.got_data = false;
    if (rd_kafka_consume_callback_queue(q, 100, on_consumed, &c) < 0) {
      std::fprintf(stderr, "gregor-loadgen: consume: %s\n",
                   rd_kafka_err2str(rd_kafka_last_error()));
      ++r.errors;
      continue;
    }
    if (c.got_data) {
      r.last = clock_type::now();
      st.progress_ns.store(now_ns(), std::memory_order_relaxed);
    }
  }
  for (int32_t p : partitions) rd_kafka_consume_stop(rkt, p);
  rd_kafka_queue_destroy(q);
  return r;
}

// One client of a consume-throughput run and the partitions it reads.
struct consumer {
  run_state st;
  rd_kafka_t* rk = nullptr;
  rd_kafka_topic_t* rkt = nullptr;
  std::vector<int32_t> partitions;
  consume_pass pass;
};

int run_consume_throughput(const options& o) {
  if (o.consumers < 1) usage("--consumers must be >= 1");
  std::vector<std::pair<std::string, std::string>> c = {
      {"enable.partition.eof", "true"},
      {"fetch.message.max.bytes", "4194304"},
      // Below glibc's largest mmap threshold (32 MiB): librdkafka allocates each
      // response whole, and a larger one is a fresh mmap per response, whose first touch
      // on a VM faults page by page (a third of the client's time at the default 50 MiB).
      {"fetch.max.bytes", "16777216"},
      {"queued.max.messages.kbytes", "131072"},
      {"queued.min.messages", "1000000"},
      {"fetch.wait.max.ms", "100"},
      {"check.crcs", "false"},
  };
  // Each consumer is its own client: librdkafka reads one broker connection on one
  // thread, so one client measures that thread as much as the broker.
  std::vector<consumer> cs(static_cast<size_t>(o.consumers));
  int partitions = -1;
  for (auto& k : cs) {
    k.rk = make_client(o, RD_KAFKA_CONSUMER, &k.st, c);
    k.rkt = rd_kafka_topic_new(k.rk, o.topic.c_str(), nullptr);
    partitions = wait_for_topic(k.rk, k.rkt, o, k.st, std::min(30.0, o.timeout_s));
    if (partitions < 0) return 1;
  }
  for (int32_t p = 0; p < partitions; ++p)
    cs[static_cast<size_t>(p % o.consumers)].partitions.push_back(p);
  std::fprintf(stderr,
               "gregor-loadgen: consume-throughput from %s, %d partitions, %d consumer(s), "
               "%d pass(es)%s\n",
               o.topic.c_str(), partitions, o.consumers, o.passes,
               o.count > 0 ? (", expecting " + std::to_string(o.count) + " records").c_str()
                           : "");

  // Every pass but the last warms the clients up (their buffers reach their working size
  // on memory they have touched before, as in a long-running consumer); the last is
  // measured. The consumers of one pass read side by side and the pass ends when all
  // have finished.
  auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                          std::chrono::duration<double>(o.timeout_s));
  consume_pass r;
  int64_t errors = 0;
  for (int pass = 1; pass <= o.passes; ++pass) {
    std::vector<std::thread> threads;
    for (auto& k : cs) {
      if (k.partitions.empty()) continue;
      threads.emplace_back([&k, &o, partitions, deadline] {
        k.pass = read_from_beginning(k.rk, k.rkt, k.partitions, partitions, o, k.st, deadline);
      });
    }
    for (auto& t : threads) t.join();
    r = consume_pass{};
    bool first = true;
    for (auto& k : cs) {
      if (k.partitions.empty()) continue;
      r.records += k.pass.records;
      r.bytes += k.pass.bytes;
      r.errors += k.pass.errors;
      r.timed_out = r.timed_out || k.pass.timed_out;
      r.started = first ? k.pass.started : std::min(r.started, k.pass.started);
      r.last = first ? k.pass.last : std::max(r.last, k.pass.last);
      first = false;
    }
    errors += r.errors;
    if (r.timed_out) break;
    if (pass < o.passes)
      std::fprintf(stderr, "gregor-loadgen:   warm-up pass %d: %" PRId64 " records in %.3f s\n",
                   pass, r.records, seconds_between(r.started, r.last));
  }
  double seconds = seconds_between(r.started, r.last);
  double mb = seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / seconds : 0;
  double msgs = seconds > 0 ? static_cast<double>(r.records) / seconds : 0;
  bool ok = !r.timed_out && (o.count <= 0 || r.records >= o.count) && r.records > 0;
  std::fprintf(stderr,
               "gregor-loadgen: read %" PRId64 " records (%.1f MB) in %.3f s: %.1f MB/s, "
               "%.0f msgs/s%s\n",
               r.records, static_cast<double>(r.bytes) / 1e6, seconds, mb, msgs,
               ok ? "" : " (INCOMPLETE)");

  std::string stop_reason;
  for (auto& k : cs)
    if (stop_reason.empty()) stop_reason = k.st.stop_reason;
  json_line j;
  common_json(j, o);
  j.integer("partitions", partitions)
      .integer("consumers", o.consumers)
      .integer("passes", o.passes)
      .integer("records", r.records)
      .integer("bytes", r.bytes)
      .integer("expected_records", o.count)
      .integer("errors", errors)
      .num("seconds", seconds, 4)
      .num("msgs_per_s", msgs, 1)
      .num("mb_per_s", mb, 2)
      .boolean("timed_out", r.timed_out)
      .str("stop_reason", stop_reason)
      .boolean("ok", ok);
  j.print();

  for (auto& k : cs) {
    rd_kafka_topic_destroy(k.rkt);
    rd_kafka_destroy(k.rk);
  }
  return ok ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse_options(argc, argv);
  std::fflush(stdout);
  if (o.mode == "produce-throughput") return run_produce_throughput(o);
  if (o.mode == "produce-latency") return run_produce_latency(o);
  return run_consume_throughput(o);
}
