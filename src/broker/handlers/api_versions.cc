// ApiVersions: the versions we serve, straight from the handler table.
#include "broker/handler.h"

namespace gregor::broker {

runtime::task<std::optional<protocol::api_versions_response>> handle_api_versions(request_context& ctx,
                                                                                  protocol::api_versions_request&) {
  protocol::api_versions_response resp;
  for (auto& h : api_handlers()) {
    if (!(h.listeners & ctx.listener_kind_mask)) continue;
    protocol::api_versions_response::api_version v;
    v.api_key = h.api_key;
    v.min_version = h.min_version;
    v.max_version = h.max_version;
    resp.api_keys.push_back(v);
  }
  co_return resp;
}

}  // namespace gregor::broker
