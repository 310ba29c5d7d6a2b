// peer_common.h: what the peers' load generators (gregor-redis-loadgen,
// gregor-nats-loadgen) share: options, the fixed-rate pacer, percentiles and the JSON line.
// They measure what gregor-loadgen measures for a Kafka broker, with the same names in
// their JSON output, so that bench/report.py reads all of them alike:
//   latency     records of --record-bytes at a fixed --rate for --duration-s after
//               --warmup-s, spread round-robin over --partitions streams/subjects;
//               latency from the send to the server's acknowledgement (p50_ms, p99_ms,
//               p999_ms, max_ms) and, with --e2e, to a subscriber's receipt (e2e_p50_ms ...)
//   throughput  as fast as the server acknowledges, at most --window records in flight,
//               for --duration-s: msgs_per_s, mb_per_s
// Each record's first 8 bytes are its sequence number, so an acknowledgement or a received
// record finds its send time. Bounded by --timeout-s. One JSON line on stdout.
#pragma once

#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "json_line.h"

namespace peer {

using clock_type = std::chrono::steady_clock;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

struct options {
  std::string mode;  // latency | throughput
  std::string server = "127.0.0.1:6379";
  int partitions = 4;
  size_t record_bytes = 1024;
  double rate = 0;
  double duration_s = 3;
  double warmup_s = 0.5;
  bool e2e = false;
  int window = 1000;
  double timeout_s = 60;
  std::string label;
};

[[noreturn]] inline void usage(const char* prog, const std::string& why) {
  std::fprintf(stderr,
               "%s: %s\n"
               "usage: %s latency|throughput --server HOST:PORT [options]\n"
               "  --partitions P     streams (Redis) or subjects (NATS) written round-robin (4)\n"
               "  --record-bytes S   record size (1024, at least 8)\n"
               "  --rate R           latency: records per second\n"
               "  --duration-s D     measured seconds (3)\n"
               "  --warmup-s W       latency: unmeasured seconds first (0.5)\n"
               "  --e2e              latency: also to a subscriber's receipt\n"
               "  --window N         throughput: records in flight at most (1000)\n"
               "  --timeout-s T      hard stop (60)\n"
               "  --label TEXT       copied into the JSON output\n",
               prog, why.c_str(), prog);
  std::exit(64);
}

inline options parse(int argc, char** argv) {
  options o;
  if (argc < 2) usage(argv[0], "missing mode");
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0], "missing value for " + a);
      return argv[++i];
    };
    if (a == "--server") o.server = value();
    else if (a == "--partitions") o.partitions = std::atoi(value().c_str());
    else if (a == "--record-bytes") o.record_bytes = std::strtoull(value().c_str(), nullptr, 10);
    else if (a == "--rate") o.rate = std::atof(value().c_str());
    else if (a == "--duration-s") o.duration_s = std::atof(value().c_str());
    else if (a == "--warmup-s") o.warmup_s = std::atof(value().c_str());
    else if (a == "--e2e") o.e2e = true;
    else if (a == "--window") o.window = std::atoi(value().c_str());
    else if (a == "--timeout-s") o.timeout_s = std::atof(value().c_str());
    else if (a == "--label") o.label = value();
    else usage(argv[0], "unknown argument " + a);
  }
  if (o.mode != "latency" && o.mode != "throughput") usage(argv[0], "unknown mode " + o.mode);
  if (o.partitions < 1) usage(argv[0], "--partitions must be >= 1");
  if (o.record_bytes < 8) usage(argv[0], "--record-bytes must be >= 8");
  if (o.mode == "latency" && o.rate <= 0) usage(argv[0], "latency needs --rate");
  if (o.duration_s <= 0 || o.timeout_s <= 0) usage(argv[0], "durations must be positive");
  if (o.window < 1) usage(argv[0], "--window must be >= 1");
  return o;
}

// Random record bytes; record i's first 8 bytes are overwritten with i.
struct payload {
  explicit payload(size_t n) : bytes(n) {
    std::mt19937_64 rng(12345);
    for (auto& b : bytes) b = static_cast<char>(rng());
  }
  const char* for_seq(int64_t seq) {
    std::memcpy(bytes.data(), &seq, sizeof seq);
    return bytes.data();
  }
  static int64_t seq_of(const void* data, size_t len) {
    if (len < sizeof(int64_t)) return -1;
    int64_t seq = 0;
    std::memcpy(&seq, data, sizeof seq);
    return seq;
  }
  std::vector<char> bytes;
};

