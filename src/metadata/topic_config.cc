#include "metadata/topic_config.h"

#include <charconv>
#include <sstream>

namespace gregor::metadata {

const std::vector<topic_config_def>& topic_config_defs() {
  using t = config_type;
  constexpr double kLongMax = 9.2233720368547758e18;
  static const std::vector<topic_config_def> defs = {
      {"cleanup.policy", "log.cleanup.policy", t::list, "delete", {"delete", "compact"}, -1, -1,
       "delete: remove old segments by retention.ms/bytes; compact: keep the latest record of each key."},
      {"compression.type", "compression.type", t::string, "producer",
       {"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}, -1, -1, "Final compression type of the topic."},
      {"delete.retention.ms", "log.cleaner.delete.retention.ms", t::int64, "86400000", {}, 0, kLongMax,
       "How long tombstones are kept on compacted topics."},
      {"file.delete.delay.ms", "log.segment.delete.delay.ms", t::int64, "60000", {}, 0, kLongMax,
       "Time to wait before deleting a file."},
      {"flush.messages", "log.flush.interval.messages", t::int64, "9223372036854775807", {}, 1, kLongMax,
       "Messages between forced fsyncs."},
      {"flush.ms", "log.flush.interval.ms", t::int64, "9223372036854775807", {}, 0, kLongMax,
       "Milliseconds between forced fsyncs."},
      {"index.interval.bytes", "log.index.interval.bytes", t::int32, "4096", {}, 0, 2147483647,
       "Bytes between offset index entries."},
      {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", t::int64, "9223372036854775807", {}, 1, kLongMax,
       "Longest time a record stays uncompacted."},
      {"max.message.bytes", "message.max.bytes", t::int32, "1048588", {}, 0, 2147483647,
       "Largest record batch size allowed."},
      {"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", t::int64, "9223372036854775807", {}, 0,
       kLongMax, "How far a CreateTime timestamp may be ahead of the broker's time."},
      {"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", t::int64, "9223372036854775807", {},
       0, kLongMax, "How far a CreateTime timestamp may be behind the broker's time."},
      {"message.timestamp.type", "log.message.timestamp.type", t::string, "CreateTime",
       {"CreateTime", "LogAppendTime"}, -1, -1, "CreateTime or LogAppendTime."},
      {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", t::dbl, "0.5", {}, 0, 1,
       "Dirty share of the log at which compaction starts."},
      {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", t::int64, "0", {}, 0, kLongMax,
       "Shortest time a record stays uncompacted."},
      {"min.insync.replicas", "min.insync.replicas", t::int32, "1", {}, 1, 2147483647,
       "Replicas that must acknowledge acks=all."},
      {"preallocate", "log.preallocate", t::boolean, "false", {}, -1, -1, "Preallocate segment files."},
      {"retention.bytes", "log.retention.bytes", t::int64, "-1", {}, -kLongMax, kLongMax,
       "Size to keep per partition; -1 for no limit."},
      {"retention.ms", "log.retention.ms", t::int64, "604800000", {}, -1, kLongMax,
       "Time to keep a log segment; -1 for no limit."},
      {"segment.bytes", "log.segment.bytes", t::int32, "1073741824", {}, 14, 2147483647, "Segment file size."},
      {"segment.index.bytes", "log.index.size.max.bytes", t::int32, "10485760", {}, 4, 2147483647,
       "Offset index file size."},
      {"segment.jitter.ms", "log.roll.jitter.ms", t::int64, "0", {}, 0, kLongMax, "Random jitter of segment.ms."},
      {"segment.ms", "log.roll.ms", t::int64, "604800000", {}, 1, kLongMax, "Age at which a segment is rolled."},
      {"unclean.leader.election.enable", "unclean.leader.election.enable", t::boolean, "false", {}, -1, -1,
       "Allow out-of-sync replicas to become leader."},
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
  auto range_problem = [&](double v) -> std::optional<std::string> {
    auto num = [](double d) {
      std::string t = std::to_string(d);
      if (d == static_cast<double>(static_cast<int64_t>(d))) t = std::to_string(static_cast<int64_t>(d));
      return t;
    };
    if (def->min_value > def->max_value) return std::nullopt;  // no range
    if (v < def->min_value && def->max_value >= 2147483647)
      return "Invalid value " + value + " for configuration " + name + ": Value must be at least " + num(def->min_value);
    if (v < def->min_value || v > def->max_value)
      return "Invalid value " + value + " for configuration " + name + ": Value must be in the range [" +
             num(def->min_value) + ", " + num(def->max_value) + "]";
    return std::nullopt;
  };
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
      if (auto why = range_problem(static_cast<double>(std::stoll(value)))) return why;
      break;
    case config_type::int64:
      if (!int_ok(int64_t{})) return "Invalid value " + value + " for configuration " + name + ": Not a number of type LONG";
      if (auto why = range_problem(static_cast<double>(std::stoll(value)))) return why;
      break;
    case config_type::dbl: {
      try {
        size_t used = 0;
        std::stod(value, &used);
        if (used != value.size()) throw std::invalid_argument("trailing");
      } catch (...) {
        return "Invalid value " + value + " for configuration " + name + ": Not a number of type DOUBLE";
      }
      if (auto why = range_problem(std::stod(value))) return why;
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
      if (split_config_list(value).empty()) return "Invalid value " + value + " for configuration " + name + ": empty list";
      for (auto& item : split_config_list(value)) {
        bool found = false;
        for (auto& v : def->valid_values) found |= v == item;
        if (!found) return "Invalid value " + value + " for configuration " + name;
      }
      break;
    }
  }
  return std::nullopt;
}

std::vector<std::string> split_config_list(const std::string& value) {
  std::vector<std::string> out;
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::optional<std::string> validate_topic_configs(const std::map<std::string, std::string>& configs) {
  for (auto& [k, v] : configs)
    if (auto why = validate_topic_config(k, v)) return why;
  auto min_lag = configs.find("min.compaction.lag.ms");
  auto max_lag = configs.find("max.compaction.lag.ms");
  if (min_lag != configs.end() && max_lag != configs.end() && std::stoll(min_lag->second) > std::stoll(max_lag->second))
    return "conflict topic config setting min.compaction.lag.ms (" + min_lag->second + ") > max.compaction.lag.ms (" +
           max_lag->second + ")";
  return std::nullopt;
}

int8_t describe_config_type(config_type t) {
  // Kafka's ConfigType: UNKNOWN 0, BOOLEAN 1, STRING 2, INT 3, SHORT 4, LONG 5, DOUBLE 6, LIST 7, CLASS 8, PASSWORD 9.
  switch (t) {
    case config_type::boolean: return 1;
    case config_type::string: return 2;
    case config_type::int32: return 3;
    case config_type::int64: return 5;
    case config_type::dbl: return 6;
    case config_type::list: return 7;
  }
  return 0;
}

}  // namespace gregor::metadata
