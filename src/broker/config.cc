#include "broker/config.h"

#include "metadata/topic_config.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <set>
#include <sstream>

namespace gregor::broker {
namespace {

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

template <class T>
result<T> parse_int(const std::string& key, const std::string& v) {
  T out{};
  auto t = trim(v);
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  if (ec != std::errc() || p != t.data() + t.size() || t.empty())
    return error{"invalid value '" + v + "' for " + key + ": expected an integer"};
  return out;
}

result<bool> parse_bool(const std::string& key, const std::string& v) {
  auto t = trim(v);
  if (t == "true") return true;
  if (t == "false") return false;
  return error{"invalid value '" + v + "' for " + key + ": expected true or false"};
}

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ','))
    if (auto t = trim(item); !t.empty()) out.push_back(t);
  return out;
}

}  // namespace

const std::vector<config_key_info>& broker_config_keys() {
  static const std::vector<config_key_info> keys = {
      {"node.id", "1", true, "The node id of this broker."},
      {"process.roles", "", false,
       "Roles of this node in a KRaft cluster: broker, controller, or broker,controller. Not set: a single node "
       "that is both, and a metadata quorum of one."},
      {"controller.quorum.voters", "", true, "The metadata quorum's voters, as id@host:port, comma-separated."},
      {"controller.quorum.bootstrap.servers", "", true,
       "host:port of controllers to find the quorum through, when controller.quorum.voters is not set."},
      {"controller.listener.names", "", true, "Names of the listeners the controller serves the quorum on."},
      {"inter.broker.listener.name", "PLAINTEXT", true, "The listener brokers use to reach each other."},
      {"listener.security.protocol.map",
       "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT", true,
       "Security protocol of each listener name (Gregor serves PLAINTEXT)."},
      {"broker.rack", "", false, "Rack of this broker, for rack-aware replica placement."},
      {"cluster.id", "", false,
       "Cluster id to format a new node's log dirs with (22-character base64 UUID); every node of a cluster "
       "needs the same one. Not set: a single node makes a random one."},
      {"broker.session.timeout.ms", "9000", true, "A broker that has not heartbeated for this long is fenced."},
      {"broker.heartbeat.interval.ms", "2000", true, "How often a broker heartbeats to the controller."},
      {"initial.broker.registration.timeout.ms", "60000", true,
       "How long a starting broker tries to register with the controller before it gives up."},
      {"controller.quorum.election.timeout.ms", "1000", true,
       "Time without a leader after which a voter starts an election."},
      {"controller.quorum.election.backoff.max.ms", "1000", true, "Longest wait before a new election."},
      {"controller.quorum.fetch.timeout.ms", "2000", true,
       "Time without a successful fetch from the leader after which a voter starts an election."},
      {"controller.quorum.request.timeout.ms", "2000", true, "Timeout of requests between quorum members."},
      {"controller.quorum.retry.backoff.ms", "20", true, "Wait before retrying a failed quorum request."},
      {"metadata.log.dir", "", false, "Where the metadata log lives; defaults to the first of log.dirs."},
      {"metadata.log.max.record.bytes.between.snapshots", "20971520", true,
       "Bytes of new metadata records after which a snapshot of the metadata image is written."},
      {"metadata.log.max.snapshot.interval.ms", "3600000", true,
       "Longest time between snapshots of the metadata image, if anything changed."},
      {"auto.leader.rebalance.enable", "true", true, "Move leadership back to preferred replicas when unbalanced."},
      {"leader.imbalance.check.interval.seconds", "300", true, "How often leader balance is checked."},
      {"leader.imbalance.per.broker.percentage", "10", true,
       "Share of a broker's partitions led by others above which preferred leaders are elected."},
      {"listeners", "PLAINTEXT://:9092", true, "Comma-separated NAME://host:port to listen on."},
      {"advertised.listeners", "", false, "Listeners to publish to clients; defaults to listeners."},
      {"log.dirs", "/tmp/kafka-logs", true, "Comma-separated data directories."},
      {"log.dir", "/tmp/kafka-logs", true, "Data directory, used when log.dirs is not set."},
      {"num.partitions", "1", true, "Default partition count for new topics."},
      {"default.replication.factor", "1", true, "Default replication factor for new topics."},
      {"auto.create.topics.enable", "true", true, "Create topics on first metadata request."},
      {"delete.topic.enable", "true", true, "Allow DeleteTopics."},
      {"message.max.bytes", "1048588", true, "Largest record batch size allowed."},
      {"socket.request.max.bytes", "104857600", true, "Largest request frame accepted."},
      {"log.segment.bytes", "1073741824", true, "Size at which a log segment is rolled."},
      {"log.roll.hours", "168", true, "Age at which a log segment is rolled."},
      {"log.roll.ms", "", false, "Age at which a log segment is rolled (wins over hours)."},
      {"log.retention.hours", "168", true, "Time to keep a log segment."},
      {"log.retention.minutes", "", false, "Time to keep a log segment (wins over hours)."},
      {"log.retention.ms", "", false, "Time to keep a log segment (wins over minutes)."},
      {"log.retention.bytes", "-1", true, "Size to keep per partition; -1 for no limit."},
      {"log.retention.check.interval.ms", "300000", true, "How often retention is checked."},
      {"producer.id.expiration.ms", "86400000", true, "Time a partition keeps an idle idempotent producer's state."},
      {"producer.id.expiration.check.interval.ms", "600000", true, "How often expired producer ids are removed."},
      {"log.flush.interval.messages", "9223372036854775807", true, "Messages between fsyncs."},
      {"log.flush.interval.ms", "", false, "Milliseconds between fsyncs."},
      {"log.index.interval.bytes", "4096", true, "Bytes between offset index entries."},
      {"log.index.size.max.bytes", "10485760", true, "Largest offset index file."},
      {"log.max.open.files", "10000", true,
       "Gregor's: segment files (log and index) held open at most; idle ones are closed and reopened on use. "
       "0: no bound. Must fit, with sockets, in the open-files limit (ulimit -n)."},
      {"log.cleanup.policy", "delete", true, "delete, compact or both."},
      {"log.message.timestamp.type", "CreateTime", true, "CreateTime or LogAppendTime."},
      {"log.message.timestamp.before.max.ms", "9223372036854775807", true,
       "How far a CreateTime timestamp may be behind the broker's time (else INVALID_TIMESTAMP)."},
      {"log.message.timestamp.after.max.ms", "9223372036854775807", true,
       "How far a CreateTime timestamp may be ahead of the broker's time (else INVALID_TIMESTAMP)."},
      {"log.cleaner.enable", "true", true, "Run the log cleaner for compacted topics."},
      {"log.cleaner.threads", "1", true, "Cleaner threads; Gregor cleans on each partition's shard."},
      {"log.cleaner.delete.retention.ms", "86400000", true, "How long tombstones are kept on compacted topics."},
      {"log.cleaner.min.cleanable.ratio", "0.5", true, "Dirty share of a log at which it is compacted."},
      {"log.cleaner.min.compaction.lag.ms", "0", true, "Shortest time a record stays uncompacted."},
      {"log.cleaner.max.compaction.lag.ms", "9223372036854775807", true, "Longest time a record stays uncompacted."},
      {"log.cleaner.backoff.ms", "15000", true, "Sleep between checks for logs to compact."},
      {"log.cleaner.dedupe.buffer.size", "134217728", true, "Memory for the key map of one compaction."},
      {"log.cleaner.io.buffer.size", "524288", true, "I/O buffer of the cleaner."},
      {"log.segment.delete.delay.ms", "60000", true, "Time to wait before deleting a file."},
      {"log.preallocate", "false", true, "Preallocate segment files."},
      {"log.roll.jitter.hours", "0", true, "Random jitter of the segment roll time."},
      {"log.roll.jitter.ms", "", false, "Random jitter of the segment roll time (wins over hours)."},
      {"compression.type", "producer", true, "Final compression type of topics; producer keeps the producer's."},
      {"unclean.leader.election.enable", "false", true, "Allow out-of-sync replicas to become leader."},
      {"min.insync.replicas", "1", true, "Replicas that must acknowledge acks=all."},
      {"replica.lag.time.max.ms", "30000", true,
       "A follower that has not caught up with its leader for this long leaves the ISR."},
      {"replica.fetch.wait.max.ms", "500", true, "How long a follower's fetch waits at the leader for new records."},
      {"replica.fetch.min.bytes", "1", true, "Bytes a follower's fetch waits for at the leader."},
      {"replica.fetch.max.bytes", "1048576", true, "Bytes a follower fetches per partition (a larger batch still comes whole)."},
      {"replica.fetch.response.max.bytes", "10485760", true, "Bytes a follower fetches per request."},
      {"replica.fetch.backoff.ms", "1000", true, "A follower's pause after a failed fetch."},
      {"replica.socket.timeout.ms", "30000", true, "How long a follower waits for its leader's answer."},
      {"replica.high.watermark.checkpoint.interval.ms", "5000", true,
       "How often each log dir's replication-offset-checkpoint (the high watermarks) is written."},
      {"replica.selector.class", "", false,
       "Which replica a consumer with client.rack reads from (KIP-392): "
       "org.apache.kafka.common.replica.RackAwareReplicaSelector, or empty for the leader."},
      {"num.replica.fetchers", "1", true, "Fetchers per source broker; Gregor runs one per shard and source broker."},
      {"num.shards", "0", true, "Event loops (threads), each owning partitions; 0 = one per core."},
      {"offsets.topic.num.partitions", "50", true, "Partitions of __consumer_offsets."},
      {"offsets.topic.replication.factor", "3", true,
       "Replication factor of __consumer_offsets (capped at the live brokers when it is created)."},
      {"offsets.retention.minutes", "10080", true, "How long offsets of empty groups are kept."},
      {"offsets.retention.check.interval.ms", "600000", true, "How often expired offsets are looked for."},
      {"offset.metadata.max.bytes", "4096", true, "Largest metadata string of a committed offset."},
      {"group.initial.rebalance.delay.ms", "3000", true, "Delay of the first rebalance of a new group."},
      {"group.min.session.timeout.ms", "6000", true, "Smallest session timeout a member may ask for."},
      {"group.max.session.timeout.ms", "1800000", true, "Largest session timeout a member may ask for."},
      {"transaction.state.log.num.partitions", "50", true, "Partitions of __transaction_state."},
      {"transaction.state.log.replication.factor", "3", true,
       "Replication factor of __transaction_state (capped at the live brokers when it is created)."},
      {"transaction.state.log.min.isr", "2", true,
       "min.insync.replicas of __transaction_state (capped at its replication factor)."},
      {"transaction.state.log.segment.bytes", "104857600", true, "Segment size of __transaction_state."},
      {"transaction.max.timeout.ms", "900000", true, "Largest transaction timeout a producer may ask for."},
      {"transactional.id.expiration.ms", "604800000", true,
       "Time a transactional id with no transaction open is kept after its last update; then it is forgotten "
       "(a tombstone in __transaction_state) and its next InitProducerId gets a new producer id."},
      {"transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000", true,
       "How often transactions older than their timeout are looked for and aborted."},
      {"transaction.remove.expired.transaction.cleanup.interval.ms", "3600000", true,
       "How often transactional ids idle longer than transactional.id.expiration.ms are looked for."},
      {"log.level", "info", true, "Gregor's log level: trace, debug, info, warn, error."},
  };
  return keys;
}

