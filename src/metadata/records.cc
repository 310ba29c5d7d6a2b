#include "metadata/records.h"

#include "base/varint.h"

namespace gregor::metadata {
namespace {

constexpr uint64_t kFrameVersion = 1;
// KRaft record type ids (the apiKey of each metadata record).
constexpr uint64_t kTopicRecord = 2;
constexpr uint64_t kPartitionRecord = 3;
constexpr uint64_t kConfigRecord = 4;
constexpr uint64_t kRemoveTopicRecord = 9;
// Config resource types, as in DescribeConfigs.
constexpr int8_t kTopicResource = 2;
constexpr int8_t kBrokerResource = 4;

template <class T>
void encode_body(bytes& out, uint64_t type, int16_t version, const T& rec) {
  put_uvarint(out, kFrameVersion);
  put_uvarint(out, type);
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
  T rec;
  protocol::wire_reader r(bytes_view(p, static_cast<size_t>(end - p)));
  if (!rec.decode(r, version) || !r.ok()) return error{"malformed metadata record"};
  return record(std::move(rec));
}

}  // namespace

bytes encode_record(const record& r) {
  bytes out;
  std::visit(
      [&](auto& rec) {
        using T = std::decay_t<decltype(rec)>;
        if constexpr (std::is_same_v<T, protocol::topic_record>) encode_body(out, kTopicRecord, 0, rec);
        if constexpr (std::is_same_v<T, protocol::partition_record>) encode_body(out, kPartitionRecord, 0, rec);
        if constexpr (std::is_same_v<T, protocol::remove_topic_record>) encode_body(out, kRemoveTopicRecord, 0, rec);
        if constexpr (std::is_same_v<T, protocol::config_record>) encode_body(out, kConfigRecord, 0, rec);
      },
      r);
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
  switch (*type) {
    case kTopicRecord: return decode_body<protocol::topic_record>(p, end, v);
    case kPartitionRecord: return decode_body<protocol::partition_record>(p, end, v);
    case kConfigRecord: return decode_body<protocol::config_record>(p, end, v);
    case kRemoveTopicRecord: return decode_body<protocol::remove_topic_record>(p, end, v);
    default: return error{"unknown metadata record type " + std::to_string(*type)};
  }
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
          }
        },
        rec);
  }
  return next;
}

}  // namespace gregor::metadata
