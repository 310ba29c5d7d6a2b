// gregor-client-check: Gregor's own C++ client (src/client) against a real broker.
//
// Modes:
//   check (default)     creates a topic with the admin client; for each compression codec
//                       (none, gzip, snappy, lz4, zstd) produces --count keyed records with
//                       headers and explicit timestamps (acks=all); consumes everything in a
//                       consumer group (subscribe, commit_sync) and checks that every record
//                       comes back byte for byte (key, value, headers, timestamp), on the
//                       partition its key hashes to, in per-partition send order, and that
//                       the group's committed offsets equal the partitions' end offsets.
//                       Exit status 0 when all holds; 1 with a message on stderr otherwise.
//   produce-throughput  produces --count records of --record-bytes (no key) with --acks,
//                       reports msgs/s and MB/s from the first send() to the end of flush().
//   consume-throughput  assigns every partition of --topic, reads from the beginning up to
//                       the end offsets (or --count records), reports msgs/s and MB/s.
//
// Throughput modes print one JSON line on stdout (the same fields as gregor-loadgen:
// msgs_per_s, mb_per_s, MB = 10^6 bytes of record values); progress goes to stderr.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "client/admin.h"
#include "client/consumer.h"
#include "client/producer.h"
#include "protocol/compression.h"

namespace {

using namespace gregor;
using namespace gregor::client;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string mode = "check";
  std::string bootstrap;
  std::string topic;
  int32_t partitions = 3;
  bool create_topic = false;
  int64_t count = -1;  // default depends on the mode
  size_t record_bytes = 1024;
  std::string acks = "1";
  int64_t linger_ms = 5;
  double timeout_s = 60;
  int32_t max_in_flight = 5;  // producer max.in.flight.requests.per.connection
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "gregor-client-check: %s\n"
               "usage: gregor-client-check [check|produce-throughput|consume-throughput] --bootstrap HOST:PORT\n"
               "         [--topic T] [--partitions N] [--create-topic] [--count N] [--record-bytes N]\n"
               "         [--acks 0|1|all] [--linger-ms N] [--max-in-flight N] [--timeout-s S]\n",
               why.c_str());
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  int i = 1;
  if (argc > 1 && argv[1][0] != '-') o.mode = argv[i++];
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--bootstrap") o.bootstrap = next();
    else if (arg == "--topic") o.topic = next();
    else if (arg == "--partitions") o.partitions = std::stoi(next());
    else if (arg == "--create-topic") o.create_topic = true;
    else if (arg == "--count") o.count = std::stoll(next());
    else if (arg == "--record-bytes") o.record_bytes = std::stoul(next());
    else if (arg == "--acks") o.acks = next();
    else if (arg == "--linger-ms") o.linger_ms = std::stoll(next());
    else if (arg == "--timeout-s") o.timeout_s = std::stod(next());
    else if (arg == "--max-in-flight") o.max_in_flight = std::stoi(next());
    else if (arg == "-h" || arg == "--help") usage("help");
    else usage("unknown argument " + arg);
  }
  if (o.mode != "check" && o.mode != "produce-throughput" && o.mode != "consume-throughput")
    usage("unknown mode " + o.mode);
  if (o.bootstrap.empty()) usage("--bootstrap is required");
  if (o.partitions <= 0) usage("--partitions must be positive");
  if (o.acks != "0" && o.acks != "1" && o.acks != "all" && o.acks != "-1") usage("--acks must be 0, 1 or all");
  if (o.timeout_s <= 0) usage("--timeout-s must be positive");
  if (o.max_in_flight <= 0) usage("--max-in-flight must be positive");
  if (o.count < 0) o.count = o.mode == "check" ? 200 : (o.mode == "produce-throughput" ? 100000 : 0);
  return o;
}