result<std::map<std::string, std::string>> parse_properties(const std::string& text) {
  std::map<std::string, std::string> out;
  std::stringstream ss(text);
  std::string line, pending;
  int line_no = 0;
  while (std::getline(ss, line)) {
    ++line_no;
    if (!pending.empty()) {
      line = pending + trim(line);
      pending.clear();
    }
    auto t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == '!') continue;
    if (t.back() == '\\') {
      pending = t.substr(0, t.size() - 1);
      continue;
    }
    auto pos = t.find_first_of("=:");
    if (pos == std::string::npos) return error{"line " + std::to_string(line_no) + ": expected key=value, got '" + t + "'"};
    out[trim(t.substr(0, pos))] = trim(t.substr(pos + 1));
  }
  return out;
}

result<std::vector<listener_endpoint>> parse_listeners(const std::string& text) {
  std::vector<listener_endpoint> out;
  for (auto& item : split_list(text)) {
    auto sep = item.find("://");
    if (sep == std::string::npos) return error{"invalid listener '" + item + "': expected NAME://host:port"};
    listener_endpoint l;
    l.name = item.substr(0, sep);
    auto hostport = item.substr(sep + 3);
    auto colon = hostport.rfind(':');
    if (colon == std::string::npos) return error{"invalid listener '" + item + "': missing :port"};
    l.host = hostport.substr(0, colon);
    if (l.host.size() >= 2 && l.host.front() == '[' && l.host.back() == ']') l.host = l.host.substr(1, l.host.size() - 2);
    auto port = parse_int<int>("listeners", hostport.substr(colon + 1));
    if (!port || port.value() < 0 || port.value() > 65535) return error{"invalid port in listener '" + item + "'"};
    l.port = static_cast<uint16_t>(port.value());
    out.push_back(l);
  }
  if (out.empty()) return error{"no listener given: set listeners=PLAINTEXT://host:port"};
  return out;
}

