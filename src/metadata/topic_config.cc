#include "metadata/topic_config.h"

#include <charconv>
#include <sstream>

namespace gregor::metadata {

const std::vector<topic_config_def>& topic_config_defs() {
  using t = config_type;
  static const std::vector<topic_config_def> defs = {
      {"cleanup.policy", "log.cleanup.policy", t::list, "delete", {"delete", "compact"}},
      {"compression.type", "compression.type", t::string, "producer",
       {"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}},
      {"delete.retention.ms", "log.cleaner.delete.retention.ms", t::int64, "86400000", {}},
      {"file.delete.delay.ms", "log.segment.delete.delay.ms", t::int64, "60000", {}},
      {"flush.messages", "log.flush.interval.messages", t::int64, "9223372036854775807", {}},
      {"flush.ms", "log.flush.interval.ms", t::int64, "9223372036854775807", {}},
      {"index.interval.bytes", "log.index.interval.bytes", t::int32, "4096", {}},
      {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", t::int64, "9223372036854775807", {}},
      {"max.message.bytes", "message.max.bytes", t::int32, "1048588", {}},
      {"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", t::int64, "9223372036854775807", {}},
      {"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", t::int64, "9223372036854775807", {}},
      {"message.timestamp.type", "log.message.timestamp.type", t::string, "CreateTime",
       {"CreateTime", "LogAppendTime"}},
      {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", t::dbl, "0.5", {}},
      {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", t::int64, "0", {}},
      {"min.insync.replicas", "min.insync.replicas", t::int32, "1", {}},
      {"preallocate", "log.preallocate", t::boolean, "false", {}},
      {"retention.bytes", "log.retention.bytes", t::int64, "-1", {}},
      {"retention.ms", "log.retention.ms", t::int64, "604800000", {}},
      {"segment.bytes", "log.segment.bytes", t::int32, "1073741824", {}},
      {"segment.index.bytes", "log.index.size.max.bytes", t::int32, "10485760", {}},
      {"segment.jitter.ms", "log.roll.jitter.ms", t::int64, "0", {}},
      {"segment.ms", "log.roll.ms", t::int64, "604800000", {}},
      {"unclean.leader.election.enable", "unclean.leader.election.enable", t::boolean, "false", {}},
  };
  return defs;
}

const topic_config_def* find_topic_config(const std::string& name) {
  for (auto& d : topic_config_defs())
    if (d.name == name) return &d;
  return nullptr;
}

std::optional<std::string> validate_topic_config(const std::string& name, const std::string& value) {
  auto* def = find_topic_config(name);
  if (!def) return "Unknown topic config name: " + name;
  auto int_ok = [&](auto dummy) {
    decltype(dummy) v{};
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    return ec == std::errc() && p == value.data() + value.size() && !value.empty();
  };
  switch (def->type) {
    case config_type::boolean:
      if (value != "true" && value != "false")
        return "Invalid value " + value + " for configuration " + name + ": Expected value to be either true or false";
      break;
    case config_type::int32:
      if (!int_ok(int32_t{})) return "Invalid value " + value + " for configuration " + name + ": Not a number of type INT";
      break;
    case config_type::int64:
      if (!int_ok(int64_t{})) return "Invalid value " + value + " for configuration " + name + ": Not a number of type LONG";
      break;
    case config_type::dbl: {
      try {
        size_t used = 0;
        std::stod(value, &used);
        if (used != value.size()) throw std::invalid_argument("trailing");
      } catch (...) {
        return "Invalid value " + value + " for configuration " + name + ": Not a number of type DOUBLE";
      }
      break;
    }
    case config_type::string:
      if (!def->valid_values.empty()) {
        bool found = false;
        for (auto& v : def->valid_values) found |= v == value;
        if (!found) return "Invalid value " + value + " for configuration " + name;
      }
      break;
    case config_type::list: {
      std::stringstream ss(value);
      std::string item;
      while (std::getline(ss, item, ',')) {
        auto b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
        item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
        bool found = false;
        for (auto& v : def->valid_values) found |= v == item;
        if (!found) return "Invalid value " + value + " for configuration " + name;
      }
      break;
    }
  }
  return std::nullopt;
}

}  // namespace gregor::metadata
