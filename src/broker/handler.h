#pragma once
// The handler table: for each API we serve, its key, the versions we
// advertise and a function that decodes, handles and encodes. ApiVersions is
// answered from this table, so what we advertise is what we serve.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/iobuf.h"
#include "protocol/messages.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker;

enum class listener_kind : uint8_t;

struct request_context {
  broker& b;
  protocol::request_header header;
  const std::string& peer;
  // The listener the request came in on: Metadata answers with the brokers'
  // endpoints of the same listener, as Kafka does.
  std::string listener = "PLAINTEXT";
  // Forwarded by another broker (inside an Envelope): run it here, never forward again.
  bool forwarded = false;
  // Which kind of listener (broker or controller): ApiVersions lists that kind's APIs.
  uint8_t listener_kind_mask = 1;
  int16_t version() const { return header.request_api_version; }
};

// What became of a request.
struct handler_outcome {
  enum class kind { respond, no_response, malformed } what = kind::respond;
  iobuf response;  // size prefix, header and body, ready to send
};

// Where an API is served: on client (broker) listeners, on the controller
// listener, or both.
inline constexpr uint8_t on_broker = 1;
inline constexpr uint8_t on_controller = 2;
inline constexpr uint8_t on_both = 3;

struct api_handler {
  int16_t api_key;
  const char* name;
  int16_t min_version;  // advertised range
  int16_t max_version;
  runtime::task<handler_outcome> (*invoke)(request_context& ctx, protocol::wire_reader& body);
  uint8_t listeners = on_broker;
  // Decided by the active controller: a broker that is not it forwards the
  // request there inside an Envelope, as Kafka's brokers do.
  bool forwardable = false;
};

const std::vector<api_handler>& api_handlers();
const api_handler* find_handler(int16_t api_key);
// The handler of an API served on this kind of listener, or nullptr.
const api_handler* find_handler(int16_t api_key, uint8_t listener_kind_mask);

// Encodes a complete response frame: size, response header, body.
template <class Response>
iobuf encode_response(const Response& resp, int16_t api_key, int16_t version, int32_t correlation_id) {
  iobuf out;
  out.tail().resize(4);
  protocol::wire_writer w(out);
  protocol::response_header h;
  h.correlation_id = correlation_id;
  h.encode(w, protocol::response_header_version(api_key, version));
  resp.encode(w, version);
  store_be<int32_t>(std::get<bytes>(out.chunks().front()).data(), static_cast<int32_t>(out.size() - 4));
  return out;
}

// Adapts a typed handler `task<std::optional<Resp>> fn(request_context&, Req&)`
// (nullopt = send no response, as for acks=0 produce) to the table's form.
template <class Req, class Resp, runtime::task<std::optional<Resp>> (*Fn)(request_context&, Req&)>
runtime::task<handler_outcome> invoke_typed(request_context& ctx, protocol::wire_reader& body) {
  Req req;
  if (!req.decode(body, ctx.version()) || !body.ok()) co_return handler_outcome{handler_outcome::kind::malformed, {}};
  auto resp = co_await Fn(ctx, req);
  if (!resp) co_return handler_outcome{handler_outcome::kind::no_response, {}};
  co_return handler_outcome{handler_outcome::kind::respond,
                            encode_response(*resp, Req::api_key, ctx.version(), ctx.header.correlation_id)};
}

// The handlers, one file each under handlers/.
runtime::task<std::optional<protocol::api_versions_response>> handle_api_versions(request_context&,
                                                                                  protocol::api_versions_request&);
runtime::task<std::optional<protocol::metadata_response>> handle_metadata(request_context&, protocol::metadata_request&);
runtime::task<std::optional<protocol::produce_response>> handle_produce(request_context&, protocol::produce_request&);
runtime::task<std::optional<protocol::fetch_response>> handle_fetch(request_context&, protocol::fetch_request&);
runtime::task<std::optional<protocol::list_offsets_response>> handle_list_offsets(request_context&,
                                                                                  protocol::list_offsets_request&);
runtime::task<std::optional<protocol::create_topics_response>> handle_create_topics(request_context&,
                                                                                    protocol::create_topics_request&);
runtime::task<std::optional<protocol::delete_topics_response>> handle_delete_topics(request_context&,
                                                                                    protocol::delete_topics_request&);

// Consumer groups (handlers/group_*.cc), answered by the group coordinator.
runtime::task<std::optional<protocol::find_coordinator_response>> handle_find_coordinator(
    request_context&, protocol::find_coordinator_request&);
runtime::task<std::optional<protocol::join_group_response>> handle_join_group(request_context&,
                                                                             protocol::join_group_request&);
runtime::task<std::optional<protocol::sync_group_response>> handle_sync_group(request_context&,
                                                                             protocol::sync_group_request&);
runtime::task<std::optional<protocol::heartbeat_response>> handle_heartbeat(request_context&,
                                                                           protocol::heartbeat_request&);
runtime::task<std::optional<protocol::leave_group_response>> handle_leave_group(request_context&,
                                                                               protocol::leave_group_request&);
runtime::task<std::optional<protocol::offset_commit_response>> handle_offset_commit(request_context&,
                                                                                   protocol::offset_commit_request&);
runtime::task<std::optional<protocol::offset_fetch_response>> handle_offset_fetch(request_context&,
                                                                                 protocol::offset_fetch_request&);
runtime::task<std::optional<protocol::offset_delete_response>> handle_offset_delete(request_context&,
                                                                                   protocol::offset_delete_request&);
// TxnOffsetCommit: offsets of a transaction, pending until its marker.
runtime::task<std::optional<protocol::txn_offset_commit_response>> handle_txn_offset_commit(
    request_context&, protocol::txn_offset_commit_request&);
