#include "metadata/records.h"

#include <algorithm>

#include "base/varint.h"

namespace gregor::metadata {
namespace {

constexpr uint64_t kFrameVersion = 1;
// Config resource types, as in DescribeConfigs.
constexpr int8_t kTopicResource = 2;
constexpr int8_t kBrokerResource = 4;

// The version each record type is written in (what our metadata.version
// uses); any version of the schema is read.
template <class T>
constexpr int16_t write_version() {
  if constexpr (std::is_same_v<T, protocol::register_broker_record>) return 1;  // in_controlled_shutdown
  if constexpr (std::is_same_v<T, protocol::broker_registration_change_record>) return 1;
  return 0;
}

template <class T>
void encode_body(bytes& out, const T& rec) {
  constexpr int16_t version = write_version<T>();
  put_uvarint(out, kFrameVersion);
  put_uvarint(out, static_cast<uint64_t>(T::record_type));
  put_uvarint(out, static_cast<uint64_t>(version));
  iobuf buf;
  protocol::wire_writer w(buf);
  rec.encode(w, version);
  for (auto& c : buf.chunks()) {
    auto& b = std::get<bytes>(c);
    out.insert(out.end(), b.begin(), b.end());
  }
}

template <class T>
result<record> decode_body(const uint8_t* p, const uint8_t* end, int16_t version) {
  if (version < T::min_version || version > T::max_version)
    return error{"unsupported version " + std::to_string(version) + " of metadata record type " +
                 std::to_string(T::record_type)};
  T rec;
  protocol::wire_reader r(bytes_view(p, static_cast<size_t>(end - p)));
  if (!rec.decode(r, version) || !r.ok()) return error{"malformed metadata record"};
  return record(std::move(rec));
}

template <class T>
bool decode_if(uint64_t type, const uint8_t* p, const uint8_t* end, int16_t version, result<record>& out) {
  if (type != static_cast<uint64_t>(T::record_type)) return false;
  out = decode_body<T>(p, end, version);
  return true;
}

std::vector<int32_t> to_vector(const std::optional<std::vector<int32_t>>& v, const std::vector<int32_t>& keep) {
  return v ? *v : keep;
}

}  // namespace

bytes encode_record(const record& r) {
  bytes out;
  std::visit([&](auto& rec) { encode_body(out, rec); }, r);
  return out;
}

result<record> decode_record(bytes_view value) {
  const uint8_t* p = value.data();
  const uint8_t* end = p + value.size();
  auto frame = get_uvarint(p, end, 5);
  auto type = get_uvarint(p, end, 5);
  auto version = get_uvarint(p, end, 5);
  if (!frame || !type || !version) return error{"truncated metadata record header"};
  if (*frame != kFrameVersion) return error{"unknown metadata record frame version " + std::to_string(*frame)};
  auto v = static_cast<int16_t>(*version);
  result<record> out = error{"unknown metadata record type " + std::to_string(*type)};
  bool known = decode_if<protocol::topic_record>(*type, p, end, v, out) ||
   decode_if<protocol::partition_record>(*type, p, end, v, out) ||
   decode_if<protocol::remove_topic_record>(*type, p, end, v, out) ||
   decode_if<protocol::config_record>(*type, p, end, v, out) ||
   decode_if<protocol::register_broker_record>(*type, p, end, v, out) ||
   decode_if<protocol::unregister_broker_record>(*type, p, end, v, out) ||
   decode_if<protocol::fence_broker_record>(*type, p, end, v, out) ||
   decode_if<protocol::unfence_broker_record>(*type, p, end, v, out) ||
   decode_if<protocol::broker_registration_change_record>(*type, p, end, v, out) ||
   decode_if<protocol::partition_change_record>(*type, p, end, v, out) ||
   decode_if<protocol::feature_level_record>(*type, p, end, v, out) ||
   decode_if<protocol::no_op_record>(*type, p, end, v, out) ||
   decode_if<protocol::producer_ids_record>(*type, p, end, v, out);
  (void)known;
  return out;
}

const char* record_name(const record& r) {
  static const char* names[] = {"TopicRecord",
                                "PartitionRecord",
                                "RemoveTopicRecord",
                                "ConfigRecord",
                                "RegisterBrokerRecord",
                                "UnregisterBrokerRecord",
                                "FenceBrokerRecord",
                                "UnfenceBrokerRecord",
                                "BrokerRegistrationChangeRecord",
                                "PartitionChangeRecord",
                                "FeatureLevelRecord",
                                "NoOpRecord",
                                "ProducerIdsRecord"};
  static_assert(std::size(names) == std::variant_size_v<record>);
  return names[r.index()];
}

image apply(const image& base, const std::vector<record>& records, int64_t last_offset) {
  image next = base;
  next.last_offset = last_offset;
  // Topics being changed are copied once, then published as const.
  std::map<std::string, std::shared_ptr<topic_state>> touched;
  auto mutable_topic = [&](const std::string& name) -> topic_state* {
    if (auto it = touched.find(name); it != touched.end()) return it->second.get();
    auto it = next.topics.find(name);
    if (it == next.topics.end()) return nullptr;
    auto copy = std::make_shared<topic_state>(*it->second);
    touched[name] = copy;
    next.topics[name] = copy;
    return copy.get();
  };
  auto name_of = [&](const uuid& id) -> std::string {
    for (auto& [n, t] : next.topics)
      if (t->topic_id == id) return n;
    return {};
  };
  // A broker change applies only to the registration it was written for.
  auto registration = [&](int32_t id, int64_t epoch) -> broker_registration* {
    auto it = next.brokers.find(id);
    if (it == next.brokers.end() || it->second.broker_epoch != epoch) return nullptr;
    return &it->second;
  };
  for (auto& rec : records) {
    std::visit(
        [&](auto& r) {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, protocol::topic_record>) {
            auto t = std::make_shared<topic_state>();
            t->name = r.name;
            t->topic_id = r.topic_id;
            touched[r.name] = t;
            next.topics[r.name] = t;
          } else if constexpr (std::is_same_v<T, protocol::partition_record>) {
            auto* t = mutable_topic(name_of(r.topic_id));
            if (!t || r.partition_id < 0) return;
            if (static_cast<size_t>(r.partition_id) >= t->partitions.size()) t->partitions.resize(r.partition_id + 1);
            auto& p = t->partitions[r.partition_id];
            p.partition = r.partition_id;
            p.leader = r.leader;
            p.leader_epoch = r.leader_epoch;
            p.partition_epoch = r.partition_epoch;
            p.replicas = r.replicas;
            p.isr = r.isr;
            p.adding_replicas = r.adding_replicas;
            p.removing_replicas = r.removing_replicas;
            p.leader_recovery_state = r.leader_recovery_state;
          } else if constexpr (std::is_same_v<T, protocol::partition_change_record>) {
            // Kafka's PartitionRegistration.merge: absent fields stay; a
            // leader given (even the same one) starts a new leader epoch.
            auto* t = mutable_topic(name_of(r.topic_id));
            if (!t || r.partition_id < 0 || static_cast<size_t>(r.partition_id) >= t->partitions.size()) return;
            auto& p = t->partitions[r.partition_id];
            p.replicas = to_vector(r.replicas, p.replicas);
            p.isr = to_vector(r.isr, p.isr);
            p.adding_replicas = to_vector(r.adding_replicas, p.adding_replicas);
            p.removing_replicas = to_vector(r.removing_replicas, p.removing_replicas);
            if (r.leader != -2) {
              p.leader = r.leader;
              p.leader_epoch += 1;
            }
            if (r.leader_recovery_state >= 0) p.leader_recovery_state = r.leader_recovery_state;
            p.partition_epoch += 1;
          } else if constexpr (std::is_same_v<T, protocol::remove_topic_record>) {
            auto n = name_of(r.topic_id);
            next.topics.erase(n);
            touched.erase(n);
          } else if constexpr (std::is_same_v<T, protocol::config_record>) {
            std::map<std::string, std::string>* target = nullptr;
            if (r.resource_type == kTopicResource) {
              if (auto* t = mutable_topic(r.resource_name)) target = &t->configs;
            } else if (r.resource_type == kBrokerResource) {
              target = &next.broker_configs[r.resource_name];
            }
            if (!target) return;
            if (r.value) (*target)[r.name] = *r.value;
            else target->erase(r.name);
          } else if constexpr (std::is_same_v<T, protocol::register_broker_record>) {
            broker_registration b;
            b.node_id = r.broker_id;
            b.incarnation_id = r.incarnation_id;
            b.broker_epoch = r.broker_epoch;
            for (auto& e : r.end_points) b.endpoints.push_back({e.name, e.host, e.port, e.security_protocol});
            b.rack = r.rack;
            b.fenced = r.fenced;
            b.in_controlled_shutdown = r.in_controlled_shutdown;
            next.brokers[r.broker_id] = std::move(b);
          } else if constexpr (std::is_same_v<T, protocol::unregister_broker_record>) {
            if (registration(r.broker_id, r.broker_epoch)) next.brokers.erase(r.broker_id);
          } else if constexpr (std::is_same_v<T, protocol::fence_broker_record>) {
            if (auto* b = registration(r.id, r.epoch)) b->fenced = true;
          } else if constexpr (std::is_same_v<T, protocol::unfence_broker_record>) {
            if (auto* b = registration(r.id, r.epoch)) {
              b->fenced = false;
              b->in_controlled_shutdown = false;
            }
          } else if constexpr (std::is_same_v<T, protocol::broker_registration_change_record>) {
            if (auto* b = registration(r.broker_id, r.broker_epoch)) {
              if (r.fenced == 1) b->fenced = true;
              if (r.fenced == -1) b->fenced = false;
              if (r.in_controlled_shutdown == 1) b->in_controlled_shutdown = true;
            }
          } else if constexpr (std::is_same_v<T, protocol::feature_level_record>) {
            next.features[r.name] = r.feature_level;
          } else if constexpr (std::is_same_v<T, protocol::no_op_record>) {
            // Nothing: it only moves the log forward.
          } else if constexpr (std::is_same_v<T, protocol::producer_ids_record>) {
            // Blocks only move forward (Kafka's controller refuses to replay
            // one that does not): an id handed out is never handed out again.
            next.next_producer_id = std::max(next.next_producer_id, r.next_producer_id);
          }
        },
        rec);
  }
  return next;
}