namespace {

// host:port, with [v6] hosts.
result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& key, const std::string& item) {
  auto colon = item.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return error{"invalid entry '" + item + "' in " + key + ": expected host:port"};
  std::string host = item.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto port = parse_int<int>(key, item.substr(colon + 1));
  if (!port || port.value() <= 0 || port.value() > 65535)
    return error{"invalid port in '" + item + "' of " + key};
  return std::make_pair(host, static_cast<uint16_t>(port.value()));
}

// process.roles, the quorum and the listeners by role, checked the way Kafka
// checks them, with a message that says how to fix each mistake.
template <class Has, class Get>
result<void> parse_kraft_settings(broker_config& c, const Has& has, const Get& get) {
  c.roles_given = has("process.roles");
  if (c.roles_given) {
    c.is_broker = c.is_controller = false;
    for (auto& r : split_list(get("process.roles"))) {
      if (r == "broker") c.is_broker = true;
      else if (r == "controller") c.is_controller = true;
      else return error{"invalid role '" + r + "' in process.roles: expected broker, controller or both"};
    }
    if (!c.is_broker && !c.is_controller)
      return error{"process.roles is empty: set it to broker, controller or broker,controller"};
  }
  for (auto& item : split_list(get("controller.quorum.voters"))) {
    auto at = item.find('@');
    if (at == std::string::npos)
      return error{"invalid voter '" + item + "' in controller.quorum.voters: expected id@host:port"};
    auto id = parse_int<int32_t>("controller.quorum.voters", item.substr(0, at));
    if (!id || id.value() < 0) return error{"invalid voter id in '" + item + "' of controller.quorum.voters"};
    auto hp = parse_host_port("controller.quorum.voters", item.substr(at + 1));
    if (!hp) return hp.err();
    for (auto& v : c.quorum_voters)
      if (v.id == id.value()) return error{"voter " + item + " is listed twice in controller.quorum.voters"};
    c.quorum_voters.push_back({id.value(), hp.value().first, hp.value().second});
  }
  for (auto& item : split_list(get("controller.quorum.bootstrap.servers"))) {
    auto hp = parse_host_port("controller.quorum.bootstrap.servers", item);
    if (!hp) return hp.err();
    c.quorum_bootstrap_servers.push_back(hp.value());
  }
  c.controller_listener_names = split_list(get("controller.listener.names"));
  c.inter_broker_listener_name = get("inter.broker.listener.name");
  if (has("broker.rack") && !get("broker.rack").empty()) c.broker_rack = get("broker.rack");
  if (has("replica.selector.class")) c.replica_selector_class = get("replica.selector.class");
  if (!c.replica_selector_class.empty() && c.replica_selector_class != kRackAwareReplicaSelector)
    return error{"replica.selector.class=" + c.replica_selector_class + " is not a selector Gregor has; use " +
                 std::string(kRackAwareReplicaSelector) + " or leave it empty (consumers read from leaders)"};
  c.cluster_id = has("cluster.id") ? get("cluster.id") : "";
  c.metadata_log_dir = has("metadata.log.dir") && !get("metadata.log.dir").empty() ? get("metadata.log.dir")
                                                                                    : c.log_dirs.front();
  if (!c.cluster_id.empty()) {
    bool valid = c.cluster_id.size() == 22;
    for (char ch : c.cluster_id)
      valid = valid && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_');
    if (!valid)
      return error{"invalid cluster.id '" + c.cluster_id +
                   "': expected a 22-character base64 UUID, such as one from 'gregor storage random-uuid'"};
  }
  if (!c.roles_given) {
    if (!c.quorum_voters.empty() || !c.controller_listener_names.empty())
      return error{"controller.quorum.voters and controller.listener.names need process.roles "
                   "(broker, controller or broker,controller)"};
    return ok();
  }
  if (c.quorum_voters.empty() && c.quorum_bootstrap_servers.empty())
    return error{"process.roles is set but neither controller.quorum.voters nor "
                 "controller.quorum.bootstrap.servers is: list the quorum's controllers"};
  if (c.controller_listener_names.empty())
    return error{"controller.listener.names must be set when process.roles is set (e.g. CONTROLLER)"};
  auto bound = [&](const std::string& name) {
    for (auto& l : c.listeners)
      if (l.name == name) return true;
    return false;
  };
  bool voter = false;
  for (auto& v : c.quorum_voters) voter = voter || v.id == c.node_id;
  if (c.is_controller) {
    if (!bound(c.controller_listener_names.front()))
      return error{"the controller listener " + c.controller_listener_names.front() +
                   " (controller.listener.names) is not in listeners: add " + c.controller_listener_names.front() +
                   "://host:port to listeners"};
    if (c.quorum_voters.empty())
      return error{"process.roles contains controller, so controller.quorum.voters must list the voters (id@host:port): "
                   "Gregor's quorum has a static voter set; controller.quorum.bootstrap.servers alone serves "
                   "broker-only nodes"};
    if (!voter)
      return error{"node.id " + std::to_string(c.node_id) +
                   " must be one of controller.quorum.voters when process.roles contains controller"};
  } else {
    if (voter)
      return error{"node.id " + std::to_string(c.node_id) +
                   " is in controller.quorum.voters, so process.roles must contain controller"};
    for (auto& name : c.controller_listener_names)
      if (bound(name))
        return error{"the controller listener " + name +
                     " must not be in listeners when process.roles does not contain controller"};
  }
  if (c.is_broker) {
    bool client_listener = false;
    for (auto& l : c.listeners) client_listener = client_listener || !is_controller_listener(c, l.name);
    if (!client_listener)
      return error{"process.roles contains broker but every listener is a controller listener: add one for "
                   "clients, e.g. PLAINTEXT://host:9092"};
    for (auto& l : c.advertised_listeners)
      if (is_controller_listener(c, l.name) && c.supplied.count("advertised.listeners"))
        return error{"advertised.listeners must not contain the controller listener " + l.name};
  }
  return ok();
}

}  // namespace

