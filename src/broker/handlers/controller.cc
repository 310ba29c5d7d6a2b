// The controller's APIs: BrokerRegistration, BrokerHeartbeat,
// AlterPartition and AllocateProducerIds (from brokers, on the controller
// listener),
// UnregisterBroker, ElectLeaders, AlterPartitionReassignments and
// ListPartitionReassignments (forwarded by brokers, or sent straight to the
// controller), and Envelope: a request a broker forwards for a client,
// answered here as if the client had sent it.
// Everything runs on shard 0, where the controller lives.
#include "base/log.h"
#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/lifecycle.h"
#include "metadata/cluster_control.h"
#include "runtime/shards.h"

namespace gregor::broker {

using protocol::code;
using protocol::error_code;

namespace {
constexpr int16_t kEnvelopeVersion = 0;


// The client's IPv4 address in network order, from "a.b.c.d:port" (empty if not IPv4).
bytes address_bytes(const std::string& peer) {
  bytes out;
  unsigned a, b, c, d;
  if (std::sscanf(peer.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) == 4)
    out = {static_cast<uint8_t>(a), static_cast<uint8_t>(b), static_cast<uint8_t>(c), static_cast<uint8_t>(d)};
  return out;
}
}  // namespace

runtime::task<std::optional<protocol::broker_registration_response>> handle_broker_registration(
    request_context& ctx, protocol::broker_registration_request& req) {
  auto& b = ctx.b;
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::broker_registration_response>> {
    protocol::broker_registration_response resp;
    if (!b.controller() || !b.is_active_controller()) {
      resp.error_code = code(error_code::not_controller);
      co_return resp;
    }
    auto r = co_await b.controller()->register_broker(broker_lifecycle::from_wire(req));
    resp.error_code = code(r.error);
    resp.broker_epoch = r.broker_epoch;
    if (r.error == error_code::inconsistent_cluster_id)
      log::get("controller")->warn("refusing the registration of broker {}: {}", req.broker_id, r.message);
    co_return resp;
  });
}

runtime::task<std::optional<protocol::broker_heartbeat_response>> handle_broker_heartbeat(
    request_context& ctx, protocol::broker_heartbeat_request& req) {
  auto& b = ctx.b;
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<protocol::broker_heartbeat_response>> {
    protocol::broker_heartbeat_response resp;
    if (!b.controller()) {
      resp.error_code = code(error_code::not_controller);
      co_return resp;
    }
    auto r = co_await b.controller()->heartbeat(
        {req.broker_id, req.broker_epoch, req.current_metadata_offset, req.want_fence, req.want_shut_down});
    resp.error_code = code(r.error);
    resp.is_caught_up = r.is_caught_up;
    resp.is_fenced = r.is_fenced;
    resp.should_shut_down = r.should_shut_down;
    co_return resp;
  });
}

runtime::task<std::optional<protocol::alter_partition_response>> handle_alter_partition(
    request_context& ctx, protocol::alter_partition_request& req) {
  const int16_t v = ctx.version();
  metadata::alter_partition_request plan{req.broker_id, req.broker_epoch, v, {}};
  for (auto& t : req.topics) {
    for (auto& p : t.partitions) {
      auto& item = plan.partitions.emplace_back();
      item.topic_name = t.topic_name;
      item.topic_id = t.topic_id;
      item.partition = p.partition_index;
      item.leader_epoch = p.leader_epoch;
      item.partition_epoch = p.partition_epoch;
      item.leader_recovery_state = p.leader_recovery_state;
      // Before v3 the ISR comes without broker epochs: nothing to check them against.
      if (v >= 3) {
        for (auto& m : p.new_isr_with_epochs) item.new_isr.push_back({m.broker_id, m.broker_epoch});
      } else {
        for (int32_t id : p.new_isr) item.new_isr.push_back({id, -1});
      }
    }
  }
  metadata::alter_partition_result result;
  auto d = co_await ctx.b.controller_write(
      [&](const metadata::image& img, std::vector<metadata::record>& out) {
        result = metadata::plan_alter_partition(img, plan, out);
        return metadata::decision{};
      },
      false);
  protocol::alter_partition_response resp;
  // A failure of the whole request (not the controller, a stale sender) is
  // the top-level error alone, as Kafka answers it.
  if (!d.ok() || result.error != error_code::none) {
    resp.error_code = code(d.ok() ? result.error : d.error);
    co_return resp;
  }
  size_t k = 0;
  for (auto& t : req.topics) {
    auto& rt = resp.topics.emplace_back();
    rt.topic_name = t.topic_name;
    rt.topic_id = t.topic_id;
    for (auto& p : t.partitions) {
      auto& a = result.partitions[k++];
      auto& rp = rt.partitions.emplace_back();
      rp.partition_index = p.partition_index;
      rp.error_code = code(a.error);
      if (a.error != error_code::none) continue;
      rp.leader_id = a.partition.leader;
      rp.leader_epoch = a.partition.leader_epoch;
      rp.isr = a.partition.isr;
      rp.leader_recovery_state = a.partition.leader_recovery_state;
      rp.partition_epoch = a.partition.partition_epoch;
    }
  }
  co_return resp;
}

