// gregor console-producer / console-consumer: kafka-console-producer.sh and
// kafka-console-consumer.sh.
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "app/cli_common.h"
#include "client/consumer.h"
#include "client/producer.h"

namespace gregor::cli {

namespace {

bool truthy(const std::map<std::string, std::string>& m, const std::string& k) {
  auto it = m.find(k);
  return it != m.end() && it->second == "true";
}
std::string prop(const std::map<std::string, std::string>& m, const std::string& k, const std::string& def) {
  auto it = m.find(k);
  return it == m.end() ? def : it->second;
}

// ---- console-producer -----------------------------------------------------

struct producer_opts {
  std::string bootstrap;
  std::string topic;
  std::vector<std::string> properties;
  std::vector<std::string> producer_properties;
  std::string producer_config;
  std::string compression;
  std::string acks;
  bool sync = false;
  std::optional<int32_t> partition;
  std::string transactional_id;
};

int run_console_producer(const producer_opts& o) {
  const char* tool = "console-producer";
  auto props = parse_pairs(o.properties, false);
  if (!props) return fail(tool, props.err().message);
  client::producer_config cfg;
  cfg.client_id = "console-producer";
  cfg.max_block_ms = 10000;
  cfg.delivery_timeout_ms = 30000;
  cfg.request_timeout_ms = 15000;
  std::map<std::string, std::string> pp;
  if (!o.producer_config.empty()) {
    auto f = read_properties_file(o.producer_config);
    if (!f) return fail(tool, f.err().message);
    pp = f.value();
  }
  auto cmd = parse_pairs(o.producer_properties, false);
  if (!cmd) return fail(tool, cmd.err().message);
  for (auto& [k, v] : cmd.value()) pp[k] = v;
  pp["bootstrap.servers"] = o.bootstrap;
  if (!o.compression.empty()) pp["compression.type"] = o.compression;
  if (!o.acks.empty()) pp["acks"] = o.acks;
  if (o.sync) pp["linger.ms"] = "0";
  if (!o.transactional_id.empty()) pp["transactional.id"] = o.transactional_id;
  for (auto& [k, v] : pp)
    if (auto r = cfg.set(k, v); !r) return fail(tool, r.err().message);
  if (auto r = cfg.validate(); !r) return fail(tool, r.err().message);

  const bool parse_key = truthy(props.value(), "parse.key");
  const std::string key_sep = prop(props.value(), "key.separator", "\t");
  const bool parse_headers = truthy(props.value(), "parse.headers");
  const std::string headers_delim = prop(props.value(), "headers.delimiter", "\t");
  const std::string headers_sep = prop(props.value(), "headers.separator", ",");
  const std::string headers_kv = prop(props.value(), "headers.key.separator", ":");
  const bool ignore_error = truthy(props.value(), "ignore.error");
  const std::string null_marker = prop(props.value(), "null.marker", "");

  // Fail fast, with one line, on an unreachable cluster or missing topic.
  client::producer producer(cfg);
  if (auto parts = producer.partitions_for(o.topic); !parts) return fail(tool, parts.err().message);
  // With a transactional id the whole input is one transaction, committed at
  // the end of input: a reader with isolation.level=read_committed sees all
  // of it or, if this process dies first, none.
  const bool transactional = cfg.transactional_id.has_value();
  if (transactional) {
    if (auto r = producer.init_transactions(); !r) return fail(tool, r.err().message);
    if (auto r = producer.begin_transaction(); !r) return fail(tool, r.err().message);
  }

  std::atomic<int64_t> failed{0};
  std::atomic<bool> printed{false};
  auto on_done = [&](const client::record_metadata& md) {
    if (!md.ok()) {
      ++failed;
      if (!printed.exchange(true))
        std::fprintf(stderr, "gregor %s: cannot deliver to %s: %s\n", tool, o.topic.c_str(),
                     md.describe_error().c_str());
    }
  };
  std::string line;
  int64_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    client::producer_record r;
    r.topic = o.topic;
    r.partition = o.partition;
    std::string rest = line;
    if (parse_headers) {
      auto d = rest.find(headers_delim);
      if (d == std::string::npos) {
        if (ignore_error) continue;
        return fail(tool, fmt::format("line {}: no headers delimiter", line_no));
      }
      std::string hs = rest.substr(0, d);
      rest = rest.substr(d + headers_delim.size());
      size_t start = 0;
      while (start <= hs.size() && !hs.empty()) {
        auto comma = hs.find(headers_sep, start);
        std::string h = hs.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto kv = h.find(headers_kv);
        if (kv == std::string::npos) r.headers.push_back({h, std::nullopt});
        else {
          std::string v = h.substr(kv + headers_kv.size());
          r.headers.push_back({h.substr(0, kv), bytes(v.begin(), v.end())});
        }
        if (comma == std::string::npos) break;
        start = comma + headers_sep.size();
      }
    }
    if (parse_key) {
      auto s = rest.find(key_sep);
      if (s == std::string::npos) {
        if (ignore_error) {
          r.value = bytes(rest.begin(), rest.end());
        } else {
          return fail(tool, fmt::format("line {}: no key separator '{}' found (parse.key=true)", line_no, key_sep));
        }
      } else {
        std::string k = rest.substr(0, s), v = rest.substr(s + key_sep.size());
        if (null_marker.empty() || k != null_marker) r.key = bytes(k.begin(), k.end());
        if (null_marker.empty() || v != null_marker) r.value = bytes(v.begin(), v.end());
      }
    } else if (null_marker.empty() || rest != null_marker) {
      r.value = bytes(rest.begin(), rest.end());
    }
    auto f = producer.send(std::move(r), on_done);
    if (o.sync) f.wait();
    if (failed > 0 && !ignore_error) break;
  }
  if (transactional) {
    auto r = failed > 0 ? producer.abort_transaction() : producer.commit_transaction();
    if (!r) return fail(tool, r.err().message);
    if (failed > 0) std::fprintf(stderr, "gregor %s: the transaction was aborted\n", tool);
  }
  producer.close();
  return failed > 0 ? 1 : 0;
}

// ---- console-consumer -----------------------------------------------------

struct consumer_opts {
  std::string bootstrap;
  std::string topic;
  std::string group;
  bool from_beginning = false;
  int64_t max_messages = -1;
  int64_t timeout_ms = -1;
  std::optional<int32_t> partition;
  std::string offset = "latest";
  std::vector<std::string> properties;
  std::vector<std::string> consumer_properties;
  std::string consumer_config;
  std::string isolation_level;
  bool skip_message_on_error = false;
};

int run_console_consumer(const consumer_opts& o) {
  const char* tool = "console-consumer";
  install_stop_signals();
  auto props = parse_pairs(o.properties, false);
  if (!props) return fail(tool, props.err().message);
  const bool print_key = truthy(props.value(), "print.key");
  const bool print_ts = truthy(props.value(), "print.timestamp");
  const bool print_headers = truthy(props.value(), "print.headers");
  const bool print_partition = truthy(props.value(), "print.partition");
  const bool print_offset = truthy(props.value(), "print.offset");
  const bool print_value = prop(props.value(), "print.value", "true") == "true";
  const std::string key_sep = prop(props.value(), "key.separator", "\t");
  const std::string line_sep = prop(props.value(), "line.separator", "\n");
  const std::string headers_sep = prop(props.value(), "headers.separator", ",");
  const std::string headers_kv = prop(props.value(), "headers.key.separator", ":");
  const std::string null_literal = prop(props.value(), "null.literal", "null");

  client::consumer_config cfg;
  cfg.client_id = "console-consumer";
  cfg.request_timeout_ms = 15000;
  cfg.auto_offset_reset = o.from_beginning ? "earliest" : "latest";
  cfg.group_id = o.group;
  std::map<std::string, std::string> cp;
  if (!o.consumer_config.empty()) {
    auto f = read_properties_file(o.consumer_config);
    if (!f) return fail(tool, f.err().message);
    cp = f.value();
  }
  auto cmd = parse_pairs(o.consumer_properties, false);
  if (!cmd) return fail(tool, cmd.err().message);
  for (auto& [k, v] : cmd.value()) cp[k] = v;
  cp["bootstrap.servers"] = o.bootstrap;
  if (!o.isolation_level.empty()) cp["isolation.level"] = o.isolation_level;
  for (auto& [k, v] : cp)
    if (auto r = cfg.set(k, v); !r) return fail(tool, r.err().message);
  if (o.partition && !o.group.empty()) return fail(tool, "--partition cannot be used with --group");
  if (o.partition && o.from_beginning && o.offset != "latest")
    return fail(tool, "--from-beginning cannot be used with --offset");

  // Check the cluster and the topic first, so errors are one clear line.
  client::admin_config acfg;
  static_cast<client::common_config&>(acfg) = cfg;
  client::admin_client admin(acfg);
  auto d = admin.describe_topics({o.topic});
  if (!d) return fail(tool, d.err().message);
  if (d.value()[0].error_code != 0)
    return fail(tool, fmt::format("topic '{}' does not exist ({})", o.topic,
                                  client::describe_error(d.value()[0].error_code)));

  client::consumer consumer(cfg);
  if (o.partition) {
    client::topic_partition tp{o.topic, *o.partition};
    consumer.assign({tp});
    if (o.from_beginning || o.offset == "earliest") {
      if (auto r = consumer.seek_to_beginning({tp}); !r) return fail(tool, r.err().message);
    } else if (o.offset == "latest") {
      if (auto r = consumer.seek_to_end({tp}); !r) return fail(tool, r.err().message);
    } else {
      try {
        consumer.seek(tp, std::stoll(o.offset));
      } catch (...) {
        return fail(tool, fmt::format("bad --offset '{}': expected a number, earliest or latest", o.offset));
      }
    }
  } else if (!o.group.empty()) {
    if (auto r = consumer.subscribe({o.topic}); !r) return fail(tool, r.err().message);
  } else {
    // No group: read every partition without committing (as a throwaway group would).
    std::vector<client::topic_partition> tps;
    for (auto& p : d.value()[0].partitions) tps.push_back({o.topic, p.partition});
    consumer.assign(tps);
    auto r = o.from_beginning ? consumer.seek_to_beginning(tps) : consumer.seek_to_end(tps);
    if (!r) return fail(tool, r.err().message);
  }
  int64_t count = 0;
  int64_t last_record_ms = client::sys::monotonic_ms();
  int rc = 0;
  while (!stop_requested() && (o.max_messages < 0 || count < o.max_messages)) {
    auto recs = consumer.poll(200);
    if (!recs) {
      rc = fail(tool, recs.err().message);
      break;
    }
    if (recs.value().empty()) {
      if (o.timeout_ms >= 0 && client::sys::monotonic_ms() - last_record_ms >= o.timeout_ms) break;
      continue;
    }
    last_record_ms = client::sys::monotonic_ms();
    std::string out;
    for (auto& r : recs.value()) {
      if (o.max_messages >= 0 && count >= o.max_messages) {
        consumer.seek({r.topic, r.partition}, r.offset);  // do not commit past what we printed
        continue;
      }
      std::vector<std::string> fields;
      if (print_ts)
        fields.push_back(fmt::format("{}:{}",
                                     r.timestamp_type == protocol::timestamp_type::log_append_time ? "LogAppendTime"
                                                                                                    : "CreateTime",
                                     r.timestamp));
      if (print_partition) fields.push_back(fmt::format("Partition:{}", r.partition));
      if (print_offset) fields.push_back(fmt::format("Offset:{}", r.offset));
      if (print_headers) {
        std::string h;
        for (size_t i = 0; i < r.headers.size(); ++i)
          h += (i ? headers_sep : "") + r.headers[i].key + headers_kv +
               (r.headers[i].value ? std::string(as_string(*r.headers[i].value)) : null_literal);
        fields.push_back(r.headers.empty() ? "NO_HEADERS" : h);
      }
      if (print_key) fields.push_back(r.key ? std::string(as_string(*r.key)) : null_literal);
      if (print_value) fields.push_back(r.value ? std::string(as_string(*r.value)) : null_literal);
      for (size_t i = 0; i < fields.size(); ++i) out += (i ? key_sep : "") + fields[i];
      out += line_sep;
      ++count;
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  consumer.close();
  std::fprintf(stderr, "Processed a total of %lld messages\n", static_cast<long long>(count));
  return rc;
}

}  // namespace

void register_console_producer(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<producer_opts>();
  auto* sub = app.add_subcommand("console-producer", "Produce lines from stdin (kafka-console-producer)");
  sub->add_option("--bootstrap-server,--broker-list", o->bootstrap, "host:port of a broker")->required();
  sub->add_option("--topic", o->topic, "Topic to produce to")->required();
  sub->add_option("--property", o->properties,
                  "parse.key=true, key.separator=:, parse.headers=true, ignore.error=true, null.marker=X");
  sub->add_option("--producer-property", o->producer_properties, "producer config k=v (repeatable)");
  sub->add_option("--producer.config", o->producer_config, "producer config file");
  sub->add_option("--compression-codec", o->compression, "none, gzip, snappy, lz4 or zstd");
  sub->add_option("--request-required-acks", o->acks, "0, 1 or all");
  sub->add_option("--partition", o->partition, "Send every record to this partition");
  sub->add_flag("--sync", o->sync, "Wait for each record to be acknowledged");
  sub->add_option("--transactional-id", o->transactional_id,
                  "Send the whole input as one transaction with this transactional.id, committed at its end");
  sub->callback([o, &exit_code] { exit_code = run_console_producer(*o); });
}

void register_console_consumer(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<consumer_opts>();
  auto* sub = app.add_subcommand("console-consumer", "Print records to stdout (kafka-console-consumer)");
  sub->add_option("--bootstrap-server", o->bootstrap, "host:port of a broker")->required();
  sub->add_option("--topic", o->topic, "Topic to read")->required();
  sub->add_option("--group", o->group, "Consumer group (subscribe and commit)");
  sub->add_flag("--from-beginning", o->from_beginning, "Start at the earliest offset when there is no committed one");
  sub->add_option("--max-messages", o->max_messages, "Exit after this many records");
  sub->add_option("--timeout-ms", o->timeout_ms, "Exit when no record arrived for this long");
  sub->add_option("--partition", o->partition, "Read only this partition (no group)");
  sub->add_option("--offset", o->offset, "With --partition: earliest, latest or an offset");
  sub->add_option("--property", o->properties,
                  "print.key, print.timestamp, print.headers, print.partition, print.offset, print.value, "
                  "key.separator, line.separator, null.literal");
  sub->add_option("--consumer-property", o->consumer_properties, "consumer config k=v (repeatable)");
  sub->add_option("--isolation-level", o->isolation_level,
                  "read_committed: only committed transactions' records; read_uncommitted (the default): all");
  sub->add_option("--consumer.config", o->consumer_config, "consumer config file");
  sub->callback([o, &exit_code] { exit_code = run_console_consumer(*o); });
}

}  // namespace gregor::cli
