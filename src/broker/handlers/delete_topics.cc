// DeleteTopics: by name (v0-5) or by name or id (v6+).
#include "broker/broker.h"
#include "broker/handler.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::delete_topics_response;

runtime::task<std::optional<response>> handle_delete_topics(request_context& ctx, protocol::delete_topics_request& req) {
  auto& b = ctx.b;
  int16_t v = ctx.version();
  auto img = b.image();
  response resp;
  std::vector<std::string> names;
  std::vector<size_t> slots;

  auto add = [&](std::optional<std::string> name, metadata::uuid id) {
    auto& r = resp.responses.emplace_back();
    r.name = name;
    r.topic_id = id;
    if (!b.config().delete_topic_enable) {
      r.error_code = static_cast<int16_t>(error_code::topic_deletion_disabled);
      return;
    }
    const metadata::topic_state* t = name ? img->topic(*name) : img->topic_by_id(id);
    if (!t) {
      r.error_code = static_cast<int16_t>(name ? error_code::unknown_topic_or_partition : error_code::unknown_topic_id);
      if (v >= 5) r.error_message = name ? "This server does not host this topic-partition." : "Unknown topic id.";
      return;
    }
    if (t->is_internal()) {
      r.error_code = static_cast<int16_t>(error_code::invalid_topic_exception);
      if (v >= 5) r.error_message = "Internal topics cannot be deleted: " + t->name;
      return;
    }
    r.name = t->name;
    r.topic_id = t->topic_id;
    names.push_back(t->name);
    slots.push_back(resp.responses.size() - 1);
  };
  if (v >= 6)
    for (auto& t : req.topics) add(t.name, t.topic_id);
  else
    for (auto& n : req.topic_names) add(n, metadata::uuid{});

  auto decisions = co_await b.delete_topics(names);
  for (size_t i = 0; i < decisions.size(); ++i) {
    auto& r = resp.responses[slots[i]];
    r.error_code = static_cast<int16_t>(decisions[i].error);
    if (v >= 5 && !decisions[i].ok()) r.error_message = decisions[i].message;
  }
  co_return resp;
}

}  // namespace gregor::broker