int failures = 0;
void fail(const std::string& what) {
  std::fprintf(stderr, "gregor-client-check: MISMATCH: %s\n", what.c_str());
  if (++failures >= 20) {
    std::fprintf(stderr, "gregor-client-check: FAILED (stopping after %d mismatches)\n", failures);
    std::exit(1);
  }
}
[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "gregor-client-check: FAILED: %s\n", what.c_str());
  std::exit(1);
}
void progress(const std::string& what) { std::fprintf(stderr, "gregor-client-check: %s\n", what.c_str()); }

std::string tp_name(const topic_partition& tp) { return tp.topic + "-" + std::to_string(tp.partition); }

std::string show(const std::optional<bytes>& b) {
  if (!b) return "null";
  std::string s(b->begin(), b->end());
  if (s.size() > 40) s = s.substr(0, 40) + "...(" + std::to_string(b->size()) + " bytes)";
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '.';
  return "\"" + s + "\"";
}

bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

void ensure_topic(admin_client& admin, const std::string& topic, int32_t partitions) {
  auto r = admin.create_topics({new_topic{topic, partitions, 1, {}}});
  if (!r) die("CreateTopics " + topic + ": " + r.err().message);
  for (auto& item : *r)
    if (!item.ok() && item.error_code != 36 /* TOPIC_ALREADY_EXISTS */)
      die("CreateTopics " + topic + ": " + item.describe());
}

std::vector<topic_partition> all_partitions(const std::string& topic, int32_t n) {
  std::vector<topic_partition> tps;
  for (int32_t p = 0; p < n; ++p) tps.push_back({topic, p});
  return tps;
}

// ---------------------------------------------------------------------------------------
// check

struct sent_record {
  std::optional<bytes> key;
  std::optional<bytes> value;
  std::vector<protocol::record_header> headers;
  int64_t timestamp = 0;
  size_t seq = 0;  // global send order
};