bool is_controller_listener(const broker_config& c, const std::string& listener_name) {
  for (auto& n : c.controller_listener_names)
    if (n == listener_name) return true;
  return false;
}

std::vector<listener_endpoint> broker_listeners(const broker_config& c) {
  std::vector<listener_endpoint> out;
  for (auto& l : c.listeners)
    if (!is_controller_listener(c, l.name)) out.push_back(l);
  return out;
}

std::vector<listener_endpoint> controller_listeners(const broker_config& c) {
  std::vector<listener_endpoint> out;
  for (auto& l : c.listeners)
    if (is_controller_listener(c, l.name)) out.push_back(l);
  return out;
}

std::vector<listener_endpoint> advertised_broker_listeners(const broker_config& c) {
  std::vector<listener_endpoint> out;
  for (auto& l : c.advertised_listeners)
    if (!is_controller_listener(c, l.name)) out.push_back(l);
  return out;
}

result<broker_config> make_broker_config(const std::map<std::string, std::string>& props,
                                         std::vector<std::string>* warnings) {
  broker_config c;
  std::set<std::string> known;
  for (auto& k : broker_config_keys()) {
    known.insert(k.name);
    if (k.has_default) c.values[k.name] = k.default_value;
  }
  for (auto& [k, v] : props) {
    c.values[k] = v;
    c.supplied[k] = v;
    if (!known.count(k) && warnings) warnings->push_back("unknown config '" + k + "' is ignored");
  }
  auto has = [&](const std::string& k) { return c.supplied.count(k) > 0; };
  auto get = [&](const std::string& k) { return c.values.count(k) ? c.values.at(k) : std::string(); };

#define GREGOR_INT(field, type, key)                 \
  {                                                  \
    auto r = parse_int<type>(key, get(key));         \
    if (!r) return r.err();                          \
    c.field = r.value();                             \
  }
#define GREGOR_BOOL(field, key)              \
  {                                          \
    auto r = parse_bool(key, get(key));      \
    if (!r) return r.err();                  \
    c.field = r.value();                     \
  }
  GREGOR_INT(node_id, int32_t, "node.id");
  GREGOR_INT(num_partitions, int32_t, "num.partitions");
  GREGOR_INT(default_replication_factor, int16_t, "default.replication.factor");
  GREGOR_BOOL(auto_create_topics_enable, "auto.create.topics.enable");
  GREGOR_BOOL(delete_topic_enable, "delete.topic.enable");
  GREGOR_INT(message_max_bytes, int32_t, "message.max.bytes");
  GREGOR_INT(socket_request_max_bytes, int32_t, "socket.request.max.bytes");
  GREGOR_INT(log_segment_bytes, int64_t, "log.segment.bytes");
  GREGOR_INT(log_retention_bytes, int64_t, "log.retention.bytes");
  GREGOR_INT(log_retention_check_interval_ms, int64_t, "log.retention.check.interval.ms");
  GREGOR_INT(producer_id_expiration_ms, int64_t, "producer.id.expiration.ms");
  GREGOR_INT(producer_id_expiration_check_interval_ms, int64_t, "producer.id.expiration.check.interval.ms");
  GREGOR_INT(log_flush_interval_messages, int64_t, "log.flush.interval.messages");
  GREGOR_INT(log_index_interval_bytes, int32_t, "log.index.interval.bytes");
  GREGOR_INT(log_index_size_max_bytes, int32_t, "log.index.size.max.bytes");
  GREGOR_INT(log_max_open_files, int32_t, "log.max.open.files");
  if (c.log_max_open_files < 0) return error{"log.max.open.files must be >= 0, got " + get("log.max.open.files")};
  GREGOR_INT(min_insync_replicas, int32_t, "min.insync.replicas");
  GREGOR_BOOL(unclean_leader_election_enable, "unclean.leader.election.enable");
  GREGOR_INT(replica_lag_time_max_ms, int64_t, "replica.lag.time.max.ms");
  GREGOR_INT(replica_fetch_wait_max_ms, int32_t, "replica.fetch.wait.max.ms");
  GREGOR_INT(replica_fetch_min_bytes, int32_t, "replica.fetch.min.bytes");
  GREGOR_INT(replica_fetch_max_bytes, int32_t, "replica.fetch.max.bytes");
  GREGOR_INT(replica_fetch_response_max_bytes, int32_t, "replica.fetch.response.max.bytes");
  GREGOR_INT(replica_fetch_backoff_ms, int64_t, "replica.fetch.backoff.ms");
  GREGOR_INT(replica_socket_timeout_ms, int64_t, "replica.socket.timeout.ms");
  GREGOR_INT(replica_high_watermark_checkpoint_interval_ms, int64_t, "replica.high.watermark.checkpoint.interval.ms");
  GREGOR_INT(num_shards, int32_t, "num.shards");
  GREGOR_INT(offsets_topic_num_partitions, int32_t, "offsets.topic.num.partitions");
  GREGOR_INT(offsets_retention_minutes, int64_t, "offsets.retention.minutes");
  GREGOR_INT(offsets_retention_check_interval_ms, int64_t, "offsets.retention.check.interval.ms");
  GREGOR_INT(offset_metadata_max_bytes, int32_t, "offset.metadata.max.bytes");
  GREGOR_INT(group_initial_rebalance_delay_ms, int64_t, "group.initial.rebalance.delay.ms");
  GREGOR_INT(group_min_session_timeout_ms, int32_t, "group.min.session.timeout.ms");
  GREGOR_INT(group_max_session_timeout_ms, int32_t, "group.max.session.timeout.ms");
  GREGOR_INT(transaction_state_log_num_partitions, int32_t, "transaction.state.log.num.partitions");
  GREGOR_INT(transaction_state_log_replication_factor, int16_t, "transaction.state.log.replication.factor");
  GREGOR_INT(transaction_state_log_min_isr, int32_t, "transaction.state.log.min.isr");
  GREGOR_INT(transaction_state_log_segment_bytes, int32_t, "transaction.state.log.segment.bytes");
  GREGOR_INT(transaction_max_timeout_ms, int32_t, "transaction.max.timeout.ms");
  GREGOR_INT(transactional_id_expiration_ms, int64_t, "transactional.id.expiration.ms");
  GREGOR_INT(transaction_abort_timed_out_transaction_cleanup_interval_ms, int64_t,
             "transaction.abort.timed.out.transaction.cleanup.interval.ms");
  GREGOR_INT(transaction_remove_expired_transaction_cleanup_interval_ms, int64_t,
             "transaction.remove.expired.transaction.cleanup.interval.ms");
  GREGOR_INT(log_message_timestamp_before_max_ms, int64_t, "log.message.timestamp.before.max.ms");
  GREGOR_INT(log_message_timestamp_after_max_ms, int64_t, "log.message.timestamp.after.max.ms");
  GREGOR_BOOL(log_cleaner_enable, "log.cleaner.enable");
  GREGOR_INT(broker_session_timeout_ms, int64_t, "broker.session.timeout.ms");
  GREGOR_INT(broker_heartbeat_interval_ms, int64_t, "broker.heartbeat.interval.ms");
  GREGOR_INT(initial_broker_registration_timeout_ms, int64_t, "initial.broker.registration.timeout.ms");
  GREGOR_INT(quorum_election_timeout_ms, int64_t, "controller.quorum.election.timeout.ms");
  GREGOR_INT(quorum_election_backoff_max_ms, int64_t, "controller.quorum.election.backoff.max.ms");
  GREGOR_INT(quorum_fetch_timeout_ms, int64_t, "controller.quorum.fetch.timeout.ms");
  GREGOR_INT(quorum_request_timeout_ms, int64_t, "controller.quorum.request.timeout.ms");
  GREGOR_INT(quorum_retry_backoff_ms, int64_t, "controller.quorum.retry.backoff.ms");
  GREGOR_INT(metadata_log_max_record_bytes_between_snapshots, int64_t, "metadata.log.max.record.bytes.between.snapshots");
  GREGOR_INT(metadata_log_max_snapshot_interval_ms, int64_t, "metadata.log.max.snapshot.interval.ms");
  GREGOR_BOOL(auto_leader_rebalance_enable, "auto.leader.rebalance.enable");
  GREGOR_INT(leader_imbalance_check_interval_seconds, int64_t, "leader.imbalance.check.interval.seconds");
  GREGOR_INT(leader_imbalance_per_broker_percentage, int32_t, "leader.imbalance.per.broker.percentage");
  GREGOR_INT(offsets_topic_replication_factor, int16_t, "offsets.topic.replication.factor");
  GREGOR_INT(log_cleaner_delete_retention_ms, int64_t, "log.cleaner.delete.retention.ms");
  GREGOR_INT(log_cleaner_min_compaction_lag_ms, int64_t, "log.cleaner.min.compaction.lag.ms");
  GREGOR_INT(log_cleaner_max_compaction_lag_ms, int64_t, "log.cleaner.max.compaction.lag.ms");
  GREGOR_INT(log_cleaner_backoff_ms, int64_t, "log.cleaner.backoff.ms");
  GREGOR_INT(log_cleaner_dedupe_buffer_size, int64_t, "log.cleaner.dedupe.buffer.size");
  {
    auto v = trim(get("log.cleaner.min.cleanable.ratio"));
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || d < 0 || d > 1)
      return error{"invalid value '" + v + "' for log.cleaner.min.cleanable.ratio: expected a number in [0, 1]"};
    c.log_cleaner_min_cleanable_ratio = d;
  }
