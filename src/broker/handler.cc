#include "broker/handler.h"

namespace gregor::broker {

#define GREGOR_HANDLER(name, lo, hi) \
  api_handler{protocol::name##_request::api_key, #name, lo, hi, \
              &invoke_typed<protocol::name##_request, protocol::name##_response, &handle_##name>}

const std::vector<api_handler>& api_handlers() {
  // Produce is advertised from 0 because librdkafka turns compression off
  // unless the range includes 0; v0-2 (legacy message sets) are answered with
  // UNSUPPORTED_VERSION by the handler until up-conversion exists.
  static const std::vector<api_handler> table = {
      GREGOR_HANDLER(produce, 0, 9),
      GREGOR_HANDLER(fetch, 4, 12),
      GREGOR_HANDLER(list_offsets, 0, 7),
      GREGOR_HANDLER(metadata, 0, 12),
      GREGOR_HANDLER(api_versions, 0, 3),
      GREGOR_HANDLER(create_topics, 0, 7),
      GREGOR_HANDLER(delete_topics, 0, 6),
      GREGOR_HANDLER(delete_records, 0, 2),
      GREGOR_HANDLER(describe_configs, 0, 4),
      GREGOR_HANDLER(alter_configs, 0, 2),
      GREGOR_HANDLER(describe_log_dirs, 0, 4),
      GREGOR_HANDLER(create_partitions, 0, 3),
      GREGOR_HANDLER(incremental_alter_configs, 0, 1),
      GREGOR_HANDLER(describe_cluster, 0, 1),
      GREGOR_HANDLER(offset_commit, 0, 8),
      GREGOR_HANDLER(offset_fetch, 0, 8),
      GREGOR_HANDLER(find_coordinator, 0, 4),
      GREGOR_HANDLER(join_group, 0, 9),
      GREGOR_HANDLER(heartbeat, 0, 4),
      GREGOR_HANDLER(leave_group, 0, 5),
      GREGOR_HANDLER(sync_group, 0, 5),
      GREGOR_HANDLER(describe_groups, 0, 5),
      GREGOR_HANDLER(list_groups, 0, 4),
      GREGOR_HANDLER(delete_groups, 0, 2),
      GREGOR_HANDLER(offset_delete, 0, 0),
  };
  return table;
}

const api_handler* find_handler(int16_t api_key) {
  for (auto& h : api_handlers())
    if (h.api_key == api_key) return &h;
  return nullptr;
}

iobuf unsupported_api_versions_response(int32_t correlation_id) {
  protocol::api_versions_response resp;
  resp.error_code = static_cast<int16_t>(protocol::error_code::unsupported_version);
  auto* h = find_handler(protocol::api_versions_request::api_key);
  protocol::api_versions_response::api_version v;
  v.api_key = h->api_key;
  v.min_version = h->min_version;
  v.max_version = h->max_version;
  resp.api_keys.push_back(v);
  return encode_response(resp, protocol::api_versions_request::api_key, 0, correlation_id);
}

}  // namespace gregor::broker