std::vector<record> image_records(const image& img) {
  std::vector<record> out;
  for (auto& [name, level] : img.features) {
    protocol::feature_level_record f;
    f.name = name;
    f.feature_level = level;
    out.push_back(f);
  }
  for (auto& [id, b] : img.brokers) {
    protocol::register_broker_record r;
    r.broker_id = id;
    r.incarnation_id = b.incarnation_id;
    r.broker_epoch = b.broker_epoch;
    for (auto& e : b.endpoints) {
      protocol::register_broker_record::broker_endpoint ep;
      ep.name = e.name;
      ep.host = e.host;
      ep.port = static_cast<uint16_t>(e.port);
      ep.security_protocol = e.security_protocol;
      r.end_points.push_back(ep);
    }
    r.rack = b.rack;
    r.fenced = b.fenced;
    r.in_controlled_shutdown = b.in_controlled_shutdown;
    out.push_back(r);
  }
  for (auto& [name, t] : img.topics) {
    protocol::topic_record tr;
    tr.name = name;
    tr.topic_id = t->topic_id;
    out.push_back(tr);
    for (auto& p : t->partitions) {
      protocol::partition_record pr;
      pr.partition_id = p.partition;
      pr.topic_id = t->topic_id;
      pr.replicas = p.replicas;
      pr.isr = p.isr;
      pr.adding_replicas = p.adding_replicas;
      pr.removing_replicas = p.removing_replicas;
      pr.leader = p.leader;
      pr.leader_epoch = p.leader_epoch;
      pr.partition_epoch = p.partition_epoch;
      pr.leader_recovery_state = p.leader_recovery_state;
      out.push_back(pr);
    }
    for (auto& [k, v] : t->configs) {
      protocol::config_record c;
      c.resource_type = kTopicResource;
      c.resource_name = name;
      c.name = k;
      c.value = v;
      out.push_back(c);
    }
  }
  if (img.next_producer_id > 0) {
    // As Kafka's image writes it: no broker of its own.
    protocol::producer_ids_record p;
    p.broker_id = -1;
    p.broker_epoch = -1;
    p.next_producer_id = img.next_producer_id;
    out.push_back(p);
  }
  for (auto& [resource, configs] : img.broker_configs) {
    for (auto& [k, v] : configs) {
      protocol::config_record c;
      c.resource_type = kBrokerResource;
      c.resource_name = resource;
      c.name = k;
      c.value = v;
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace gregor::metadata
