// gregor configs: kafka-configs.sh for topics and brokers.
#include <cstdio>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "app/cli_common.h"
#include "client/admin.h"

namespace gregor::cli {

namespace {

struct configs_opts {
  std::string bootstrap;
  std::string entity_type;
  std::string entity_name;
  bool describe = false, alter = false, all = false;
  std::vector<std::string> add_config;
  std::vector<std::string> delete_config;
};

int run_configs(const configs_opts& o) {
  const char* tool = "configs";
  if (o.describe == o.alter) return fail(tool, "exactly one of --describe, --alter is required");
  client::resource_type type;
  std::string noun;
  if (o.entity_type == "topics" || o.entity_type == "topic") {
    type = client::resource_type::topic;
    noun = "topic";
  } else if (o.entity_type == "brokers" || o.entity_type == "broker") {
    type = client::resource_type::broker;
    noun = "broker";
  } else {
    return fail(tool, fmt::format("unsupported --entity-type '{}': expected topics or brokers", o.entity_type));
  }
  client::admin_config cfg;
  cfg.bootstrap_servers = o.bootstrap;
  cfg.client_id = "gregor-configs";
  if (auto b = client::parse_bootstrap(o.bootstrap); !b) return fail(tool, b.err().message);
  client::admin_client admin(cfg);
  auto cl = admin.describe_cluster();
  if (!cl) return fail(tool, cl.err().message);
  std::string name = o.entity_name;
  if (name.empty() && type == client::resource_type::broker && !cl.value()->brokers.empty())
    name = std::to_string(cl.value()->brokers[0].node_id);
  if (name.empty()) return fail(tool, "--entity-name is required");

  if (o.describe) {
    auto r = admin.describe_configs(type, name);
    if (!r) return fail(tool, fmt::format("cannot describe {} '{}': {}", noun, name, r.err().message));
    std::printf("%s configs for %s %s are:\n", o.all ? "All" : "Dynamic", noun.c_str(), name.c_str());
    for (auto& e : r.value()) {
      bool dynamic = e.source == 1 || e.source == 2 || e.source == 3;
      if (!o.all && !dynamic) continue;
      std::string v = e.is_sensitive ? "null" : e.value.value_or("null");
      std::printf("  %s=%s sensitive=%s synonyms={%s:%s=%s}\n", e.name.c_str(), v.c_str(),
                  e.is_sensitive ? "true" : "false", client::config_source_name(e.source), e.name.c_str(), v.c_str());
    }
    return 0;
  }
  auto adds = parse_pairs(o.add_config, true);
  if (!adds) return fail(tool, adds.err().message);
  std::vector<client::config_alteration> ops;
  for (auto& [k, v] : adds.value()) ops.push_back({k, client::alter_op::set, v});
  for (auto& item : o.delete_config) {
    std::stringstream ss(item);
    std::string k;
    while (std::getline(ss, k, ','))
      if (!k.empty()) ops.push_back({k, client::alter_op::remove, std::nullopt});
  }
  if (ops.empty()) return fail(tool, "--alter needs --add-config or --delete-config");
  if (type == client::resource_type::topic) {
    auto d = admin.describe_topics({name});
    if (!d) return fail(tool, d.err().message);
    if (d.value()[0].error_code != 0) return fail(tool, fmt::format("topic '{}' does not exist", name));
  }
  auto r = admin.incremental_alter_configs(type, name, ops);
  if (!r) return fail(tool, r.err().message);
  if (!r.value().ok()) return fail(tool, fmt::format("cannot alter {} '{}': {}", noun, name, r.value().describe()));
  std::printf("Completed updating config for %s %s.\n", noun.c_str(), name.c_str());
  return 0;
}

}  // namespace

void register_configs(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<configs_opts>();
  auto* sub = app.add_subcommand("configs", "Describe and alter topic and broker configs (kafka-configs)");
  sub->add_option("--bootstrap-server", o->bootstrap, "host:port of a broker")->required();
  sub->add_option("--entity-type", o->entity_type, "topics or brokers")->required();
  sub->add_option("--entity-name", o->entity_name, "Topic name or broker id");
  sub->add_flag("--describe", o->describe, "Show configs");
  sub->add_flag("--all", o->all, "With --describe: all configs, not only dynamic ones");
  sub->add_flag("--alter", o->alter, "Change configs");
  sub->add_option("--add-config", o->add_config, "k=v[,k2=v2] to set");
  sub->add_option("--delete-config", o->delete_config, "k[,k2] to remove");
  sub->callback([o, &exit_code] { exit_code = run_configs(*o); });
}

}  // namespace gregor::cli