int run_check(const options& o) {
  const auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                                std::chrono::duration<double>(o.timeout_s));
  const std::string topic =
      o.topic.empty() ? "client-check-" + std::to_string(getpid()) + "-" +
                            std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000)
                      : o.topic;
  const int32_t P = o.partitions;

  admin_config ac;
  ac.bootstrap_servers = o.bootstrap;
  ac.client_id = "gregor-client-check-admin";
  admin_client admin(ac);
  if (auto c = admin.describe_cluster(); !c) die("no broker answers at " + o.bootstrap + ": " + c.err().message);
  ensure_topic(admin, topic, P);
  progress("created topic " + topic + " with " + std::to_string(P) + " partitions");

  std::mt19937_64 rng(42);
  std::map<topic_partition, std::map<int64_t, sent_record>> expected;  // by partition, then offset
  const int64_t base_ts = 1700000000000;
  size_t seq = 0;
  const protocol::compression_type codecs[] = {protocol::compression_type::none, protocol::compression_type::gzip,
                                               protocol::compression_type::snappy, protocol::compression_type::lz4,
                                               protocol::compression_type::zstd};
  for (auto codec : codecs) {
    producer_config pc;
    pc.bootstrap_servers = o.bootstrap;
    pc.client_id = std::string("gregor-client-check-") + protocol::to_string(codec);
    pc.acks = -1;
    pc.compression = codec;
    pc.linger_ms = 5;
    pc.max_in_flight_requests_per_connection = o.max_in_flight;
    pc.allow_auto_create_topics = false;
    producer prod(pc);
    std::vector<std::pair<sent_record, std::future<record_metadata>>> inflight;
    for (int64_t i = 0; i < o.count; ++i) {
      sent_record s;
      s.seq = seq++;
      s.key = to_bytes(std::string(protocol::to_string(codec)) + "-key-" + std::to_string(i % 37));
      if (i % 50 == 49) {
        s.value = std::nullopt;  // a tombstone
      } else {
        size_t len = i % 10 == 0 ? 0 : rng() % 3000;
        bytes v(len);
        // Compressible half (repeated text) and incompressible half (random bytes).
        for (size_t j = 0; j < len; ++j) v[j] = j < len / 2 ? static_cast<uint8_t>('a' + (i + j / 7) % 26)
                                                            : static_cast<uint8_t>(rng());
        s.value = std::move(v);
      }
      s.headers.push_back({"seq", to_bytes(std::to_string(s.seq))});
      s.headers.push_back({"codec", to_bytes(protocol::to_string(codec))});
      if (i % 3 == 0) s.headers.push_back({"null-header", std::nullopt});
      if (i % 5 == 0) s.headers.push_back({"bin", bytes{0, 1, 2, 255, 254, 0}});
      s.timestamp = base_ts + static_cast<int64_t>(s.seq) * 1000 + (i % 7);

      producer_record r;
      r.topic = topic;
      r.key = s.key;
      r.value = s.value;
      r.headers = s.headers;
      r.timestamp = s.timestamp;
      auto f = prod.send(std::move(r));
      inflight.emplace_back(std::move(s), std::move(f));
    }
    if (!prod.flush(30000)) die(std::string("flush timed out for codec ") + protocol::to_string(codec));
    for (auto& [s, f] : inflight) {
      auto md = f.get();
      if (!md.ok()) die(std::string("send failed (") + protocol::to_string(codec) + "): " + md.describe_error());
      int32_t want = partition_for_key(*s.key, P);
      if (md.partition != want)
        fail("record seq " + std::to_string(s.seq) + " went to partition " + std::to_string(md.partition) +
             ", its key hashes to " + std::to_string(want));
      if (md.offset < 0) fail("record seq " + std::to_string(s.seq) + " acknowledged without an offset");
      auto& part = expected[{topic, md.partition}];
      if (!part.empty() && part.rbegin()->first >= md.offset)
        fail("send order broken on partition " + std::to_string(md.partition) + ": seq " + std::to_string(s.seq) +
             " got offset " + std::to_string(md.offset) + " after offset " + std::to_string(part.rbegin()->first));
      if (!part.emplace(md.offset, std::move(s)).second)
        fail("two records acknowledged at offset " + std::to_string(md.offset));
    }
    prod.close();
    progress(std::string("produced ") + std::to_string(o.count) + " records with compression " +
             protocol::to_string(codec) + " (acks=all)");
  }
  size_t total = 0;
  for (auto& [tp, m] : expected) total += m.size();

  // Consume in a group.
  consumer_config cc;
  cc.bootstrap_servers = o.bootstrap;
  cc.client_id = "gregor-client-check-consumer";
  cc.group_id = topic + "-group";
  cc.enable_auto_commit = false;
  cc.auto_offset_reset = "earliest";
  cc.session_timeout_ms = 10000;
  cc.heartbeat_interval_ms = 1000;
  cc.allow_auto_create_topics = false;
  consumer cons(cc);
  if (auto r = cons.subscribe({topic}); !r) die("subscribe: " + r.err().message);
  std::map<topic_partition, int64_t> last_offset;
  size_t got = 0;
  while (got < total) {
    if (clock_type::now() > deadline)
      die("timed out consuming: got " + std::to_string(got) + " of " + std::to_string(total) + " records");
    auto recs = cons.poll(500);
    if (!recs) die("poll: " + recs.err().message);
    for (auto& r : *recs) {
      topic_partition tp{r.topic, r.partition};
      std::string where = tp_name(tp) + "@" + std::to_string(r.offset);
      auto lo = last_offset.find(tp);
      if (lo != last_offset.end() && r.offset != lo->second + 1)
        fail("out of order on " + tp_name(tp) + ": offset " + std::to_string(r.offset) + " after " +
             std::to_string(lo->second));
      last_offset[tp] = r.offset;
      auto pit = expected.find(tp);
      if (pit == expected.end() || !pit->second.count(r.offset)) {
        fail("consumed a record that was not produced: " + where);
        continue;
      }
      const sent_record& s = pit->second.at(r.offset);
      if (r.key != s.key) fail(where + ": key " + show(r.key) + " != sent " + show(s.key));
      if (r.value != s.value) fail(where + ": value " + show(r.value) + " != sent " + show(s.value));
      if (r.headers != s.headers)
        fail(where + ": headers differ (" + std::to_string(r.headers.size()) + " received, " +
             std::to_string(s.headers.size()) + " sent)");
      if (r.timestamp != s.timestamp)
        fail(where + ": timestamp " + std::to_string(r.timestamp) + " != sent " + std::to_string(s.timestamp));
      if (r.timestamp_type != protocol::timestamp_type::create_time) fail(where + ": timestamp type is not CreateTime");
      ++got;
    }
  }
  progress("consumed " + std::to_string(got) + " records in group " + cc.group_id + ", member " + cons.member_id());
  if (auto r = cons.commit_sync(); !r) die("commit_sync: " + r.err().message);

  auto tps = all_partitions(topic, P);
  auto ends = cons.end_offsets(tps);
  if (!ends) die("end_offsets: " + ends.err().message);
  auto committed = cons.committed(tps);
  if (!committed) die("committed: " + committed.err().message);
  auto group_offsets = admin.list_group_offsets(cc.group_id, tps);
  if (!group_offsets) die("list_group_offsets: " + group_offsets.err().message);
  for (auto& tp : tps) {
    int64_t end = ends->count(tp) ? ends->at(tp) : -1;
    int64_t want_end = expected.count(tp) && !expected[tp].empty() ? expected[tp].rbegin()->first + 1 : 0;
    if (end != want_end)
      fail(tp_name(tp) + ": end offset " + std::to_string(end) + ", expected " + std::to_string(want_end));
    int64_t c = committed->count(tp) ? committed->at(tp) : -1;
    if (c != end) fail(tp_name(tp) + ": committed offset " + std::to_string(c) + " != end offset " + std::to_string(end));
    int64_t g = group_offsets->count(tp) ? group_offsets->at(tp).offset : -1;
    if (g != end)
      fail(tp_name(tp) + ": admin sees committed offset " + std::to_string(g) + " != end offset " + std::to_string(end));
    if (expected.count(tp)) {
      // Every offset of the partition was produced by us, so offsets are dense from 0.
      auto& m = expected[tp];
      if (!m.empty() && (m.begin()->first != 0 || m.rbegin()->first + 1 != static_cast<int64_t>(m.size())))
        fail(tp_name(tp) + ": acknowledged offsets are not dense from 0");
    }
  }
  cons.close();
  if (failures) die(std::to_string(failures) + " mismatches");
  std::printf("OK: %zu records, %d partitions, codecs none/gzip/snappy/lz4/zstd, committed == end offsets\n", total, P);
  return 0;
}

