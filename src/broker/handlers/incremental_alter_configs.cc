// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT single configs of
// a topic or of the broker (what kafka-configs --alter and the Java
// AdminClient use). Changes are ConfigRecords in the metadata log: they
// survive restarts and every shard applies them when it sees the new image.
#include "broker/broker.h"
#include "broker/handler.h"
#include "metadata/controller.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::incremental_alter_configs_response;

// The broker's own keys, for the controller's validation (shared with AlterConfigs).
metadata::broker_config_rules broker_rules(const broker_config& static_config) {
  metadata::broker_config_rules rules;
  rules.validate = [&static_config](const std::string& name, const std::string& value) -> std::optional<std::string> {
    auto why = validate_dynamic_broker_config(static_config, name, value);
    if (why.empty()) return std::nullopt;
    return why;
  };
  rules.is_list = [](const std::string& name) { return is_list_broker_config(name); };
  rules.default_value = [&static_config](const std::string& name) {
    auto it = static_config.values.find(name);
    return it == static_config.values.end() ? std::string() : it->second;
  };
  return rules;
}

runtime::task<std::optional<response>> handle_incremental_alter_configs(request_context& ctx,
                                                                        protocol::incremental_alter_configs_request& req) {
  auto& b = ctx.b;
  response resp;
  for (auto& r : req.resources) {
    auto& out = resp.responses.emplace_back();
    out.resource_type = r.resource_type;
    out.resource_name = r.resource_name;
    std::vector<metadata::config_change> changes;
    bool bad_op = false;
    for (auto& c : r.configs) {
      if (c.config_operation < 0 || c.config_operation > 3) bad_op = true;
      changes.push_back({c.name, static_cast<metadata::config_op>(c.config_operation), c.value});
    }
    if (bad_op) {
      out.error_code = static_cast<int16_t>(error_code::invalid_request);
      out.error_message = "Unknown config operation";
      continue;
    }
    int8_t type = r.resource_type;
    std::string name = r.resource_name;
    auto rules = broker_rules(b.config());
    auto d = co_await b.controller_write(
        [type, name, changes = std::move(changes), rules](const metadata::image& img, std::vector<metadata::record>& recs) {
          return metadata::plan_incremental_alter_configs(img, type, name, changes, rules, recs);
        },
        req.validate_only);
    out.error_code = static_cast<int16_t>(d.error);
    if (!d.ok()) out.error_message = d.message;
  }
  co_return resp;
}

}  // namespace gregor::broker
