// Generated message code: every message round-trips in every version, size()
// matches the bytes written, truncated input fails cleanly, unknown tagged fields
// survive, and the hand-written pieces (wire, headers, errors) behave.
#include <gtest/gtest.h>

#include <string>

#include "protocol/errors.h"
#include "protocol/header.h"
#include "protocol/messages.h"
#include "protocol/samples.h"
#include "protocol/wire.h"

namespace gregor::protocol {
namespace {

bytes flatten(const iobuf& buf) {
  bytes out;
  for (auto& c : buf.chunks()) {
    auto& b = std::get<bytes>(c);  // tests never encode file regions unless they say so
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

template <class T>
bytes encode(const T& m, int16_t version) {
  iobuf buf;
  wire_writer w(buf);
  m.encode(w, version);
  return flatten(buf);
}

template <class T>
bool decode(T& m, bytes_view data, int16_t version, size_t* left = nullptr) {
  wire_reader r(data);
  bool ok = m.decode(r, version);
  if (left) *left = r.remaining();
  return ok;
}

// Encode a populated message, check size(), decode it back, compare, re-encode.
template <class T>
void round_trip_all_versions(const char* type_name) {
  for (int16_t v = T::min_version; v <= T::max_version; ++v) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE(::testing::Message() << type_name << " v" << v << " seed " << seed);
      T m;
      sample_gen g(seed * 7919 + static_cast<uint64_t>(v));
      fill_sample(m, v, g);
      bytes wire = encode(m, v);
      ASSERT_EQ(wire.size(), m.size(v));
      T back;
      size_t left = 0;
      ASSERT_TRUE(decode(back, wire, v, &left));
      EXPECT_EQ(left, 0u);
      ASSERT_TRUE(back == m);
      EXPECT_EQ(encode(back, v), wire);
    }
  }
}

// Every strict prefix of a valid encoding must fail to decode, without crashing
// (ASan/UBSan builds check the "without crashing" part properly).
template <class T>
void truncation_all_versions(const char* type_name) {
  for (int16_t v = T::min_version; v <= T::max_version; ++v) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      SCOPED_TRACE(::testing::Message() << type_name << " v" << v << " seed " << seed);
      T m;
      sample_gen g(seed * 104729 + static_cast<uint64_t>(v), /*max_count=*/1);
      fill_sample(m, v, g);
      bytes wire = encode(m, v);
      for (size_t n = 0; n < wire.size(); ++n) {
        T back;
        ASSERT_FALSE(decode(back, bytes_view(wire.data(), n), v)) << "prefix of " << n << "/" << wire.size();
      }
    }
  }
}

