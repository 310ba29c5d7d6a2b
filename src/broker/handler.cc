#include "broker/handler.h"

namespace gregor::broker {

#define GREGOR_HANDLER_ON(name, lo, hi, where, fwd)                                            \
  api_handler{protocol::name##_request::api_key, #name, lo, hi,                                  \
              &invoke_typed<protocol::name##_request, protocol::name##_response, &handle_##name>, where, fwd}
#define GREGOR_HANDLER(name, lo, hi) GREGOR_HANDLER_ON(name, lo, hi, on_broker, false)

const std::vector<api_handler>& api_handlers() {
  // Produce is advertised from 0 because librdkafka turns compression off
  // unless the range includes 0; v0-2 (legacy message sets) are answered with
  // UNSUPPORTED_VERSION by the handler until up-conversion exists.
  static const std::vector<api_handler> table = {
      GREGOR_HANDLER(produce, 0, 9),
      // On the controller listener Fetch serves the metadata partition to the quorum.
      GREGOR_HANDLER_ON(fetch, 4, 12, on_both, false),
      GREGOR_HANDLER(list_offsets, 0, 7),
      GREGOR_HANDLER(metadata, 0, 12),
      GREGOR_HANDLER_ON(api_versions, 0, 3, on_both, false),
      GREGOR_HANDLER_ON(create_topics, 0, 7, on_both, true),
      GREGOR_HANDLER_ON(delete_topics, 0, 6, on_both, true),
      GREGOR_HANDLER(delete_records, 0, 2),
      GREGOR_HANDLER(describe_producers, 0, 0),
      GREGOR_HANDLER(write_txn_markers, 0, 1),
      GREGOR_HANDLER(offset_for_leader_epoch, 0, 4),
      GREGOR_HANDLER(describe_configs, 0, 4),
      GREGOR_HANDLER_ON(alter_configs, 0, 2, on_both, true),
      GREGOR_HANDLER(describe_log_dirs, 0, 4),
      GREGOR_HANDLER_ON(create_partitions, 0, 3, on_both, true),
      GREGOR_HANDLER_ON(incremental_alter_configs, 0, 1, on_both, true),
      GREGOR_HANDLER_ON(describe_cluster, 0, 1, on_both, false),
      GREGOR_HANDLER_ON(elect_leaders, 0, 2, on_both, true),
      GREGOR_HANDLER_ON(alter_partition_reassignments, 0, 0, on_both, true),
      GREGOR_HANDLER_ON(list_partition_reassignments, 0, 0, on_both, true),
      GREGOR_HANDLER_ON(describe_quorum, 0, 2, on_both, true),
      GREGOR_HANDLER_ON(vote, 0, 2, on_controller, false),
      GREGOR_HANDLER_ON(begin_quorum_epoch, 0, 1, on_controller, false),
      GREGOR_HANDLER_ON(end_quorum_epoch, 0, 1, on_controller, false),
      GREGOR_HANDLER_ON(fetch_snapshot, 0, 1, on_controller, false),
      GREGOR_HANDLER_ON(broker_registration, 0, 4, on_controller, false),
      GREGOR_HANDLER_ON(broker_heartbeat, 0, 1, on_controller, false),
      GREGOR_HANDLER_ON(alter_partition, 0, 3, on_controller, false),
      GREGOR_HANDLER_ON(allocate_producer_ids, 0, 0, on_controller, false),
      GREGOR_HANDLER_ON(unregister_broker, 0, 0, on_both, true),
      GREGOR_HANDLER_ON(envelope, 0, 0, on_controller, false),
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
      GREGOR_HANDLER(txn_offset_commit, 0, 3),
      GREGOR_HANDLER(init_producer_id, 0, 4),
      GREGOR_HANDLER(add_partitions_to_txn, 0, 4),
      GREGOR_HANDLER(add_offsets_to_txn, 0, 3),
      GREGOR_HANDLER(end_txn, 0, 3),
      GREGOR_HANDLER(describe_transactions, 0, 0),
      GREGOR_HANDLER(list_transactions, 0, 1),
  };
  return table;
}

const api_handler* find_handler(int16_t api_key) {
  for (auto& h : api_handlers())
    if (h.api_key == api_key) return &h;
  return nullptr;
}

const api_handler* find_handler(int16_t api_key, uint8_t listener_kind_mask) {
  auto* h = find_handler(api_key);
  return h && (h->listeners & listener_kind_mask) ? h : nullptr;
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
