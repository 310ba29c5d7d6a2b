// DescribeConfigs: every config of a topic or of the broker, with its value,
// where it comes from (config_source, v1+), its synonyms (v1+, when asked),
// its type and documentation (v3+).
#include <set>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/topic_configs.h"
#include "metadata/controller.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::describe_configs_response;

runtime::task<std::optional<response>> handle_describe_configs(request_context& ctx,
                                                               protocol::describe_configs_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  const int16_t v = ctx.version();
  broker_config_view view{b.config(), img->broker_configs};
  response resp;
  for (auto& r : req.resources) {
    auto& out = resp.results.emplace_back();
    out.resource_type = r.resource_type;
    out.resource_name = r.resource_name;
    std::vector<described_config> configs;
    if (r.resource_type == metadata::topic_resource) {
      auto* t = img->topic(r.resource_name);
      if (!t) {
        out.error_code = static_cast<int16_t>(error_code::unknown_topic_or_partition);
        out.error_message = "The topic '" + r.resource_name + "' does not exist.";
        continue;
      }
      configs = describe_topic_configs(view, t->configs);
    } else if (r.resource_type == metadata::broker_resource) {
      std::string self = std::to_string(b.config().node_id);
      if (!r.resource_name.empty() && r.resource_name != self) {
        out.error_code = static_cast<int16_t>(error_code::invalid_request);
        out.error_message = "Unexpected broker id, expected " + self + " or empty string, but received " + r.resource_name;
        continue;
      }
      configs = describe_broker_configs(view, r.resource_name);
    } else {
      out.error_code = static_cast<int16_t>(error_code::invalid_request);
      out.error_message = "Unsupported resource type " + std::to_string(r.resource_type);
      continue;
    }
    // null (or empty) asks for every config.
    std::set<std::string> wanted;
    if (r.configuration_keys) wanted.insert(r.configuration_keys->begin(), r.configuration_keys->end());
    for (auto& c : configs) {
      if (!wanted.empty() && !wanted.count(c.name)) continue;
      auto& e = out.configs.emplace_back();
      e.name = c.name;
      if (!c.value_is_null) e.value = c.value;
      e.read_only = c.read_only;
      e.is_default = c.source == config_source::default_config;
      e.config_source = static_cast<int8_t>(c.source);
      e.is_sensitive = false;
      if (v >= 1 && req.include_synonyms) {
        for (auto& s : c.synonyms) {
          auto& syn = e.synonyms.emplace_back();
          syn.name = s.name;
          syn.value = s.value;
          syn.source = static_cast<int8_t>(s.source);
        }
      }
      if (v >= 3) {
        e.config_type = c.config_type;
        if (req.include_documentation) e.documentation = c.doc;
      }
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