runtime::task<std::optional<protocol::allocate_producer_ids_response>> handle_allocate_producer_ids(
    request_context& ctx, protocol::allocate_producer_ids_request& req) {
  metadata::producer_ids_result result;
  auto d = co_await ctx.b.controller_write(
      [&](const metadata::image& img, std::vector<metadata::record>& out) {
        result = metadata::plan_allocate_producer_ids(img, req.broker_id, req.broker_epoch, out);
        return metadata::decision{};
      },
      false);
  protocol::allocate_producer_ids_response resp;
  resp.error_code = code(d.ok() ? result.error : d.error);
  if (resp.error_code == 0) {
    resp.producer_id_start = result.producer_id_start;
    resp.producer_id_len = result.producer_id_len;
    log::get("controller")->info("gave producer ids {} to {} to broker {}", result.producer_id_start,
                                 result.producer_id_start + result.producer_id_len - 1, req.broker_id);
  } else if (d.ok()) {
    log::get("controller")->info("refused producer ids to broker {}: {}", req.broker_id, result.message);
  }
  co_return resp;
}

runtime::task<std::optional<protocol::unregister_broker_response>> handle_unregister_broker(
    request_context& ctx, protocol::unregister_broker_request& req) {
  auto d = co_await ctx.b.controller_write(
      [id = req.broker_id, unclean = ctx.b.config().unclean_leader_election_enable](const metadata::image& img,
                                                                                  std::vector<metadata::record>& out) {
        return metadata::plan_unregister_broker(img, id, out, unclean);
      },
      false);
  protocol::unregister_broker_response resp;
  resp.error_code = code(d.error);
  if (!d.ok()) resp.error_message = d.message;
  co_return resp;
}

runtime::task<std::optional<protocol::elect_leaders_response>> handle_elect_leaders(
    request_context& ctx, protocol::elect_leaders_request& req) {
  const int16_t v = ctx.version();
  auto type = v >= 1 && req.election_type == 1 ? metadata::election_type::unclean : metadata::election_type::preferred;
  const bool all = !req.topic_partitions.has_value();
  struct outcome {
    std::string topic;
    int32_t partition;
    metadata::decision d;
  };
  std::vector<outcome> results;
  auto d = co_await ctx.b.controller_write(
      [&](const metadata::image& img, std::vector<metadata::record>& out) {
        results.clear();
        if (all) {
          for (auto& [name, t] : img.topics)
            for (auto& p : t->partitions) results.push_back({name, p.partition, {}});
        } else {
          for (auto& t : *req.topic_partitions)
            for (int32_t p : t.partitions) results.push_back({t.topic, p, {}});
        }
        for (auto& r : results) r.d = metadata::plan_elect_leader(img, r.topic, r.partition, type, out);
        return metadata::decision{};
      },
      false);
  protocol::elect_leaders_response resp;
  if (!d.ok()) {
    resp.error_code = code(d.error);
    for (auto& r : results) r.d = d;
  }
  std::map<std::string, size_t> by_topic;
  for (auto& r : results) {
    // Asked for everything: only the partitions an election was attempted for.
    if (all && r.d.error == error_code::election_not_needed) continue;
    auto [it, fresh] = by_topic.emplace(r.topic, resp.replica_election_results.size());
    if (fresh) resp.replica_election_results.emplace_back().topic = r.topic;
    auto& pr = resp.replica_election_results[it->second].partition_result.emplace_back();
    pr.partition_id = r.partition;
    pr.error_code = code(r.d.error);
    if (!r.d.ok()) pr.error_message = r.d.message;
  }
  co_return resp;
}

runtime::task<std::optional<protocol::alter_partition_reassignments_response>> handle_alter_partition_reassignments(
    request_context& ctx, protocol::alter_partition_reassignments_request& req) {
  std::vector<std::vector<metadata::decision>> results(req.topics.size());
  auto d = co_await ctx.b.controller_write(
      [&](const metadata::image& img, std::vector<metadata::record>& out) {
        // Each partition on the image as the ones before it left it.
        metadata::image current = img;
        for (size_t i = 0; i < req.topics.size(); ++i) {
          results[i].clear();
          for (auto& p : req.topics[i].partitions) {
            std::vector<metadata::record> one;
            auto r = metadata::plan_alter_reassignment(current, req.topics[i].name, p.partition_index, p.replicas, one);
            results[i].push_back(r);
            if (!one.empty()) current = metadata::apply(current, one, current.last_offset + 1);
            for (auto& rec : one) out.push_back(std::move(rec));
          }
        }
        return metadata::decision{};
      },
      false);
  protocol::alter_partition_reassignments_response resp;
  if (!d.ok()) {
    resp.error_code = code(d.error);
    resp.error_message = d.message;
  }
  for (size_t i = 0; i < req.topics.size(); ++i) {
    auto& t = resp.responses.emplace_back();
    t.name = req.topics[i].name;
    for (size_t j = 0; j < req.topics[i].partitions.size(); ++j) {
      auto& p = t.partitions.emplace_back();
      p.partition_index = req.topics[i].partitions[j].partition_index;
      auto& r = d.ok() && j < results[i].size() ? results[i][j] : d;
      p.error_code = code(r.error);
      if (!r.ok()) p.error_message = r.message;
    }
  }
  co_return resp;
}