runtime::task<std::optional<protocol::list_groups_response>> handle_list_groups(request_context&,
                                                                               protocol::list_groups_request&);
runtime::task<std::optional<protocol::describe_groups_response>> handle_describe_groups(
    request_context&, protocol::describe_groups_request&);
runtime::task<std::optional<protocol::delete_groups_response>> handle_delete_groups(request_context&,
                                                                                   protocol::delete_groups_request&);

// Configs, partitions, records, log dirs, cluster (handlers/<name>.cc).
runtime::task<std::optional<protocol::describe_configs_response>> handle_describe_configs(
    request_context&, protocol::describe_configs_request&);
runtime::task<std::optional<protocol::alter_configs_response>> handle_alter_configs(request_context&,
                                                                                  protocol::alter_configs_request&);
runtime::task<std::optional<protocol::incremental_alter_configs_response>> handle_incremental_alter_configs(
    request_context&, protocol::incremental_alter_configs_request&);
runtime::task<std::optional<protocol::create_partitions_response>> handle_create_partitions(
    request_context&, protocol::create_partitions_request&);
runtime::task<std::optional<protocol::delete_records_response>> handle_delete_records(
    request_context&, protocol::delete_records_request&);
runtime::task<std::optional<protocol::describe_producers_response>> handle_describe_producers(
    request_context&, protocol::describe_producers_request&);
runtime::task<std::optional<protocol::write_txn_markers_response>> handle_write_txn_markers(
    request_context&, protocol::write_txn_markers_request&);
runtime::task<std::optional<protocol::offset_for_leader_epoch_response>> handle_offset_for_leader_epoch(
    request_context&, protocol::offset_for_leader_epoch_request&);
runtime::task<std::optional<protocol::describe_log_dirs_response>> handle_describe_log_dirs(
    request_context&, protocol::describe_log_dirs_request&);
runtime::task<std::optional<protocol::describe_cluster_response>> handle_describe_cluster(
    request_context&, protocol::describe_cluster_request&);

// Idempotent producers (handlers/init_producer_id.cc).
runtime::task<std::optional<protocol::init_producer_id_response>> handle_init_producer_id(
    request_context&, protocol::init_producer_id_request&);
// Transactions (handlers/transactions.cc), answered by the transaction coordinator.
runtime::task<std::optional<protocol::add_partitions_to_txn_response>> handle_add_partitions_to_txn(
    request_context&, protocol::add_partitions_to_txn_request&);
runtime::task<std::optional<protocol::add_offsets_to_txn_response>> handle_add_offsets_to_txn(
    request_context&, protocol::add_offsets_to_txn_request&);
runtime::task<std::optional<protocol::end_txn_response>> handle_end_txn(request_context&, protocol::end_txn_request&);
runtime::task<std::optional<protocol::list_transactions_response>> handle_list_transactions(
    request_context&, protocol::list_transactions_request&);
runtime::task<std::optional<protocol::describe_transactions_response>> handle_describe_transactions(
    request_context&, protocol::describe_transactions_request&);

// The metadata quorum and the controller (handlers/quorum.cc, handlers/controller.cc).
runtime::task<std::optional<protocol::vote_response>> handle_vote(request_context&, protocol::vote_request&);
runtime::task<std::optional<protocol::begin_quorum_epoch_response>> handle_begin_quorum_epoch(
    request_context&, protocol::begin_quorum_epoch_request&);
runtime::task<std::optional<protocol::end_quorum_epoch_response>> handle_end_quorum_epoch(
    request_context&, protocol::end_quorum_epoch_request&);
runtime::task<std::optional<protocol::fetch_snapshot_response>> handle_fetch_snapshot(
    request_context&, protocol::fetch_snapshot_request&);
runtime::task<std::optional<protocol::describe_quorum_response>> handle_describe_quorum(
    request_context&, protocol::describe_quorum_request&);
runtime::task<std::optional<protocol::broker_registration_response>> handle_broker_registration(
    request_context&, protocol::broker_registration_request&);
runtime::task<std::optional<protocol::broker_heartbeat_response>> handle_broker_heartbeat(
    request_context&, protocol::broker_heartbeat_request&);
runtime::task<std::optional<protocol::alter_partition_response>> handle_alter_partition(
    request_context&, protocol::alter_partition_request&);
runtime::task<std::optional<protocol::allocate_producer_ids_response>> handle_allocate_producer_ids(
    request_context&, protocol::allocate_producer_ids_request&);
runtime::task<std::optional<protocol::unregister_broker_response>> handle_unregister_broker(
    request_context&, protocol::unregister_broker_request&);
runtime::task<std::optional<protocol::envelope_response>> handle_envelope(request_context&,
                                                                         protocol::envelope_request&);
runtime::task<std::optional<protocol::elect_leaders_response>> handle_elect_leaders(request_context&,
                                                                                   protocol::elect_leaders_request&);
runtime::task<std::optional<protocol::alter_partition_reassignments_response>> handle_alter_partition_reassignments(
    request_context&, protocol::alter_partition_reassignments_request&);
runtime::task<std::optional<protocol::list_partition_reassignments_response>> handle_list_partition_reassignments(
    request_context&, protocol::list_partition_reassignments_request&);

// Sends a request (its whole frame, header included, no size) to the active
// controller inside an Envelope and returns the controller's response frame
// (size, header, body), or nullopt if no controller answered in time.
runtime::task<std::optional<iobuf>> forward_to_controller(broker& b, bytes_view frame, const std::string& peer,
                                                          int64_t timeout_ms);

// The ApiVersions answer to a version we do not know: v0 body, error 35 and
// our ApiVersions range, so the client can retry with a version we serve (KIP-511).
iobuf unsupported_api_versions_response(int32_t correlation_id);

}  // namespace gregor::broker