// Send and arrival times per sequence number; arrivals may be written from a client
// library's thread (one writer per vector).
struct timings {
  explicit timings(int64_t n) : sent(n, 0), acked(n, -1), received(n, -1) {}
  std::vector<int64_t> sent, acked, received;
  std::atomic<int64_t> n_acked{0}, n_received{0}, errors{0};
  void ack(int64_t seq, int64_t t) {
    if (seq >= 0 && seq < static_cast<int64_t>(acked.size()) && acked[seq] < 0) {
      acked[seq] = t - sent[seq];
      n_acked.fetch_add(1, std::memory_order_relaxed);
    }
  }
  void receive(int64_t seq, int64_t t) {
    if (seq >= 0 && seq < static_cast<int64_t>(received.size()) && received[seq] < 0) {
      received[seq] = t - sent[seq];
      n_received.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

inline double percentile_ms(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1e6;
}

inline std::vector<int64_t> measured(const std::vector<int64_t>& v, int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t i = from; i < to; ++i)
    if (v[i] >= 0) out.push_back(v[i]);
  std::sort(out.begin(), out.end());
  return out;
}

inline double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

using bench::json_line;

// What a peer's client provides to the runs below.
struct client {
  // Sends record seq (its bytes: data, len) to partition p. False: a hard error.
  std::function<bool(int64_t seq, int p, const char* data, size_t len)> send;
  // Serves acknowledgements until the time given (ns) at the latest; may return early.
  std::function<void(int64_t until_ns)> serve;
  // Records in flight (sent, not yet acknowledged or failed).
  std::function<int64_t()> in_flight;
};

inline void latency_json(json_line& j, const options& o, const timings& t, int64_t warmup,
                         int64_t sent, double achieved) {
  auto lat = measured(t.acked, warmup, sent);
  j.num("target_rate", o.rate, 1).num("achieved_rate", achieved, 1)
      .integer("measured_records", sent - warmup).integer("latencies", int64_t(lat.size()))
      .num("p50_ms", percentile_ms(lat, 0.5), 4).num("p99_ms", percentile_ms(lat, 0.99), 4)
      .num("p999_ms", percentile_ms(lat, 0.999), 4).num("max_ms", percentile_ms(lat, 1.0), 4);
  std::fprintf(stderr, "%s: %zu latencies at %.0f/s: p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n",
               o.label.c_str(), lat.size(), achieved, percentile_ms(lat, 0.5),
               percentile_ms(lat, 0.99), percentile_ms(lat, 0.999), percentile_ms(lat, 1.0));
  if (o.e2e) {
    auto e2e = measured(t.received, warmup, sent);
    j.integer("e2e_latencies", int64_t(e2e.size()))
        .num("e2e_p50_ms", percentile_ms(e2e, 0.5), 4).num("e2e_p99_ms", percentile_ms(e2e, 0.99), 4)
        .num("e2e_p999_ms", percentile_ms(e2e, 0.999), 4).num("e2e_max_ms", percentile_ms(e2e, 1.0), 4);
    std::fprintf(stderr, "%s: %zu end-to-end: p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n",
                 o.label.c_str(), e2e.size(), percentile_ms(e2e, 0.5), percentile_ms(e2e, 0.99),
                 percentile_ms(e2e, 0.999), percentile_ms(e2e, 1.0));
  }
}

// Runs the mode; prints the JSON line; returns the exit status (0 ok, 2 incomplete).
// `common` adds the peer's own fields (server, durability) to the JSON line.
inline int run(const options& o, timings& t, client& c, const std::function<void(json_line&)>& common) {
  const auto start = clock_type::now();
  const int64_t deadline = now_ns() + static_cast<int64_t>(o.timeout_s * 1e9);
  const int64_t capacity = static_cast<int64_t>(t.sent.size());
  payload pl(o.record_bytes);
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  int64_t sent = 0;
  bool failed = false, timed_out = false;
  int64_t warmup = 0;
  double achieved = 0, seconds = 0;
  if (o.mode == "latency") {
    warmup = std::llround(o.rate * o.warmup_s);
    const int64_t total = std::min<int64_t>(capacity, warmup + std::llround(o.rate * o.duration_s));
    const double period_ns = 1e9 / o.rate;
    const int64_t t0 = now_ns() + 1'000'000;
    while (sent < total && !failed) {
      int64_t now = now_ns();
      if (now > deadline) { timed_out = true; break; }
      int64_t due = now < t0 ? 0 : std::min(total, int64_t((now - t0) / period_ns) + 1);
      while (sent < due) {
        t.sent[sent] = now_ns();
        if (!c.send(sent, int(sent % o.partitions), pl.for_seq(sent), o.record_bytes)) { failed = true; break; }
        ++sent;
      }
      // Wait for the next record's time, at least 50 us (small bursts at high rates, as
      // gregor-loadgen's pacer does), serving acknowledgements meanwhile.
      int64_t next = t0 + int64_t(double(sent) * period_ns);
      c.serve(std::max(next, now_ns() + 50'000));
    }
    seconds = double(now_ns() - t0) / 1e9;
    achieved = seconds > 0 ? double(sent) / seconds : 0;
  } else {
    const int64_t t0 = now_ns();
    const int64_t stop = t0 + static_cast<int64_t>(o.duration_s * 1e9);
    while (!failed && sent < capacity && now_ns() < stop) {
      while (sent < capacity && c.in_flight() < o.window) {
        t.sent[sent] = now_ns();
        if (!c.send(sent, int(sent % o.partitions), pl.for_seq(sent), o.record_bytes)) { failed = true; break; }
        ++sent;
      }
      c.serve(now_ns() + 1'000'000);
    }
  }
  // Drain: every sent record acknowledged (and received, with --e2e), bounded.
  const int64_t drain_until = std::min<int64_t>(deadline, now_ns() + 10'000'000'000);
  while (now_ns() < drain_until &&
         (t.n_acked.load() + t.errors.load() < sent || (o.e2e && t.n_received.load() < t.n_acked.load())))
    c.serve(now_ns() + 2'000'000);
  if (o.mode == "throughput") {
    int64_t last = 0;
    for (int64_t i = 0; i < sent; ++i)
      if (t.acked[i] >= 0) last = std::max(last, t.sent[i] + t.acked[i]);
    seconds = last > 0 ? double(last - t.sent[0]) / 1e9 : 0;
  }
  bool complete = t.n_acked.load() == sent && t.errors.load() == 0 && (!o.e2e || t.n_received.load() == sent);
  json_line j;
  j.str("mode", o.mode);
  if (!o.label.empty()) j.str("label", o.label);
  common(j);
  j.integer("partitions", o.partitions).integer("record_bytes", int64_t(o.record_bytes));
  if (o.mode == "latency") {
    latency_json(j, o, t, warmup, sent, achieved);
  } else {
    double rate = seconds > 0 ? double(t.n_acked.load()) / seconds : 0;
    j.integer("records", t.n_acked.load()).num("seconds", seconds, 3)
        .num("msgs_per_s", rate, 1).num("mb_per_s", rate * double(o.record_bytes) / 1e6, 2);
    std::fprintf(stderr, "%s: %.0f msgs/s\n", o.label.c_str(), rate);
  }
  j.integer("errors", t.errors.load()).boolean("timed_out", timed_out)
      .num("client_cpu_s", process_cpu_seconds(), 3)
      .num("client_wall_s", std::chrono::duration<double>(clock_type::now() - start).count(), 3)
      .boolean("ok", complete && !failed && !timed_out);
  j.print();
  return complete && !failed && !timed_out ? 0 : 2;
}

// The timings' capacity a run needs: latency runs know their count; throughput runs are
// bounded by a generous rate.
inline int64_t capacity_for(const options& o) {
  if (o.mode == "latency") return std::llround(o.rate * (o.warmup_s + o.duration_s)) + 1;
  return static_cast<int64_t>(o.duration_s * 1'000'000) + o.window + 1;
}

}  // namespace peer