// ---------------------------------------------------------------------------------------
// Throughput

double elapsed_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

void print_result(const options& o, int64_t msgs, int64_t value_bytes, double secs) {
  std::printf(
      "{\"client\":\"gregor\",\"mode\":\"%s\",\"topic\":\"%s\",\"record_bytes\":%zu,\"acks\":\"%s\","
      "\"msgs\":%lld,\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f}\n",
      o.mode.c_str(), o.topic.c_str(), o.record_bytes, o.acks.c_str(), static_cast<long long>(msgs), secs,
      secs > 0 ? static_cast<double>(msgs) / secs : 0.0, secs > 0 ? static_cast<double>(value_bytes) / 1e6 / secs : 0.0);
  std::fflush(stdout);
}

int run_produce(const options& o) {
  if (o.topic.empty()) usage("--topic is required");
  if (o.create_topic) {
    admin_config ac;
    ac.bootstrap_servers = o.bootstrap;
    admin_client admin(ac);
    ensure_topic(admin, o.topic, o.partitions);
  }
  producer_config pc;
  pc.bootstrap_servers = o.bootstrap;
  pc.client_id = "gregor-client-bench";
  pc.acks = o.acks == "all" ? -1 : static_cast<int16_t>(std::stoi(o.acks));
  pc.linger_ms = o.linger_ms;
  pc.max_in_flight_requests_per_connection = o.max_in_flight;
  producer prod(pc);
  // Metadata first, so that the measurement starts with a known topic.
  if (auto p = prod.partitions_for(o.topic); !p) die("metadata for " + o.topic + ": " + p.err().message);

  std::string value(o.record_bytes, 'x');
  std::mt19937 rng(1);
  for (auto& c : value) c = static_cast<char>('a' + rng() % 26);
  std::atomic<int64_t> errors{0};
  std::string first_error;
  const auto start = clock_type::now();
  auto last_report = start;
  int64_t sent = 0;
  for (; sent < o.count; ++sent) {
    if ((sent & 1023) == 0) {
      if (elapsed_since(start) > o.timeout_s) break;
      if (std::chrono::duration<double>(clock_type::now() - last_report).count() >= 1) {
        last_report = clock_type::now();
        progress("produced " + std::to_string(sent) + " records");
      }
    }
    producer_record r;
    r.topic = o.topic;
    r.value = bytes(value.begin(), value.end());
    prod.send(std::move(r), [&errors](const record_metadata& md) {
      if (!md.ok()) errors.fetch_add(1, std::memory_order_relaxed);
    });
  }
  double left = o.timeout_s - elapsed_since(start);
  if (!prod.flush(static_cast<int64_t>(std::max(left, 1.0) * 1000))) die("flush timed out");
  double secs = elapsed_since(start);
  prod.close();
  if (errors.load()) die(std::to_string(errors.load()) + " records failed");
  print_result(o, sent, sent * static_cast<int64_t>(o.record_bytes), secs);
  return 0;
}

