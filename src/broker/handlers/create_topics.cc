// CreateTopics: the controller decides, the metadata log records, and the
// answer waits until every shard has the new topic's partitions open.
#include <set>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/topic_configs.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::create_topics_response;

runtime::task<std::optional<response>> handle_create_topics(request_context& ctx, protocol::create_topics_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  response resp;

  // A name given twice in one request fails for every occurrence, as in Kafka.
  std::map<std::string, int> seen;
  for (auto& t : req.topics) ++seen[t.name];

  std::vector<metadata::topic_spec> specs;
  std::vector<size_t> spec_index;  // response slot of each spec
  for (auto& t : req.topics) {
    auto& r = resp.topics.emplace_back();
    r.name = t.name;
    if (seen[t.name] > 1) {
      r.error_code = static_cast<int16_t>(error_code::invalid_request);
      if (v >= 1) r.error_message = "Create topics request from client contains a duplicate topic: " + t.name;
      continue;
    }
    metadata::topic_spec spec;
    spec.name = t.name;
    spec.num_partitions = t.num_partitions;
    spec.replication_factor = t.replication_factor;
    for (auto& a : t.assignments) spec.assignments[a.partition_index] = a.broker_ids;
    bool bad_config = false;
    for (auto& c : t.configs) {
      if (!c.value) {
        r.error_code = static_cast<int16_t>(error_code::invalid_config);
        if (v >= 1) r.error_message = "Null value not supported for topic configs: " + c.name;
        bad_config = true;
        break;
      }
      spec.configs[c.name] = *c.value;
    }
    if (bad_config) continue;
    specs.push_back(std::move(spec));
    spec_index.push_back(resp.topics.size() - 1);
  }

  auto decisions = co_await b.create_topics(specs, req.validate_only);
  auto img = b.image();
  for (size_t i = 0; i < decisions.size(); ++i) {
    auto& r = resp.topics[spec_index[i]];
    auto& d = decisions[i];
    r.error_code = static_cast<int16_t>(d.error);
    if (v >= 1 && !d.ok()) r.error_message = d.message;
    if (!d.ok() || v < 5) continue;
    auto& spec = specs[i];
    const metadata::topic_state* t = img->topic(spec.name);
    if (t) r.topic_id = t->topic_id;
    int32_t partitions = t ? static_cast<int32_t>(t->partitions.size())
                           : (spec.num_partitions == -1 ? b.config().num_partitions : spec.num_partitions);
    int16_t rf = t && !t->partitions.empty() ? static_cast<int16_t>(t->partitions[0].replicas.size())
                                             : (spec.replication_factor == -1 ? b.config().default_replication_factor
                                                                              : spec.replication_factor);
    r.num_partitions = partitions;
    r.replication_factor = rf;
    r.configs.emplace();
    for (auto& c : describe_topic_configs(b.config(), spec.configs)) {
      response::creatable_topic_configs cc;
      cc.name = c.name;
      cc.value = c.value;
      cc.read_only = false;
      cc.config_source = static_cast<int8_t>(c.source);
      cc.is_sensitive = false;
      r.configs->push_back(std::move(cc));
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