#undef GREGOR_INT
#undef GREGOR_BOOL

  // Time settings: ms wins over minutes wins over hours, as in Kafka.
  auto pick_ms = [&](const std::string& ms, const std::string& minutes, const std::string& hours,
                     int64_t& out) -> result<void> {
    if (has(ms) && !get(ms).empty()) {
      auto r = parse_int<int64_t>(ms, get(ms));
      if (!r) return r.err();
      out = r.value();
    } else if (!minutes.empty() && has(minutes)) {
      auto r = parse_int<int64_t>(minutes, get(minutes));
      if (!r) return r.err();
      out = r.value() * 60 * 1000;
    } else {
      auto r = parse_int<int64_t>(hours, get(hours));
      if (!r) return r.err();
      out = r.value() * 3600 * 1000;
    }
    return ok();
  };
  if (auto r = pick_ms("log.retention.ms", "log.retention.minutes", "log.retention.hours", c.log_retention_ms); !r)
    return r.err();
  if (auto r = pick_ms("log.roll.ms", "", "log.roll.hours", c.log_roll_ms); !r) return r.err();
  if (has("log.flush.interval.ms") && !get("log.flush.interval.ms").empty()) {
    auto r = parse_int<int64_t>("log.flush.interval.ms", get("log.flush.interval.ms"));
    if (!r) return r.err();
    c.log_flush_interval_ms = r.value();
  }

  auto listeners = parse_listeners(get("listeners"));
  if (!listeners) return error{"listeners: " + listeners.err().message};
  c.listeners = listeners.value();
  if (has("advertised.listeners") && !get("advertised.listeners").empty()) {
    auto adv = parse_listeners(get("advertised.listeners"));
    if (!adv) return error{"advertised.listeners: " + adv.err().message};
    c.advertised_listeners = adv.value();
  } else {
    c.advertised_listeners = c.listeners;
  }
  // Clients cannot connect to 0.0.0.0 or an empty host: advertise localhost, as Kafka does with the canonical host name.
  for (auto& l : c.advertised_listeners)
    if (l.host.empty() || l.host == "0.0.0.0" || l.host == "::") l.host = "localhost";

  c.log_dirs = split_list(has("log.dirs") || !has("log.dir") ? get("log.dirs") : get("log.dir"));
  if (c.log_dirs.empty()) return error{"log.dirs is empty: give at least one data directory"};

  c.log_cleanup_policy = get("log.cleanup.policy");
  for (auto& p : split_list(c.log_cleanup_policy))
    if (p != "delete" && p != "compact")
      return error{"invalid value '" + c.log_cleanup_policy + "' for log.cleanup.policy: expected delete, compact or both"};
  c.log_message_timestamp_type = get("log.message.timestamp.type");
  if (c.log_message_timestamp_type != "CreateTime" && c.log_message_timestamp_type != "LogAppendTime")
    return error{"invalid value '" + c.log_message_timestamp_type +
                 "' for log.message.timestamp.type: expected CreateTime or LogAppendTime"};
  c.log_level = get("log.level");

  if (c.node_id < 0) return error{"node.id must be >= 0, got " + std::to_string(c.node_id)};
  if (auto r = parse_kraft_settings(c, has, get); !r) return r.err();
  if (c.num_partitions < 1) return error{"num.partitions must be >= 1"};
  if (c.message_max_bytes < 0) return error{"message.max.bytes must be >= 0"};
  if (c.socket_request_max_bytes < 1) return error{"socket.request.max.bytes must be >= 1"};
  if (c.log_segment_bytes < 14) return error{"log.segment.bytes must be >= 14"};
  if (c.num_shards < 0 || c.num_shards > 256) return error{"num.shards must be between 0 and 256"};
  return c;
}

}  // namespace gregor::broker