int run_consume(const options& o) {
  if (o.topic.empty()) usage("--topic is required");
  consumer_config cc;
  cc.bootstrap_servers = o.bootstrap;
  cc.client_id = "gregor-client-bench";
  cc.enable_auto_commit = false;
  cc.auto_offset_reset = "earliest";
  cc.allow_auto_create_topics = false;
  consumer cons(cc);
  admin_config ac;
  ac.bootstrap_servers = o.bootstrap;
  admin_client admin(ac);
  auto desc = admin.describe_topics({o.topic});
  if (!desc || desc->empty() || desc->front().error_code != 0) die("cannot describe topic " + o.topic);
  std::vector<topic_partition> tps;
  for (auto& p : desc->front().partitions) tps.push_back({o.topic, p.partition});
  auto ends = cons.end_offsets(tps);
  if (!ends) die("end_offsets: " + ends.err().message);
  auto begins = cons.beginning_offsets(tps);
  if (!begins) die("beginning_offsets: " + begins.err().message);
  int64_t available = 0;
  for (auto& tp : tps) available += ends->at(tp) - begins->at(tp);
  int64_t want = o.count > 0 ? std::min(o.count, available) : available;
  cons.assign(tps);
  if (auto r = cons.seek_to_beginning(tps); !r) die("seek_to_beginning: " + r.err().message);

  const auto start = clock_type::now();
  auto last_report = start;
  int64_t msgs = 0, value_bytes = 0;
  while (msgs < want) {
    if (elapsed_since(start) > o.timeout_s) {
      progress("timed out after " + std::to_string(msgs) + " of " + std::to_string(want) + " records");
      break;
    }
    auto recs = cons.poll(200);
    if (!recs) die("poll: " + recs.err().message);
    for (auto& r : *recs) {
      ++msgs;
      if (r.value) value_bytes += static_cast<int64_t>(r.value->size());
    }
    if (std::chrono::duration<double>(clock_type::now() - last_report).count() >= 1) {
      last_report = clock_type::now();
      progress("consumed " + std::to_string(msgs) + " of " + std::to_string(want) + " records");
    }
  }
  double secs = elapsed_since(start);
  cons.close();
  options shown = o;
  if (msgs > 0) shown.record_bytes = static_cast<size_t>(value_bytes / msgs);
  print_result(shown, msgs, value_bytes, secs);
  return msgs < want ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  if (o.mode == "check") return run_check(o);
  if (o.mode == "produce-throughput") return run_produce(o);
  return run_consume(o);
}
