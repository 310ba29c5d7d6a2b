// AlterConfigs (the legacy API): replaces the whole set of dynamic configs of
// a topic or of the broker; configs not given return to their defaults.
// kafka-configs uses it for broker entities, librdkafka and kafkajs for all.
#include "broker/broker.h"
#include "broker/handler.h"
#include "metadata/controller.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::alter_configs_response;

metadata::broker_config_rules broker_rules(const broker_config& static_config);

runtime::task<std::optional<response>> handle_alter_configs(request_context& ctx, protocol::alter_configs_request& req) {
  auto& b = ctx.b;
  response resp;
  for (auto& r : req.resources) {
    auto& out = resp.responses.emplace_back();
    out.resource_type = r.resource_type;
    out.resource_name = r.resource_name;
    std::vector<std::pair<std::string, std::optional<std::string>>> configs;
    for (auto& c : r.configs) configs.emplace_back(c.name, c.value);
    int8_t type = r.resource_type;
    std::string name = r.resource_name;
    auto rules = broker_rules(b.config());
    auto d = co_await b.controller_write(
        [type, name, configs = std::move(configs), rules](const metadata::image& img, std::vector<metadata::record>& recs) {
          return metadata::plan_alter_configs(img, type, name, configs, rules, recs);
        },
        req.validate_only);
    out.error_code = static_cast<int16_t>(d.error);
    if (!d.ok()) out.error_message = d.message;
  }
  co_return resp;
}

}  // namespace gregor::broker