#define GREGOR_ROUND_TRIP(type) \
  TEST(RoundTrip, type) { round_trip_all_versions<type>(#type); }
GREGOR_PROTOCOL_MESSAGES(GREGOR_ROUND_TRIP)
#undef GREGOR_ROUND_TRIP

#define GREGOR_TRUNCATION(type) \
  TEST(Truncation, type) { truncation_all_versions<type>(#type); }
GREGOR_PROTOCOL_MESSAGES(GREGOR_TRUNCATION)
#undef GREGOR_TRUNCATION

// Random bytes must never crash a decoder (only fail or succeed).
#define GREGOR_GARBAGE(type)                                        \
  TEST(Garbage, type) {                                             \
    sample_gen g(42);                                               \
    for (int i = 0; i < 300; ++i) {                                 \
      bytes junk(g.next() % 64);                                    \
      for (auto& b : junk) b = static_cast<uint8_t>(g.next());      \
      for (int16_t v = type::min_version; v <= type::max_version; ++v) { \
        type m;                                                     \
        (void)decode(m, junk, v);                                   \
      }                                                             \
    }                                                               \
  }
GREGOR_PROTOCOL_MESSAGES(GREGOR_GARBAGE)
#undef GREGOR_GARBAGE

TEST(Decode, RejectsVersionsOutOfRange) {
  bytes empty;
  metadata_request m;
  EXPECT_FALSE(decode(m, empty, -1));
  EXPECT_FALSE(decode(m, empty, metadata_request::max_version + 1));
}

TEST(Decode, BogusArrayLengthFailsWithoutAllocating) {
  // Metadata v1: topics array of 0x7fffffff elements, then nothing.
  bytes wire = {0x7f, 0xff, 0xff, 0xff};
  metadata_request m;
  EXPECT_FALSE(decode(m, wire, 1));
  // Flexible (v9): compact length 0xfffffffe as a uvarint.
  bytes flex = {0xff, 0xff, 0xff, 0xff, 0x0f};
  EXPECT_FALSE(decode(m, flex, 9));
  // []int32 needs 4 bytes per element: 3 elements in 8 bytes is too few.
  metadata_response::metadata_response_partition p;
  bytes part = {0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2};
  wire_reader r(part);
  EXPECT_FALSE(p.decode(r, 0));
}

TEST(Decode, NullWhereNotNullableFails) {
  // Metadata v0: topics is not nullable (an empty array means "all topics").
  bytes null_array = {0xff, 0xff, 0xff, 0xff};
  metadata_request m;
  EXPECT_FALSE(decode(m, null_array, 0));
  ASSERT_TRUE(decode(m, null_array, 1));  // v1+: null means all topics
  EXPECT_FALSE(m.topics.has_value());
  // Produce v3: the topic name is never nullable.
  bytes produce = {0xff, 0xff, 0, 1, 0, 0, 0, 100, 0, 0, 0, 1, 0xff, 0xff};
  produce_request p;
  EXPECT_FALSE(decode(p, produce, 3));
}

TEST(Defaults, FromSchema) {
  metadata_request req;
  EXPECT_TRUE(req.allow_auto_topic_creation);
  metadata_response resp;
  EXPECT_EQ(resp.controller_id, -1);
  EXPECT_EQ(resp.cluster_authorized_operations, INT32_MIN);
  fetch_request f;
  EXPECT_EQ(f.max_bytes, 0x7fffffff);
  EXPECT_EQ(f.session_epoch, -1);
  EXPECT_EQ(f.replica_id, -1);
  fetch_response::partition_data pd;
  EXPECT_TRUE(pd.records.is_null());
  EXPECT_EQ(pd.snapshot_id.end_offset, -1);
  produce_response::partition_produce_response pr;
  EXPECT_EQ(pr.log_append_time_ms, -1);
  EXPECT_FALSE(pr.error_message.has_value());
  create_topics_request ct;
  EXPECT_EQ(ct.timeout_ms, 60000);
}

TEST(Constants, Versions) {
  EXPECT_EQ(produce_request::api_key, 0);
  EXPECT_EQ(produce_request::min_version, 0);
  EXPECT_EQ(produce_request::max_version, 9);
  EXPECT_EQ(produce_request::first_flexible_version, 9);
  EXPECT_EQ(fetch_response::first_flexible_version, 12);
  EXPECT_EQ(api_versions_request::api_key, 18);
  EXPECT_EQ(metadata_response::api_key, 3);
}

// ---- tagged fields ---------------------------------------------------------------

TEST(TaggedFields, DefaultsAreNotWritten) {
  api_versions_response a;
  bytes plain = encode(a, 3);
  // error_code(2) + api_keys compact length(1) + throttle(4) + tag count(1)
  EXPECT_EQ(plain.size(), 8u);
  a.finalized_features_epoch = 5;
  bytes tagged = encode(a, 3);
  // + tag(1) + size(1) + int64(8)
  EXPECT_EQ(tagged.size(), 18u);
  EXPECT_EQ(tagged[7], 1);   // one tagged field
  EXPECT_EQ(tagged[8], 1);   // tag 1
  EXPECT_EQ(tagged[9], 8);   // 8 bytes
  api_versions_response back;
  ASSERT_TRUE(decode(back, tagged, 3));
  EXPECT_EQ(back.finalized_features_epoch, 5);
}

TEST(TaggedFields, UnknownAreKeptInOrder) {
  // Fetch response v12 partition with known tags 0-2: unknown tags 3 and 7, and
  // a known diverging epoch (tag 0), must come out as 0, 3, 7.
  fetch_response::partition_data p;
  p.diverging_epoch.epoch = 4;
  p.diverging_epoch.end_offset = 100;
  p.unknown_tagged_fields = {{3, {0xaa}}, {7, {}}};
  bytes wire;
  {
    iobuf buf;
    wire_writer w(buf);
    p.encode(w, 12);
    wire = flatten(buf);
  }
  ASSERT_EQ(wire.size(), p.size(12));
  wire_reader r(wire);
  fetch_response::partition_data back;
  ASSERT_TRUE(back.decode(r, 12));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(back == p);
  // The section is the last bytes: count 3, then tag 0 (13 bytes: int32 + int64
  // + empty tags), tag 3, tag 7.
  const bytes tail = {3, 0, 13, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 100, 0, 3, 1, 0xaa, 7, 0};
  ASSERT_GE(wire.size(), tail.size());
  EXPECT_EQ(bytes(wire.end() - static_cast<ptrdiff_t>(tail.size()), wire.end()), tail);
}

TEST(TaggedFields, UnknownSkippedInRealRequest) {
  // ApiVersions v3 request with an extra tag 9 (3 bytes) that no version defines.
  bytes wire = {0x03, 'a', 'b',         // client_software_name "ab"
                0x02, '1',              // client_software_version "1"
                0x01, 0x09, 0x03, 1, 2, 3};
  api_versions_request m;
  ASSERT_TRUE(decode(m, wire, 3));
  EXPECT_EQ(m.client_software_name, "ab");
  EXPECT_EQ(m.client_software_version, "1");
  ASSERT_EQ(m.unknown_tagged_fields.size(), 1u);
  EXPECT_EQ(m.unknown_tagged_fields[0].tag, 9u);
  EXPECT_EQ(m.unknown_tagged_fields[0].data, (bytes{1, 2, 3}));
  EXPECT_EQ(encode(m, 3), wire);
}

TEST(TaggedFields, TagTooLongForSectionFails) {
  bytes wire = {0x01, 0x01, 0x01, 0x09, 0x05, 1, 2};  // says 5 bytes, has 2
  api_versions_request m;
  EXPECT_FALSE(decode(m, wire, 3));
}

// ---- records ---------------------------------------------------------------------

TEST(Records, DecodeBorrowsTheFrame) {
  produce_request m;
  m.acks = -1;
  m.timeout_ms = 1000;
  auto& t = m.topic_data.emplace_back();
  t.name = "t";
  auto& p = t.partition_data.emplace_back();
  p.index = 0;
  p.records.set_bytes({1, 2, 3, 4, 5});
  for (int16_t v : {3, 9}) {
    bytes wire = encode(m, v);
    produce_request back;
    ASSERT_TRUE(decode(back, wire, v));
    bytes_view view = back.topic_data[0].partition_data[0].records.view();
    ASSERT_EQ(view.size(), 5u);
    // Points into `wire`, not a copy.
    EXPECT_GE(view.data(), wire.data());
    EXPECT_LE(view.data() + view.size(), wire.data() + wire.size());
  }
}

TEST(Records, FileRegionsStayChunks) {
  fetch_response m;
  auto& t = m.responses.emplace_back();
  t.topic = "t";
  auto& p = t.partitions.emplace_back();
  iobuf data;
  data.append(bytes_view(bytes{9, 9}));
  struct fake_file : region_source {
    int native_handle() const override { return 7; }
    result<void> read_exact_at(uint64_t, uint8_t*, size_t) const override { return error{"not readable"}; }
  };
  auto source = std::make_shared<fake_file>();
  data.append(file_region{.source = source, .position = 4096, .size = 1000});
  p.records.set(std::move(data));
  for (int16_t v : {4, 12}) {
    iobuf out;
    wire_writer w(out);
    m.encode(w, v);
    EXPECT_EQ(out.size(), m.size(v));
    // bytes (header ... records length, 2 bytes of data), the region, then bytes again
    // only if something follows (in v12 the tag sections do).
    ASSERT_GE(out.chunks().size(), 2u);
    auto& region = std::get<file_region>(out.chunks()[1]);
    EXPECT_EQ(region.source, source);
    EXPECT_EQ(region.position, 4096u);
    EXPECT_EQ(region.size, 1000u);
  }
}

TEST(Records, NullAndEmptyDiffer) {
  for (int16_t v : {0, 9}) {
    produce_request::partition_produce_data p;
    bytes null_wire;
    {
      iobuf buf;
      wire_writer w(buf);
      p.encode(w, v);
      null_wire = flatten(buf);
    }
    p.records.set_bytes({});
    bytes empty_wire;
    {
      iobuf buf;
      wire_writer w(buf);
      p.encode(w, v);
      empty_wire = flatten(buf);
    }
    EXPECT_NE(null_wire, empty_wire);
    produce_request::partition_produce_data a, b;
    wire_reader ra(null_wire), rb(empty_wire);
    ASSERT_TRUE(a.decode(ra, v));
    ASSERT_TRUE(b.decode(rb, v));
    EXPECT_TRUE(a.records.is_null());
    EXPECT_FALSE(b.records.is_null());
    EXPECT_EQ(b.records.size(), 0u);
  }
}

// ---- uuid ------------------------------------------------------------------------

TEST(Uuid, KafkaTextForm) {
  uuid zero;
  EXPECT_TRUE(zero.is_zero());
  EXPECT_EQ(zero.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
  uuid u;
  for (size_t i = 0; i < 16; ++i) u.data[i] = static_cast<uint8_t>(0xf0 + i);
  std::string s = u.to_string();
  EXPECT_EQ(s.size(), 22u);
  auto back = uuid::from_string(s);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, u);
  EXPECT_FALSE(uuid::from_string("too short"));
  EXPECT_FALSE(uuid::from_string("AAAAAAAAAAAAAAAAAAAAA!"));
  // Non-canonical: the last character's low 4 bits must be zero.
  EXPECT_FALSE(uuid::from_string("AAAAAAAAAAAAAAAAAAAAAB"));
  // Kafka's Uuid.METADATA_TOPIC_ID is (0, 1): "AAAAAAAAAAAAAAAAAAAAAQ".
  uuid one;
  one.data[15] = 1;
  EXPECT_EQ(one.to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
}

// ---- headers ---------------------------------------------------------------------

TEST(Headers, Versions) {
  EXPECT_EQ(request_header_version(18, 0), 1);
  EXPECT_EQ(request_header_version(18, 3), 2);
  EXPECT_EQ(request_header_version(18, 4), 2);  // newer than we speak: still flexible
  EXPECT_EQ(response_header_version(18, 3), 0);  // ApiVersions: always v0
  EXPECT_EQ(request_header_version(0, 8), 1);
  EXPECT_EQ(request_header_version(0, 9), 2);
  EXPECT_EQ(response_header_version(0, 9), 1);
  EXPECT_EQ(response_header_version(1, 11), 0);
  EXPECT_EQ(response_header_version(1, 12), 1);
  EXPECT_EQ(request_header_version(3, 9), 2);
}

TEST(Headers, RequestRoundTrip) {
  for (int16_t hv : {0, 1, 2}) {
    request_header h{.request_api_key = 3, .request_api_version = 9, .correlation_id = 77, .client_id = "me"};
    if (hv == 0) h.client_id.reset();
    iobuf buf;
    wire_writer w(buf);
    h.encode(w, hv);
    bytes wire = flatten(buf);
    EXPECT_EQ(wire.size(), h.size(hv));
    request_header back;
    wire_reader r(wire);
    ASSERT_TRUE(back.decode(r, hv));
    EXPECT_EQ(back, h);
  }
  // Null client id.
  request_header h{.request_api_key = 0, .request_api_version = 3, .correlation_id = 1, .client_id = std::nullopt};
  iobuf buf;
  wire_writer w(buf);
  h.encode(w, 1);
  bytes wire = flatten(buf);
  EXPECT_EQ(wire, (bytes{0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff}));
}

TEST(Headers, ReadRequestHeaderPicksVersion) {
  // Metadata v9 (flexible): header v2, client_id still an int16-length string,
  // then an empty tagged-field section, then the body.
  bytes wire = {0, 3, 0, 9, 0, 0, 0, 5, 0, 2, 'c', 'k', 0x00, 0xEE};
  wire_reader r(wire);
  request_header h;
  ASSERT_TRUE(read_request_header(r, h));
  EXPECT_EQ(h.request_api_key, 3);
  EXPECT_EQ(h.request_api_version, 9);
  EXPECT_EQ(h.correlation_id, 5);
  EXPECT_EQ(h.client_id, "ck");
  EXPECT_EQ(r.remaining(), 1u);
  // The same bytes as Metadata v8 (header v1): the 0x00 is part of the body.
  wire[3] = 8;
  wire_reader r8(wire);
  ASSERT_TRUE(read_request_header(r8, h));
  EXPECT_EQ(r8.remaining(), 2u);
}

TEST(Headers, Response) {
  response_header h{.correlation_id = 0x01020304};
  for (int16_t hv : {0, 1}) {
    iobuf buf;
    wire_writer w(buf);
    h.encode(w, hv);
    bytes wire = flatten(buf);
    EXPECT_EQ(wire.size(), h.size(hv));
    EXPECT_EQ(wire.size(), hv == 0 ? 4u : 5u);
    response_header back;
    wire_reader r(wire);
    ASSERT_TRUE(back.decode(r, hv));
    EXPECT_EQ(back, h);
  }
}

TEST(Headers, ResponseFrame) {
  // ApiVersions v3: flexible body, but a v0 header (no tagged-field byte).
  api_versions_response av;
  av.api_keys.push_back({.api_key = 18, .min_version = 0, .max_version = 3});
  iobuf out;
  write_response_frame(out, 9, 3, av);
  bytes frame = flatten(out);
  ASSERT_EQ(frame.size(), 4 + 4 + av.size(3));
  EXPECT_EQ(load_be<int32_t>(frame.data()), static_cast<int32_t>(frame.size() - 4));
  EXPECT_EQ(load_be<int32_t>(frame.data() + 4), 9);
  EXPECT_EQ(frame[8], 0);  // error_code high byte: the body starts right after
  // Metadata v9: header v1, with its empty tagged-field section.
  metadata_response md;
  iobuf out2;
  write_response_frame(out2, 10, 9, md);
  bytes frame2 = flatten(out2);
  ASSERT_EQ(frame2.size(), 4 + 5 + md.size(9));
  EXPECT_EQ(frame2[8], 0);  // header tagged fields: none
}

// ---- api table -------------------------------------------------------------------

TEST(Apis, TableMatchesTypes) {
  int n = 0;
#define GREGOR_CHECK(api, api_key_value)                                                   \
  {                                                                               \
    ++n;                                                                          \
    static_assert(api##_request::api_key == api_key_value && api##_response::api_key == api_key_value); \
    static_assert(api##_request::max_version == api##_response::max_version);   \
    const api_info* info = find_api(api_key_value);                                        \
    ASSERT_NE(info, nullptr);                                                     \
    EXPECT_STREQ(info->name, #api);                                              \
    EXPECT_EQ(info->min_version, api##_request::min_version);                    \
    EXPECT_EQ(info->max_version, api##_request::max_version);                    \
    EXPECT_EQ(info->first_flexible_version, api##_request::first_flexible_version); \
  }
  GREGOR_PROTOCOL_APIS(GREGOR_CHECK)
#undef GREGOR_CHECK
  EXPECT_EQ(static_cast<size_t>(n), all_apis().size());
  EXPECT_EQ(find_api(9999), nullptr);
  for (size_t i = 1; i < all_apis().size(); ++i) EXPECT_LT(all_apis()[i - 1].key, all_apis()[i].key);
}

// ---- KRaft messages, byte for byte from Kafka's field layouts ---------------------

TEST(KraftWire, BrokerHeartbeatV1) {
  broker_heartbeat_request m;
  m.broker_id = 1;
  m.broker_epoch = 5;
  m.current_metadata_offset = 7;
  m.want_fence = true;
  m.want_shut_down = false;
  bytes expect = {0, 0, 0, 1,                 // broker_id
                  0, 0, 0, 0, 0, 0, 0, 5,     // broker_epoch
                  0, 0, 0, 0, 0, 0, 0, 7,     // current_metadata_offset
                  1, 0,                       // want_fence, want_shut_down
                  0};                         // no tagged fields (offline_log_dirs empty)
  EXPECT_EQ(encode(m, 1), expect);
}

TEST(KraftWire, PreVoteV2) {
  vote_request m;
  m.cluster_id = "c";
  m.voter_id = 3;
  auto& t = m.topics.emplace_back();
  t.topic_name = "__cluster_metadata";
  auto& p = t.partitions.emplace_back();
  p.candidate_epoch = 5;
  p.candidate_id = 2;
  p.last_offset_epoch = 4;
  p.last_offset = 100;
  p.pre_vote = true;
  bytes expect = {2, 'c', 0, 0, 0, 3, 2, 19};
  for (char c : std::string("__cluster_metadata")) expect.push_back(static_cast<uint8_t>(c));
  bytes part = {2, 0, 0, 0, 0,  // one partition: index 0
                0, 0, 0, 5,     // candidate_epoch
                0, 0, 0, 2};    // candidate_id
  expect.insert(expect.end(), part.begin(), part.end());
  expect.insert(expect.end(), 32, 0);  // candidate and voter directory ids
  bytes tail = {0, 0, 0, 4,                     // last_offset_epoch
                0, 0, 0, 0, 0, 0, 0, 100,       // last_offset
                1,                              // pre_vote
                0, 0, 0};                       // tagged fields: partition, topic, request
  expect.insert(expect.end(), tail.begin(), tail.end());
  EXPECT_EQ(encode(m, 2), expect);
  // v0 has neither the voter id, the directory ids nor pre_vote.
  EXPECT_EQ(encode(m, 0).size(), expect.size() - 4 - 32 - 1);
}

// AlterPartition: v0-1 name the topic and list the ISR, v2 names the topic by
// id, v3 lists the ISR with broker epochs (KIP-841, KIP-903).
TEST(KraftWire, AlterPartitionRequestVersions) {
  alter_partition_request m;
  m.broker_id = 1;
  m.broker_epoch = 5;
  auto& t = m.topics.emplace_back();
  t.topic_name = "t";
  t.topic_id.data.fill(7);
  auto& p = t.partitions.emplace_back();
  p.partition_index = 2;
  p.leader_epoch = 3;
  p.new_isr = {1, 2};
  p.new_isr_with_epochs.emplace_back().broker_id = 1;
  p.new_isr_with_epochs.back().broker_epoch = 5;
  p.new_isr_with_epochs.emplace_back().broker_id = 2;
  p.new_isr_with_epochs.back().broker_epoch = 6;
  p.leader_recovery_state = 1;
  p.partition_epoch = 9;
  const bytes head = {0, 0, 0, 1,                 // broker_id
                      0, 0, 0, 0, 0, 0, 0, 5,     // broker_epoch
                      2};                         // one topic
  const bytes part = {2,                          // one partition
                      0, 0, 0, 2,                 // partition_index
                      0, 0, 0, 3};                // leader_epoch
  const bytes isr = {3, 0, 0, 0, 1, 0, 0, 0, 2};  // new_isr: [1, 2]
  const bytes isr_with_epochs = {3,                                      // two members
                                 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0,  // 1 at epoch 5, no tags
                                 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 6, 0};
  const bytes tail = {0, 0, 0, 9,                 // partition_epoch
                      0, 0, 0};                   // tagged fields: partition, topic, request
  const bytes name = {2, 't'};
  const bytes id(16, 7);
  auto cat = [](std::initializer_list<bytes> parts) {
    bytes out;
    for (auto& b : parts) out.insert(out.end(), b.begin(), b.end());
    return out;
  };
  EXPECT_EQ(encode(m, 0), cat({head, name, part, isr, tail}));
  EXPECT_EQ(encode(m, 1), cat({head, name, part, isr, {1}, tail}));
  EXPECT_EQ(encode(m, 2), cat({head, id, part, isr, {1}, tail}));
  EXPECT_EQ(encode(m, 3), cat({head, id, part, isr_with_epochs, {1}, tail}));
}

TEST(KraftWire, AlterPartitionResponseV2) {
  alter_partition_response m;
  auto& t = m.topics.emplace_back();
  t.topic_id.data.fill(7);
  auto& p = t.partitions.emplace_back();
  p.partition_index = 2;
  p.leader_id = 1;
  p.leader_epoch = 3;
  p.isr = {1, 2};
  p.partition_epoch = 10;
  bytes expect = {0, 0, 0, 0,  // throttle_time_ms
                  0, 0,        // error_code
                  2};          // one topic
  expect.insert(expect.end(), 16, 7);
  bytes part = {2, 0, 0, 0, 2,           // one partition: index 2
                0, 0,                    // error_code
                0, 0, 0, 1,              // leader_id
                0, 0, 0, 3,              // leader_epoch
                3, 0, 0, 0, 1, 0, 0, 0, 2,  // isr: [1, 2]
                0,                       // leader_recovery_state
                0, 0, 0, 10,             // partition_epoch
                0, 0, 0};                // tagged fields: partition, topic, response
  expect.insert(expect.end(), part.begin(), part.end());
  EXPECT_EQ(encode(m, 2), expect);
}

// AllocateProducerIds v0 (flexible from the start) and the ProducerIdsRecord it writes.
TEST(KraftWire, AllocateProducerIdsV0) {
  allocate_producer_ids_request req;
  req.broker_id = 2;
  req.broker_epoch = 7;
  EXPECT_EQ(encode(req, 0), (bytes{0, 0, 0, 2,                // broker_id
                                   0, 0, 0, 0, 0, 0, 0, 7,    // broker_epoch
                                   0}));                      // no tagged fields
  EXPECT_EQ(allocate_producer_ids_request{}.broker_epoch, -1);
  allocate_producer_ids_response resp;
  resp.producer_id_start = 1000;
  resp.producer_id_len = 1000;
  EXPECT_EQ(encode(resp, 0), (bytes{0, 0, 0, 0,               // throttle_time_ms
                                    0, 0,                     // error_code
                                    0, 0, 0, 0, 0, 0, 3, 0xe8,  // producer_id_start
                                    0, 0, 3, 0xe8,            // producer_id_len
                                    0}));
  producer_ids_record rec;
  rec.broker_id = 1;
  rec.broker_epoch = 5;
  rec.next_producer_id = 2000;
  EXPECT_EQ(producer_ids_record::record_type, 15);
  EXPECT_EQ(encode(rec, 0), (bytes{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0x07, 0xd0, 0}));
}

// ---- errors ----------------------------------------------------------------------

TEST(Errors, Names) {
  EXPECT_STREQ(error_name(error_code::none), "none");
  EXPECT_STREQ(error_name(error_code::unknown_server_error), "unknown_server_error");
  EXPECT_STREQ(error_name(error_code::not_leader_or_follower), "not_leader_or_follower");
  EXPECT_STREQ(error_name(static_cast<int16_t>(35)), "unsupported_version");
  EXPECT_STREQ(error_name(static_cast<int16_t>(5000)), "unknown_error_code");
  EXPECT_EQ(code(error_code::fenced_instance_id), 82);
  EXPECT_EQ(code(error_code::group_id_not_found), 69);
  EXPECT_EQ(code(error_code::unknown_topic_id), 100);
}

}  // namespace
}  // namespace gregor::protocol
