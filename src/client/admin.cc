#include "client/admin.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace gregor::client {

namespace pr = protocol;

std::string item_result::describe() const {
  std::string s = describe_error(error_code);
  if (!error_message.empty()) s += ": " + error_message;
  return s;
}

const char* config_source_name(int8_t source) {
  switch (source) {
    case 1: return "DYNAMIC_TOPIC_CONFIG";
    case 2: return "DYNAMIC_BROKER_CONFIG";
    case 3: return "DYNAMIC_DEFAULT_BROKER_CONFIG";
    case 4: return "STATIC_BROKER_CONFIG";
    case 5: return "DEFAULT_CONFIG";
    case 6: return "DYNAMIC_BROKER_LOGGER_CONFIG";
    case 7: return "CLIENT_METRICS_CONFIG";
    case 8: return "GROUP_CONFIG";
    default: return "UNKNOWN";
  }
}

// ---- consumer protocol ------------------------------------------------------

namespace {

void put_string(bytes& out, std::string_view s) {
  append_be<int16_t>(out, static_cast<int16_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

void put_partitions(bytes& out, const std::vector<topic_partition>& tps) {
  std::map<std::string, std::vector<int32_t>> by_topic;
  for (auto& tp : tps) by_topic[tp.topic].push_back(tp.partition);
  append_be<int32_t>(out, static_cast<int32_t>(by_topic.size()));
  for (auto& [t, ps] : by_topic) {
    put_string(out, t);
    append_be<int32_t>(out, static_cast<int32_t>(ps.size()));
    for (auto p : ps) append_be<int32_t>(out, p);
  }
}

bool read_partitions(pr::wire_reader& r, std::vector<topic_partition>& out) {
  int32_t n = r.read_array_length(false);
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    std::string t = r.read_string(false);
    int32_t m = r.read_array_length(false, 4);
    for (int32_t j = 0; j < m && r.ok(); ++j) out.push_back({t, r.read_int32()});
  }
  return r.ok();
}

}  // namespace

bytes encode_subscription(const consumer_subscription& s) {
  bytes out;
  append_be<int16_t>(out, s.version);
  append_be<int32_t>(out, static_cast<int32_t>(s.topics.size()));
  for (auto& t : s.topics) put_string(out, t);
  if (s.user_data) {
    append_be<int32_t>(out, static_cast<int32_t>(s.user_data->size()));
    out.insert(out.end(), s.user_data->begin(), s.user_data->end());
  } else {
    append_be<int32_t>(out, -1);
  }
  if (s.version >= 1) put_partitions(out, s.owned_partitions);
  if (s.version >= 2) append_be<int32_t>(out, s.generation_id);
  return out;
}

std::optional<consumer_subscription> decode_subscription(bytes_view b) {
  pr::wire_reader r(b);
  consumer_subscription s;
  s.version = r.read_int16();
  int32_t n = r.read_array_length(false);
  for (int32_t i = 0; i < n && r.ok(); ++i) s.topics.push_back(r.read_string(false));
  if (r.remaining() > 0) s.user_data = r.read_nullable_bytes(false);
  if (s.version >= 1 && r.remaining() > 0) read_partitions(r, s.owned_partitions);
  if (s.version >= 2 && r.remaining() >= 4) s.generation_id = r.read_int32();
  if (!r.ok() || s.version < 0) return std::nullopt;
  return s;
}

bytes encode_assignment(const consumer_assignment& a) {
  bytes out;
  append_be<int16_t>(out, a.version);
  put_partitions(out, a.partitions);
  if (a.user_data) {
    append_be<int32_t>(out, static_cast<int32_t>(a.user_data->size()));
    out.insert(out.end(), a.user_data->begin(), a.user_data->end());
  } else {
    append_be<int32_t>(out, -1);
  }
  return out;
}

std::optional<consumer_assignment> decode_assignment(bytes_view b) {
  consumer_assignment a;
  if (b.empty()) {
    a.version = 0;
    return a;
  }
  pr::wire_reader r(b);
  a.version = r.read_int16();
  read_partitions(r, a.partitions);
  if (r.remaining() > 0) a.user_data = r.read_nullable_bytes(false);
  if (!r.ok() || a.version < 0) return std::nullopt;
  return a;
}

// ---- admin ----------------------------------------------------------------

admin_client::admin_client(admin_config config) : config_(config), cluster_(config) {}

result<std::shared_ptr<const cluster_metadata>> admin_client::describe_cluster() {
  return cluster_.refresh(std::vector<std::string>{});
}

result<std::vector<item_result>> admin_client::create_topics(const std::vector<new_topic>& topics,
                                                             bool validate_only) {
  pr::create_topics_request req;
  req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
  req.validate_only = validate_only;
  for (auto& t : topics) {
    pr::create_topics_request::creatable_topic ct;
    ct.name = t.name;
    ct.num_partitions = t.num_partitions;
    ct.replication_factor = t.replication_factor;
    for (auto& [k, v] : t.configs) ct.configs.push_back({k, v, {}});
    req.topics.push_back(std::move(ct));
  }
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  std::vector<item_result> out;
  for (auto& r : resp->topics) out.push_back({r.name, r.error_code, r.error_message.value_or("")});
  return out;
}

result<std::vector<item_result>> admin_client::delete_topics(const std::vector<std::string>& names) {
  pr::delete_topics_request req;
  req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
  req.topic_names = names;
  for (auto& n : names) {
    pr::delete_topics_request::delete_topic_state s;
    s.name = n;
    req.topics.push_back(s);
  }
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  std::vector<item_result> out;
  for (auto& r : resp->responses) out.push_back({r.name.value_or(""), r.error_code, r.error_message.value_or("")});
  return out;
}

result<std::vector<std::string>> admin_client::list_topics(bool include_internal) {
  auto md = cluster_.refresh(std::nullopt);
  if (!md) return md.err();
  std::vector<std::string> out;
  for (auto& [name, t] : md.value()->topics)
    if (include_internal || !t.is_internal) out.push_back(name);
  return out;
}

result<std::vector<topic_info>> admin_client::describe_topics(const std::vector<std::string>& names) {
  std::optional<std::vector<std::string>> q;
  if (!names.empty()) q = names;
  auto md = cluster_.refresh(q);
  if (!md) return md.err();
  std::vector<topic_info> out;
  if (names.empty()) {
    for (auto& [n, t] : md.value()->topics) out.push_back(t);
  } else {
    for (auto& n : names) {
      if (auto* t = md.value()->topic(n)) out.push_back(*t);
      else {
        topic_info ti;
        ti.name = n;
        ti.error_code = pr::code(pr::error_code::unknown_topic_or_partition);
        out.push_back(ti);
      }
    }
  }
  return out;
}

result<std::vector<item_result>> admin_client::create_partitions(const std::map<std::string, int32_t>& new_totals) {
  pr::create_partitions_request req;
  req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
  for (auto& [t, n] : new_totals) {
    pr::create_partitions_request::create_partitions_topic ct;
    ct.name = t;
    ct.count = n;
    req.topics.push_back(ct);
  }
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  std::vector<item_result> out;
  for (auto& r : resp->results) out.push_back({r.name, r.error_code, r.error_message.value_or("")});
  return out;
}

result<std::vector<config_entry>> admin_client::describe_configs(resource_type type, const std::string& name,
                                                                 const std::vector<std::string>& keys) {
  pr::describe_configs_request req;
  pr::describe_configs_request::describe_configs_resource res;
  res.resource_type = static_cast<int8_t>(type);
  res.resource_name = name;
  if (!keys.empty()) res.configuration_keys = keys;
  req.resources.push_back(res);
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  if (resp->results.size() != 1) return error{"DescribeConfigs: unexpected response"};
  auto& r = resp->results[0];
  if (r.error_code != 0)
    return error{fmt::format("{}{}", describe_error(r.error_code), r.error_message ? ": " + *r.error_message : "")};
  std::vector<config_entry> out;
  for (auto& c : r.configs) {
    config_entry e;
    e.name = c.name;
    e.value = c.value;
    e.read_only = c.read_only;
    e.is_default = c.is_default || c.config_source == 5;
    e.source = c.config_source;
    e.is_sensitive = c.is_sensitive;
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

result<item_result> admin_client::incremental_alter_configs(resource_type type, const std::string& name,
                                                            const std::vector<config_alteration>& ops) {
  pr::incremental_alter_configs_request req;
  pr::incremental_alter_configs_request::alter_configs_resource res;
  res.resource_type = static_cast<int8_t>(type);
  res.resource_name = name;
  for (auto& o : ops) res.configs.push_back({o.name, static_cast<int8_t>(o.op), o.value, {}});
  req.resources.push_back(res);
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  if (resp->responses.size() != 1) return error{"IncrementalAlterConfigs: unexpected response"};
  auto& r = resp->responses[0];
  return item_result{r.resource_name, r.error_code, r.error_message.value_or("")};
}

result<std::vector<group_listing>> admin_client::list_groups() {
  auto md = cluster_.refresh(std::vector<std::string>{});
  if (!md) return md.err();
  std::vector<group_listing> out;
  std::vector<int32_t> nodes;
  for (auto& b : md.value()->brokers) nodes.push_back(b.node_id);
  for (auto id : nodes) {
    pr::list_groups_request req;
    auto resp = cluster_.call_node(id, req);
    if (!resp) return resp.err();
    if (resp->error_code != 0) return error{fmt::format("ListGroups: {}", describe_error(resp->error_code))};
    for (auto& g : resp->groups) out.push_back({g.group_id, g.protocol_type, g.group_state});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.group_id < b.group_id; });
  return out;
}

result<std::vector<group_description>> admin_client::describe_groups(const std::vector<std::string>& groups) {
  std::vector<group_description> out;
  for (auto& g : groups) {
    pr::describe_groups_request req;
    req.groups = {g};
    auto resp = cluster_.call_coordinator(g, req);
    if (!resp) return resp.err();
    for (auto& d : resp->groups) {
      group_description gd;
      gd.group_id = d.group_id;
      gd.error_code = d.error_code;
      gd.state = d.group_state;
      gd.protocol_type = d.protocol_type;
      gd.protocol = d.protocol_data;
      for (auto& m : d.members) {
        member_description md;
        md.member_id = m.member_id;
        md.group_instance_id = m.group_instance_id;
        md.client_id = m.client_id;
        md.client_host = m.client_host;
        if (d.protocol_type == "consumer") {
          if (auto a = decode_assignment(m.member_assignment)) md.assignment = a->partitions;
        }
        gd.members.push_back(std::move(md));
      }
      out.push_back(std::move(gd));
    }
  }
  return out;
}

result<std::vector<item_result>> admin_client::delete_groups(const std::vector<std::string>& groups) {
  std::vector<item_result> out;
  for (auto& g : groups) {
    pr::delete_groups_request req;
    req.groups_names = {g};
    auto resp = cluster_.call_coordinator(g, req);
    if (!resp) return resp.err();
    for (auto& r : resp->results) out.push_back({r.group_id, r.error_code, ""});
  }
  return out;
}

result<std::map<topic_partition, offset_and_metadata>> admin_client::list_group_offsets(
    const std::string& group, const std::vector<topic_partition>& partitions) {
  pr::offset_fetch_request req;
  req.group_id = group;
  if (!partitions.empty()) {
    std::map<std::string, std::vector<int32_t>> by_topic;
    for (auto& tp : partitions) by_topic[tp.topic].push_back(tp.partition);
    req.topics.emplace();
    for (auto& [t, ps] : by_topic) req.topics->push_back({t, ps, {}});
  }
  auto resp = cluster_.call_coordinator(group, req);
  if (!resp) return resp.err();
  if (resp->error_code != 0) return error{fmt::format("OffsetFetch: {}", describe_error(resp->error_code))};
  std::map<topic_partition, offset_and_metadata> out;
  for (auto& t : resp->topics)
    for (auto& p : t.partitions)
      out[{t.name, p.partition_index}] = {p.committed_offset, p.committed_leader_epoch, p.metadata.value_or(""),
                                          p.error_code};
  return out;
}

result<std::map<topic_partition, int16_t>> admin_client::alter_group_offsets(
    const std::string& group, const std::map<topic_partition, int64_t>& offsets) {
  pr::offset_commit_request req;
  req.group_id = group;
  req.generation_id_or_member_epoch = -1;
  std::map<std::string, std::vector<pr::offset_commit_request::offset_commit_request_partition>> by_topic;
  for (auto& [tp, off] : offsets) {
    pr::offset_commit_request::offset_commit_request_partition p;
    p.partition_index = tp.partition;
    p.committed_offset = off;
    p.committed_metadata = "";
    by_topic[tp.topic].push_back(p);
  }
  for (auto& [t, ps] : by_topic) req.topics.push_back({t, ps, {}});
  auto resp = cluster_.call_coordinator(group, req);
  if (!resp) return resp.err();
  std::map<topic_partition, int16_t> out;
  for (auto& t : resp->topics)
    for (auto& p : t.partitions) out[{t.name, p.partition_index}] = p.error_code;
  return out;
}

result<std::map<topic_partition, listed_offset>> list_offsets(cluster& c, const std::vector<topic_partition>& partitions,
                                                             int64_t timestamp, int8_t isolation_level) {
  std::set<std::string> topics;
  for (auto& tp : partitions) topics.insert(tp.topic);
  auto md = c.refresh(std::vector<std::string>(topics.begin(), topics.end()));
  if (!md) return md.err();
  std::map<int32_t, std::map<std::string, std::vector<int32_t>>> by_leader;
  std::map<topic_partition, listed_offset> out;
  for (auto& tp : partitions) {
    auto* t = md.value()->topic(tp.topic);
    const partition_info* p = nullptr;
    if (t)
      for (auto& pi : t->partitions)
        if (pi.partition == tp.partition) p = &pi;
    if (!p || p->leader < 0) {
      out[tp].error_code = pr::code(!p ? pr::error_code::unknown_topic_or_partition
                                       : pr::error_code::leader_not_available);
      continue;
    }
    by_leader[p->leader][tp.topic].push_back(tp.partition);
  }
  for (auto& [leader, tps] : by_leader) {
    pr::list_offsets_request req;
    req.replica_id = -1;
    req.isolation_level = isolation_level;
    for (auto& [t, ps] : tps) {
      pr::list_offsets_request::list_offsets_topic lt;
      lt.name = t;
      for (auto p : ps) {
        pr::list_offsets_request::list_offsets_partition lp;
        lp.partition_index = p;
        lp.timestamp = timestamp;
        lt.partitions.push_back(lp);
      }
      req.topics.push_back(std::move(lt));
    }
    auto resp = c.call_node(leader, req);
    if (!resp) return resp.err();
    for (auto& t : resp->topics)
      for (auto& p : t.partitions) {
        listed_offset lo{p.offset, p.timestamp, p.error_code};
        if (lo.offset < 0 && !p.old_style_offsets.empty()) lo.offset = p.old_style_offsets[0];
        out[{t.name, p.partition_index}] = lo;
      }
  }
  return out;
}

result<std::map<topic_partition, listed_offset>> admin_client::list_offsets(
    const std::vector<topic_partition>& partitions, int64_t timestamp) {
  return client::list_offsets(cluster_, partitions, timestamp);
}

result<std::map<topic_partition, listed_offset>> admin_client::delete_records(
    const std::map<topic_partition, int64_t>& before) {
  std::set<std::string> topics;
  for (auto& [tp, o] : before) topics.insert(tp.topic);
  auto md = cluster_.refresh(std::vector<std::string>(topics.begin(), topics.end()));
  if (!md) return md.err();
  std::map<int32_t, std::map<std::string, std::vector<std::pair<int32_t, int64_t>>>> by_leader;
  std::map<topic_partition, listed_offset> out;
  for (auto& [tp, off] : before) {
    auto* t = md.value()->topic(tp.topic);
    const partition_info* p = nullptr;
    if (t)
      for (auto& pi : t->partitions)
        if (pi.partition == tp.partition) p = &pi;
    if (!p || p->leader < 0) {
      out[tp].error_code = pr::code(pr::error_code::unknown_topic_or_partition);
      continue;
    }
    by_leader[p->leader][tp.topic].push_back({tp.partition, off});
  }
  for (auto& [leader, tps] : by_leader) {
    pr::delete_records_request req;
    req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
    for (auto& [t, ps] : tps) {
      pr::delete_records_request::delete_records_topic dt;
      dt.name = t;
      for (auto& [p, o] : ps) dt.partitions.push_back({p, o, {}});
      req.topics.push_back(std::move(dt));
    }
    auto resp = cluster_.call_node(leader, req);
    if (!resp) return resp.err();
    for (auto& t : resp->topics)
      for (auto& p : t.partitions) out[{t.name, p.partition_index}] = {p.low_watermark, -1, p.error_code};
  }
  return out;
}

result<quorum_description> admin_client::describe_quorum() {
  pr::describe_quorum_request req;
  auto& t = req.topics.emplace_back();
  t.topic_name = "__cluster_metadata";
  t.partitions.emplace_back().partition_index = 0;
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  if (resp->error_code != 0)
    return error{"DescribeQuorum failed: " + std::string(pr::error_name(resp->error_code))};
  if (resp->topics.empty() || resp->topics[0].partitions.empty()) return error{"DescribeQuorum: empty answer"};
  auto& p = resp->topics[0].partitions[0];
  if (p.error_code != 0)
    return error{"DescribeQuorum failed: " + std::string(pr::error_name(p.error_code)) +
                 (p.error_message ? ": " + *p.error_message : "")};
  quorum_description d;
  d.leader_id = p.leader_id;
  d.leader_epoch = p.leader_epoch;
  d.high_watermark = p.high_watermark;
  for (auto& v : p.current_voters)
    d.voters.push_back({v.replica_id, v.log_end_offset, v.last_fetch_timestamp, v.last_caught_up_timestamp});
  for (auto& o : p.observers)
    d.observers.push_back({o.replica_id, o.log_end_offset, o.last_fetch_timestamp, o.last_caught_up_timestamp});
  return d;
}

result<std::map<topic_partition, item_result>> admin_client::elect_leaders(
    election_type type, const std::vector<topic_partition>& partitions) {
  pr::elect_leaders_request req;
  req.election_type = static_cast<int8_t>(type);
  req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
  if (!partitions.empty()) {
    std::map<std::string, std::vector<int32_t>> by_topic;
    for (auto& tp : partitions) by_topic[tp.topic].push_back(tp.partition);
    req.topic_partitions.emplace();
    for (auto& [t, ps] : by_topic) req.topic_partitions->push_back({t, ps, {}});
  }
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  if (resp->error_code != 0) return error{"ElectLeaders failed: " + std::string(pr::error_name(resp->error_code))};
  std::map<topic_partition, item_result> out;
  for (auto& t : resp->replica_election_results)
    for (auto& p : t.partition_result)
      out[{t.topic, p.partition_id}] = {t.topic + "-" + std::to_string(p.partition_id), p.error_code,
                                        p.error_message.value_or("")};
  return out;
}

result<std::map<topic_partition, item_result>> admin_client::alter_partition_reassignments(
    const std::map<topic_partition, std::optional<std::vector<int32_t>>>& moves) {
  pr::alter_partition_reassignments_request req;
  req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
  std::map<std::string, size_t> at;
  for (auto& [tp, replicas] : moves) {
    auto [it, fresh] = at.emplace(tp.topic, req.topics.size());
    if (fresh) req.topics.emplace_back().name = tp.topic;
    req.topics[it->second].partitions.push_back({tp.partition, replicas, {}});
  }
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  if (resp->error_code != 0)
    return error{"AlterPartitionReassignments failed: " + std::string(pr::error_name(resp->error_code)) +
                 (resp->error_message ? ": " + *resp->error_message : "")};
  std::map<topic_partition, item_result> out;
  for (auto& t : resp->responses)
    for (auto& p : t.partitions)
      out[{t.name, p.partition_index}] = {t.name + "-" + std::to_string(p.partition_index), p.error_code,
                                          p.error_message.value_or("")};
  return out;
}

result<std::vector<reassignment>> admin_client::list_partition_reassignments() {
  pr::list_partition_reassignments_request req;
  req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
  auto resp = cluster_.call_any(req);
  if (!resp) return resp.err();
  if (resp->error_code != 0)
    return error{"ListPartitionReassignments failed: " + std::string(pr::error_name(resp->error_code))};
  std::vector<reassignment> out;
  for (auto& t : resp->topics)
    for (auto& p : t.partitions)
      out.push_back({{t.name, p.partition_index}, p.replicas, p.adding_replicas, p.removing_replicas});
  return out;
}

}  // namespace gregor::client
