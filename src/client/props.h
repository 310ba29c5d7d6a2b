#pragma once
// Parsing Kafka-style string properties ("linger.ms" = "5") into configs.
#include <charconv>
#include <string>

#include <fmt/format.h>

#include "base/result.h"
#include "client/cluster.h"

namespace gregor::client {

template <class T>
result<void> parse_int(const std::string& key, const std::string& value, T& out, int64_t min) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v < min)
    return error{fmt::format("bad value '{}' for {}: expected an integer >= {}", value, key, min)};
  out = static_cast<T>(v);
  return ok();
}

inline result<void> parse_bool(const std::string& key, const std::string& value, bool& out) {
  if (value == "true") out = true;
  else if (value == "false") out = false;
  else return error{fmt::format("bad value '{}' for {}: expected true or false", value, key)};
  return ok();
}

// The properties every client has. Returns error "unknown" for others.
inline result<void> set_common(common_config& c, const std::string& key, const std::string& value) {
  if (key == "bootstrap.servers") {
    auto b = parse_bootstrap(value);
    if (!b) return b.err();
    c.bootstrap_servers = value;
    return ok();
  }
  if (key == "client.id") {
    c.client_id = value;
    return ok();
  }
  if (key == "request.timeout.ms") return parse_int(key, value, c.request_timeout_ms, 1);
  if (key == "socket.connection.setup.timeout.ms") return parse_int(key, value, c.socket_connection_setup_timeout_ms, 1);
  if (key == "retry.backoff.ms") return parse_int(key, value, c.retry_backoff_ms, 0);
  if (key == "metadata.max.age.ms") return parse_int(key, value, c.metadata_max_age_ms, 0);
  return error{"unknown"};
}

}  // namespace gregor::client
