// gregor topics: kafka-topics.sh's common flags.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "app/cli_common.h"
#include "client/admin.h"

namespace gregor::cli {

namespace {

struct topics_opts {
  std::string bootstrap;
  bool create = false, list = false, describe = false, alter = false, del = false;
  std::string topic;
  int32_t partitions = -1;
  int16_t replication_factor = -1;
  std::vector<std::string> configs;
  bool if_exists = false, if_not_exists = false;
  bool exclude_internal = false;
};

std::string join_ids(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

int run_topics(const topics_opts& o) {
  const char* tool = "topics";
  int actions = o.create + o.list + o.describe + o.alter + o.del;
  if (actions != 1) return fail(tool, "exactly one of --create, --list, --describe, --alter, --delete is required");
  if ((o.create || o.alter || o.del) && o.topic.empty()) return fail(tool, "--topic is required");
  auto pairs = parse_pairs(o.configs, false);
  if (!pairs) return fail(tool, pairs.err().message);
  client::admin_config cfg;
  cfg.bootstrap_servers = o.bootstrap;
  cfg.client_id = "gregor-topics";
  cfg.request_timeout_ms = 30000;
  if (auto b = client::parse_bootstrap(o.bootstrap); !b) return fail(tool, b.err().message);
  client::admin_client admin(cfg);
  auto cl = admin.describe_cluster();
  if (!cl) return fail(tool, cl.err().message);

  if (o.create) {
    client::new_topic t;
    t.name = o.topic;
    t.num_partitions = o.partitions;
    t.replication_factor = o.replication_factor;
    t.configs = pairs.value();
    auto r = admin.create_topics({t});
    if (!r) return fail(tool, r.err().message);
    for (auto& item : r.value()) {
      if (item.error_code == 36 && o.if_not_exists) continue;
      if (!item.ok()) return fail(tool, fmt::format("cannot create topic '{}': {}", item.name, item.describe()));
      std::printf("Created topic %s.\n", item.name.c_str());
    }
    return 0;
  }
  if (o.list) {
    auto r = admin.list_topics(!o.exclude_internal);
    if (!r) return fail(tool, r.err().message);
    for (auto& n : r.value())
      if (o.topic.empty() || n == o.topic) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (o.describe) {
    std::vector<std::string> names;
    if (!o.topic.empty()) names.push_back(o.topic);
    auto r = admin.describe_topics(names);
    if (!r) return fail(tool, r.err().message);
    for (auto& t : r.value()) {
      if (t.error_code != 0) {
        if (o.if_exists) continue;
        return fail(tool, fmt::format("topic '{}' does not exist ({})", t.name, client::describe_error(t.error_code)));
      }
      if (o.exclude_internal && t.is_internal) continue;
      std::string configs;
      if (auto c = admin.describe_configs(client::resource_type::topic, t.name); c) {
        for (auto& e : c.value())
          if (e.source == 1 /* DYNAMIC_TOPIC_CONFIG */) {
            if (!configs.empty()) configs += ",";
            configs += e.name + "=" + (e.is_sensitive ? std::string("<sensitive>") : e.value.value_or("null"));
          }
      }
      size_t rf = t.partitions.empty() ? 0 : t.partitions[0].replicas.size();
      std::printf("Topic: %s\tTopicId: %s\tPartitionCount: %zu\tReplicationFactor: %zu\tConfigs: %s\n",
                  t.name.c_str(), t.topic_id.to_string().c_str(), t.partitions.size(), rf, configs.c_str());
      for (auto& p : t.partitions) {
        std::printf("\tTopic: %s\tPartition: %d\tLeader: %s\tReplicas: %s\tIsr: %s", t.name.c_str(), p.partition,
                    p.leader < 0 ? "none" : std::to_string(p.leader).c_str(), join_ids(p.replicas).c_str(),
                    join_ids(p.isr).c_str());
        if (!p.offline.empty()) std::printf("\tOffline: %s", join_ids(p.offline).c_str());
        std::printf("\n");
      }
    }
    return 0;
  }
  if (o.alter) {
    auto d = admin.describe_topics({o.topic});
    if (!d) return fail(tool, d.err().message);
    if (d.value()[0].error_code != 0) {
      if (o.if_exists) return 0;
      return fail(tool, fmt::format("topic '{}' does not exist", o.topic));
    }
    if (o.partitions < 0 && pairs.value().empty()) return fail(tool, "--alter needs --partitions or --config");
    if (o.partitions >= 0) {
      auto r = admin.create_partitions({{o.topic, o.partitions}});
      if (!r) return fail(tool, r.err().message);
      for (auto& item : r.value())
        if (!item.ok()) return fail(tool, fmt::format("cannot alter topic '{}': {}", item.name, item.describe()));
    }
    if (!pairs.value().empty()) {
      std::vector<client::config_alteration> ops;
      for (auto& [k, v] : pairs.value()) ops.push_back({k, client::alter_op::set, v});
      auto r = admin.incremental_alter_configs(client::resource_type::topic, o.topic, ops);
      if (!r) return fail(tool, r.err().message);
      if (!r.value().ok()) return fail(tool, fmt::format("cannot alter topic '{}': {}", o.topic, r.value().describe()));
    }
    std::printf("Altered topic %s.\n", o.topic.c_str());
    return 0;
  }
  // delete
  auto d = admin.describe_topics({o.topic});
  if (!d) return fail(tool, d.err().message);
  if (d.value()[0].error_code != 0) {
    if (o.if_exists) return 0;
    return fail(tool, fmt::format("topic '{}' does not exist", o.topic));
  }
  auto r = admin.delete_topics({o.topic});
  if (!r) return fail(tool, r.err().message);
  for (auto& item : r.value())
    if (!item.ok()) return fail(tool, fmt::format("cannot delete topic '{}': {}", item.name, item.describe()));
  std::printf("Deleted topic %s.\n", o.topic.c_str());
  return 0;
}

}  // namespace

void register_topics(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<topics_opts>();
  auto* sub = app.add_subcommand("topics", "Create, list, describe, alter and delete topics (kafka-topics)");
  sub->add_option("--bootstrap-server", o->bootstrap, "host:port of a broker")->required();
  sub->add_flag("--create", o->create, "Create a topic");
  sub->add_flag("--list", o->list, "List topics");
  sub->add_flag("--describe", o->describe, "Describe topics");
  sub->add_flag("--alter", o->alter, "Add partitions or change configs");
  sub->add_flag("--delete", o->del, "Delete a topic");
  sub->add_option("--topic", o->topic, "Topic name");
  sub->add_option("--partitions", o->partitions, "Number of partitions")->check(CLI::PositiveNumber);
  sub->add_option("--replication-factor", o->replication_factor, "Replication factor")->check(CLI::PositiveNumber);
  sub->add_option("--config", o->configs, "key=value topic config (repeatable)");
  sub->add_flag("--if-exists", o->if_exists, "Only act if the topic exists");
  sub->add_flag("--if-not-exists", o->if_not_exists, "Only create if the topic does not exist");
  sub->add_flag("--exclude-internal", o->exclude_internal, "Leave out internal topics");
  sub->callback([o, &exit_code] { exit_code = run_topics(*o); });
}

}  // namespace gregor::cli
