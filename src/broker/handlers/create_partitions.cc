// CreatePartitions: grows topics (never shrinks them). The new partitions'
// logs are open on their shards before the answer goes out.
#include <map>

#include "broker/broker.h"
#include "broker/handler.h"
#include "metadata/controller.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::create_partitions_response;

runtime::task<std::optional<response>> handle_create_partitions(request_context& ctx,
                                                                protocol::create_partitions_request& req) {
  auto& b = ctx.b;
  std::map<std::string, int> seen;
  for (auto& t : req.topics) ++seen[t.name];
  response resp;
  for (auto& t : req.topics) {
    auto& out = resp.results.emplace_back();
    out.name = t.name;
    if (seen[t.name] > 1) {
      out.error_code = static_cast<int16_t>(error_code::invalid_request);
      out.error_message = "Duplicate topic in request.";
      continue;
    }
    std::optional<std::vector<std::vector<int32_t>>> assignments;
    if (t.assignments) {
      assignments.emplace();
      for (auto& a : *t.assignments) assignments->push_back(a.broker_ids);
    }
    std::string name = t.name;
    int32_t count = t.count;
    auto d = co_await b.controller_write(
        [name, count, assignments](const metadata::image& img, std::vector<metadata::record>& recs) {
          return metadata::plan_create_partitions(img, name, count, assignments, recs);
        },
        req.validate_only);
    out.error_code = static_cast<int16_t>(d.error);
    if (!d.ok()) out.error_message = d.message;
  }
  co_return resp;
}

}  // namespace gregor::broker