runtime::task<std::optional<protocol::list_partition_reassignments_response>> handle_list_partition_reassignments(
    request_context& ctx, protocol::list_partition_reassignments_request& req) {
  auto& b = ctx.b;
  co_return co_await runtime::submit_to(
      0, [&]() -> runtime::task<std::optional<protocol::list_partition_reassignments_response>> {
        protocol::list_partition_reassignments_response resp;
        if (!b.is_active_controller()) {
          resp.error_code = code(error_code::not_controller);
          co_return resp;
        }
        std::map<std::string, size_t> by_topic;
        for (auto& r : metadata::list_reassignments(*b.metadata_loader().current())) {
          if (req.topics) {
            bool asked = false;
            for (auto& t : *req.topics)
              if (t.name == r.topic)
                for (int32_t p : t.partition_indexes) asked = asked || p == r.partition;
            if (!asked) continue;
          }
          auto [it, fresh] = by_topic.emplace(r.topic, resp.topics.size());
          if (fresh) resp.topics.emplace_back().name = r.topic;
          auto& p = resp.topics[it->second].partitions.emplace_back();
          p.partition_index = r.partition;
          p.replicas = r.replicas;
          p.adding_replicas = r.adding;
          p.removing_replicas = r.removing;
        }
        co_return resp;
      });
}

// ---- forwarding

runtime::task<std::optional<protocol::envelope_response>> handle_envelope(request_context& ctx,
                                                                         protocol::envelope_request& req) {
  protocol::envelope_response resp;
  auto& b = ctx.b;
  if (!b.is_active_controller()) {
    resp.error_code = code(error_code::not_controller);
    co_return resp;
  }
  protocol::wire_reader r{bytes_view(req.request_data)};
  request_context inner{b, {}, ctx.peer};
  inner.listener = ctx.listener;
  inner.listener_kind_mask = on_controller;
  inner.forwarded = true;
  if (!protocol::read_request_header(r, inner.header)) {
    resp.error_code = code(error_code::invalid_request);
    co_return resp;
  }
  auto* h = find_handler(inner.header.request_api_key, on_controller);
  if (!h || !h->forwardable || inner.version() < h->min_version || inner.version() > h->max_version) {
    resp.error_code = code(error_code::invalid_request);
    co_return resp;
  }
  auto out = co_await h->invoke(inner, r);
  if (out.what != handler_outcome::kind::respond) {
    resp.error_code = code(error_code::invalid_request);
    co_return resp;
  }
  bytes data;
  for (auto& c : out.response.chunks()) {
    auto& bb = std::get<bytes>(c);
    data.insert(data.end(), bb.begin(), bb.end());
  }
  resp.response_data = bytes(data.begin() + 4, data.end());  // without the frame size
  co_return resp;
}

runtime::task<std::optional<iobuf>> forward_to_controller(broker& b, bytes_view frame, const std::string& peer,
                                                          int64_t timeout_ms) {
  co_return co_await runtime::submit_to(0, [&]() -> runtime::task<std::optional<iobuf>> {
    const int64_t deadline = runtime::monotonic_ms() + timeout_ms;
    protocol::envelope_request req;
    req.request_data = bytes(frame.begin(), frame.end());
    req.client_host_address = address_bytes(peer);
    while (!b.stopping() && runtime::monotonic_ms() < deadline) {
      if (b.is_active_controller()) co_return std::nullopt;  // it moved here: answer locally
      auto r = co_await b.call_controller<protocol::envelope_response>(req, kEnvelopeVersion,
                                                                       deadline - runtime::monotonic_ms());
      if (!r) break;
      if (static_cast<error_code>(r->error_code) == error_code::not_controller) {
        // Leadership moved while the request travelled: find the new controller.
        co_await b.quorum().wait_for_change(b.quorum().changes(), 200);
        continue;
      }
      if (r->error_code != 0 || !r->response_data) break;
      iobuf out;
      bytes size(4);
      store_be<int32_t>(size.data(), static_cast<int32_t>(r->response_data->size()));
      out.append(bytes_view(size));
      out.append(bytes_view(*r->response_data));
      co_return out;
    }
    co_return std::nullopt;
  });
}

}  // namespace gregor::broker