namespace gregor::broker {

const config_key_info* find_broker_config_key(const std::string& name) {
  for (auto& k : broker_config_keys())
    if (k.name == name) return &k;
  return nullptr;
}

bool is_dynamic_broker_config(const std::string& name) {
  static const std::set<std::string> keys = [] {
    std::set<std::string> s = {"log.retention.minutes", "log.retention.hours", "log.roll.hours", "log.roll.jitter.hours",
                               "log.cleaner.threads",   "log.cleaner.io.buffer.size", "log.cleaner.dedupe.buffer.size",
                               "log.cleaner.backoff.ms"};
    for (auto& d : metadata::topic_config_defs()) s.insert(d.broker_synonym);
    return s;
  }();
  return keys.count(name) > 0 && find_broker_config_key(name) != nullptr;
}

bool is_list_broker_config(const std::string& name) { return name == "log.cleanup.policy"; }

std::string validate_dynamic_broker_config(const broker_config& static_config, const std::string& name,
                                           const std::string& value) {
  if (!find_broker_config_key(name)) return "Unknown broker config: " + name;
  if (!is_dynamic_broker_config(name)) return "Cannot update these configs dynamically: Set(" + name + ")";
  for (auto& d : metadata::topic_config_defs()) {
    if (d.broker_synonym != name) continue;
    if (auto why = metadata::validate_topic_config(d.name, value)) {
      // Name the broker key, not the topic key.
      std::string w = *why;
      if (auto at = w.find("configuration " + d.name); at != std::string::npos)
        w.replace(at, 14 + d.name.size(), "configuration " + name);
      return w;
    }
  }
  auto props = static_config.supplied;
  props[name] = value;
  auto c = make_broker_config(props, nullptr);
  if (!c) return "Invalid value " + value + " for configuration " + name + ": " + c.err().message;
  return {};
}

broker_config effective_broker_config(const broker_config& static_config, const dynamic_broker_configs& dynamic) {
  if (dynamic.empty()) return static_config;
  auto props = static_config.supplied;
  bool any = false;
  for (auto name : {std::string(), std::to_string(static_config.node_id)}) {
    auto it = dynamic.find(name);
    if (it == dynamic.end()) continue;
    for (auto& [k, v] : it->second) {
      props[k] = v;
      any = true;
    }
  }
  if (!any) return static_config;
  auto c = make_broker_config(props, nullptr);
  if (!c) return static_config;  // values were validated when set; never half-apply
  c->supplied = static_config.supplied;
  return std::move(c.value());
}

}  // namespace gregor::broker
