// Metadata: brokers, controller and topics; creates missing topics when the
// client and the broker both allow it (auto.create.topics.enable).
#include "base/log.h"
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::metadata_response;

namespace {

response::metadata_response_topic describe_topic(const metadata::topic_state& t) {
  response::metadata_response_topic out;
  out.error_code = 0;
  out.name = t.name;
  out.topic_id = t.topic_id;
  out.is_internal = t.is_internal();
  for (auto& p : t.partitions) {
    response::metadata_response_partition mp;
    mp.error_code = 0;
    mp.partition_index = p.partition;
    mp.leader_id = p.leader;
    mp.leader_epoch = p.leader_epoch;
    mp.replica_nodes = p.replicas;
    mp.isr_nodes = p.isr;
    out.partitions.push_back(std::move(mp));
  }
  return out;
}

response::metadata_response_topic topic_error(const std::optional<std::string>& name, const metadata::uuid& id,
                                              error_code e) {
  response::metadata_response_topic out;
  out.error_code = static_cast<int16_t>(e);
  out.name = name;
  out.topic_id = id;
  return out;
}

}  // namespace

runtime::task<std::optional<response>> handle_metadata(request_context& ctx, protocol::metadata_request& req) {
  auto& b = ctx.b;
  auto img = b.image();
  int16_t v = ctx.version();
  // v0: an empty list means all topics; v1+: null means all, empty means none.
  bool all_topics = !req.topics.has_value() || (v == 0 && req.topics->empty());
  bool may_create = b.config().auto_create_topics_enable && (v < 4 || req.allow_auto_topic_creation);

  if (!all_topics && may_create) {
    std::vector<metadata::topic_spec> missing;
    for (auto& t : *req.topics) {
      if (!t.name || img->topic(*t.name) || metadata::invalid_topic_name(*t.name)) continue;
      bool dup = false;
      for (auto& m : missing) dup |= m.name == *t.name;
      if (!dup) missing.push_back(metadata::topic_spec{*t.name});
    }
    if (!missing.empty()) {
      auto decisions = co_await b.create_topics(missing, false);
      for (size_t i = 0; i < decisions.size(); ++i)
        if (!decisions[i].ok() && decisions[i].error != error_code::topic_already_exists)
          log::get("broker")->warn("auto-creating topic {} failed: {}", missing[i].name, decisions[i].message);
      img = b.image();
    }
  }

  response resp;
  // Live brokers only (fenced ones cannot serve), at the endpoint of the
  // listener this request came in on.
  for (auto& [id, br] : img->brokers) {
    if (br.fenced) continue;
    auto* ep = br.endpoint(ctx.listener);
    if (!ep) continue;
    response::metadata_response_broker mb;
    mb.node_id = id;
    mb.host = ep->host;
    mb.port = ep->port;
    mb.rack = br.rack;
    resp.brokers.push_back(mb);
  }
  resp.cluster_id = img->cluster_id;
  resp.controller_id = img->controller_id;

  if (all_topics) {
    for (auto& [name, t] : img->topics) resp.topics.push_back(describe_topic(*t));
  } else {
    for (auto& t : *req.topics) {
      const metadata::topic_state* found = nullptr;
      if (t.name) {
        found = img->topic(*t.name);
        if (!found) {
          auto e = metadata::invalid_topic_name(*t.name) ? error_code::invalid_topic_exception
                                                         : error_code::unknown_topic_or_partition;
          resp.topics.push_back(topic_error(t.name, t.topic_id, e));
          continue;
        }
      } else {
        found = img->topic_by_id(t.topic_id);
        if (!found) {
          resp.topics.push_back(topic_error(std::nullopt, t.topic_id, error_code::unknown_topic_id));
          continue;
        }
      }
      resp.topics.push_back(describe_topic(*found));
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
