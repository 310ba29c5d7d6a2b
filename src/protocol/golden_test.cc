// Request frames captured from real clients (a fake broker on 127.0.0.1 logged
// the bytes after each 4-byte length prefix). Each test decodes the header and
// body, checks the fields, and re-encodes both to the same bytes.
//
// Clients: kcat 1.7.1 and confluent-kafka 1.7.0, both on librdkafka 2.0.2
// (Debian 12), and kafka-python 2.0.2. The same clients also accepted the
// responses our generated code encodes (checked against a toy broker).
#include <gtest/gtest.h>

#include <string_view>

#include "protocol/header.h"
#include "protocol/messages.h"

namespace gregor::protocol {
namespace {

bytes from_hex(std::string_view hex) {
  bytes out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  return out;
}

bytes flatten(const iobuf& buf) {
  bytes out;
  for (auto& c : buf.chunks()) {
    auto& b = std::get<bytes>(c);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// A decoded frame, holding the bytes its records borrow from.
template <class T>
struct decoded {
  bytes frame;
  request_header header;
  T body;
};

template <class T>
decoded<T> decode_frame(std::string_view hex) {
  decoded<T> d;
  d.frame = from_hex(hex);
  wire_reader r(d.frame);
  EXPECT_TRUE(read_request_header(r, d.header));
  EXPECT_EQ(d.header.request_api_key, T::api_key);
  const int16_t v = d.header.request_api_version;
  EXPECT_TRUE(d.body.decode(r, v));
  EXPECT_EQ(r.remaining(), 0u);
  // Byte-exact re-encoding, header included.
  iobuf out;
  wire_writer w(out);
  const int16_t hv = request_header_version(T::api_key, v);
  d.header.encode(w, hv);
  d.body.encode(w, v);
  EXPECT_EQ(flatten(out), d.frame);
  EXPECT_EQ(d.header.size(hv) + d.body.size(v), d.frame.size());
  return d;
}

// ---- librdkafka 2.0.2 ------------------------------------------------------------

TEST(Golden, LibrdkafkaApiVersionsV3) {
  // kcat -L: the first request on every connection. Header v2 (flexible), but
  // client_id "rdkafka" is a classic int16-length string.
  auto d = decode_frame<api_versions_request>(
      "0012000300000001000772646b61666b61000b6c696272646b61666b6106322e302e3200");
  EXPECT_EQ(d.header.request_api_version, 3);
  EXPECT_EQ(d.header.correlation_id, 1);
  EXPECT_EQ(d.header.client_id, "rdkafka");
  EXPECT_EQ(d.body.client_software_name, "librdkafka");
  EXPECT_EQ(d.body.client_software_version, "2.0.2");
}

TEST(Golden, LibrdkafkaMetadataV4) {
  // kcat -L asks for brokers only first (an empty array), then all topics (null).
  auto brokers_only = decode_frame<metadata_request>("0003000400000002000772646b61666b610000000000");
  ASSERT_TRUE(brokers_only.body.topics.has_value());
  EXPECT_TRUE(brokers_only.body.topics->empty());
  EXPECT_FALSE(brokers_only.body.allow_auto_topic_creation);

  auto all = decode_frame<metadata_request>("0003000400000003000772646b61666b61ffffffff01");
  EXPECT_FALSE(all.body.topics.has_value());
  EXPECT_TRUE(all.body.allow_auto_topic_creation);

  // kcat -P -t t: one named topic.
  auto one = decode_frame<metadata_request>("0003000400000002000772646b61666b610000000100017401");
  ASSERT_TRUE(one.body.topics.has_value());
  ASSERT_EQ(one.body.topics->size(), 1u);
  EXPECT_EQ((*one.body.topics)[0].name, "t");
}

TEST(Golden, LibrdkafkaProduceV7) {
  // printf 'hello\nworld\n' | kcat -P -t t -p 0 -k key1: acks=-1, one batch of two
  // records, uncompressed.
  auto d = decode_frame<produce_request>(
      "0000000700000003000772646b61666b61ffffffff000075300000000100017400000001000000000000005d0000000000000000"
      "00000051000000000266f8b478000000000001000001a1fdad3aae000001a1fdad3aaeffffffffffffffffffffffffffff0000"
      "00021e000000086b6579310a68656c6c6f001e000002086b6579310a776f726c6400");
  EXPECT_FALSE(d.body.transactional_id.has_value());
  EXPECT_EQ(d.body.acks, -1);
  EXPECT_EQ(d.body.timeout_ms, 30000);
  ASSERT_EQ(d.body.topic_data.size(), 1u);
  EXPECT_EQ(d.body.topic_data[0].name, "t");
  ASSERT_EQ(d.body.topic_data[0].partition_data.size(), 1u);
  auto& p = d.body.topic_data[0].partition_data[0];
  EXPECT_EQ(p.index, 0);
  bytes_view batch = p.records.view();
  ASSERT_EQ(batch.size(), 93u);
  EXPECT_EQ(batch[16], 2);                               // magic: record batch v2
  EXPECT_EQ(load_be<int32_t>(batch.data() + 57), 2);     // record count
  // Borrowed from the frame, not copied.
  EXPECT_GE(batch.data(), d.frame.data());
  EXPECT_LE(batch.data() + batch.size(), d.frame.data() + d.frame.size());
}

TEST(Golden, LibrdkafkaFetchV11) {
  // kcat -C -t t -p 0 -o beginning (isolation.level defaults to read_committed).
  auto d = decode_frame<fetch_request>(
      "0001000b00000005000772646b61666b61ffffffff000001f400000001032000000100000000ffffffff0000000100017400000001"
      "00000000ffffffff0000000000000000ffffffffffffffff00100000000000000000");
  auto& f = d.body;
  EXPECT_EQ(f.replica_id, -1);
  EXPECT_EQ(f.max_wait_ms, 500);
  EXPECT_EQ(f.min_bytes, 1);
  EXPECT_EQ(f.max_bytes, 52428800);
  EXPECT_EQ(f.isolation_level, 1);
  EXPECT_EQ(f.session_id, 0);
  EXPECT_EQ(f.session_epoch, -1);
  ASSERT_EQ(f.topics.size(), 1u);
  EXPECT_EQ(f.topics[0].topic, "t");
  ASSERT_EQ(f.topics[0].partitions.size(), 1u);
  auto& p = f.topics[0].partitions[0];
  EXPECT_EQ(p.partition, 0);
  EXPECT_EQ(p.current_leader_epoch, -1);
  EXPECT_EQ(p.fetch_offset, 0);
  EXPECT_EQ(p.log_start_offset, -1);
  EXPECT_EQ(p.partition_max_bytes, 1048576);
  EXPECT_TRUE(f.forgotten_topics_data.empty());
  EXPECT_EQ(f.rack_id, "");
}

TEST(Golden, LibrdkafkaListOffsetsV2) {
  // The same consumer resolving "beginning" (timestamp -2).
  auto d = decode_frame<list_offsets_request>(
      "0002000200000004000772646b61666b61ffffffff01000000010001740000000100000000fffffffffffffffe");
  EXPECT_EQ(d.body.replica_id, -1);
  EXPECT_EQ(d.body.isolation_level, 1);
  ASSERT_EQ(d.body.topics.size(), 1u);
  ASSERT_EQ(d.body.topics[0].partitions.size(), 1u);
  EXPECT_EQ(d.body.topics[0].partitions[0].timestamp, -2);
}

TEST(Golden, LibrdkafkaCreateTopicsV4) {
  // confluent-kafka AdminClient.create_topics(NewTopic("ck-topic", 2, 1,
  // config={"retention.ms": "1000"}), operation_timeout=2).
  auto d = decode_frame<create_topics_request>(
      "00130004000000030008636b2d61646d696e000000010008636b2d746f7069630000000200010000000000000001000c72657465"
      "6e74696f6e2e6d73000431303030000007d000");
  EXPECT_EQ(d.header.client_id, "ck-admin");
  ASSERT_EQ(d.body.topics.size(), 1u);
  auto& t = d.body.topics[0];
  EXPECT_EQ(t.name, "ck-topic");
  EXPECT_EQ(t.num_partitions, 2);
  EXPECT_EQ(t.replication_factor, 1);
  EXPECT_TRUE(t.assignments.empty());
  ASSERT_EQ(t.configs.size(), 1u);
  EXPECT_EQ(t.configs[0].name, "retention.ms");
  EXPECT_EQ(t.configs[0].value, "1000");
  EXPECT_EQ(d.body.timeout_ms, 2000);
  EXPECT_FALSE(d.body.validate_only);
}

TEST(Golden, LibrdkafkaDeleteTopicsV1) {
  auto d = decode_frame<delete_topics_request>(
      "00140001000000040008636b2d61646d696e000000010008636b2d746f706963000007d0");
  EXPECT_EQ(d.body.topic_names, (std::vector<std::string>{"ck-topic"}));
  EXPECT_EQ(d.body.timeout_ms, 2000);
}

// ---- kafka-python 2.0.2 ----------------------------------------------------------

TEST(Golden, KafkaPythonApiVersionsV0AndMetadataV0) {
  // KafkaProducer's version probe: ApiVersions v0 (an empty body) and Metadata v0
  // pipelined right behind it.
  auto av = decode_frame<api_versions_request>("001200000000000100156b61666b612d707974686f6e2d70726f6475636572");
  EXPECT_EQ(av.header.request_api_version, 0);
  EXPECT_EQ(av.header.client_id, "kafka-python-producer");
  auto md = decode_frame<metadata_request>("000300000000000200156b61666b612d707974686f6e2d70726f647563657200000000");
  // v0: an empty array means all topics.
  ASSERT_TRUE(md.body.topics.has_value());
  EXPECT_TRUE(md.body.topics->empty());
}

TEST(Golden, KafkaPythonMetadataV1AndV5) {
  auto v1 = decode_frame<metadata_request>("000300010000000300156b61666b612d707974686f6e2d70726f6475636572ffffffff");
  EXPECT_FALSE(v1.body.topics.has_value());
  // KafkaAdminClient: all topics, no auto-creation.
  auto v5 = decode_frame<metadata_request>("000300050000000600086b702d61646d696effffffff00");
  EXPECT_FALSE(v5.body.topics.has_value());
  EXPECT_FALSE(v5.body.allow_auto_topic_creation);
}

TEST(Golden, KafkaPythonProduceV7) {
  // KafkaProducer(acks=1).send("t", key=b"k", value=b"hello", partition=0)
  auto d = decode_frame<produce_request>(
      "000000070000000100156b61666b612d707974686f6e2d70726f6475636572ffff0001000075300000000100017400000001000000"
      "000000004a00000000000000000000003e000000000208a9e9e7000000000000000001a1fdad3fa2000001a1fdad3fa2ffffffff"
      "ffffffffffffffffffff0000000118000000026b0a68656c6c6f00");
  EXPECT_FALSE(d.body.transactional_id.has_value());
  EXPECT_EQ(d.body.acks, 1);
  ASSERT_EQ(d.body.topic_data.size(), 1u);
  auto& p = d.body.topic_data[0].partition_data[0];
  EXPECT_EQ(p.records.size(), 74u);
  EXPECT_EQ(p.records.view()[16], 2);  // magic
}

TEST(Golden, KafkaPythonCreateTopicsV3) {
  // KafkaAdminClient.create_topics([NewTopic("new-topic", 3, 1,
  // topic_configs={"cleanup.policy": "compact"})], timeout_ms=2000)
  auto d = decode_frame<create_topics_request>(
      "001300030000000300086b702d61646d696e0000000100096e65772d746f7069630000000300010000000000000001000e636c65"
      "616e75702e706f6c6963790007636f6d70616374000007d000");
  ASSERT_EQ(d.body.topics.size(), 1u);
  auto& t = d.body.topics[0];
  EXPECT_EQ(t.name, "new-topic");
  EXPECT_EQ(t.num_partitions, 3);
  EXPECT_EQ(t.replication_factor, 1);
  ASSERT_EQ(t.configs.size(), 1u);
  EXPECT_EQ(t.configs[0].name, "cleanup.policy");
  EXPECT_EQ(t.configs[0].value, "compact");
  EXPECT_EQ(d.body.timeout_ms, 2000);
}

// ---- consumer groups: librdkafka 2.0.2 (kcat -G grp1 t) ----------------------------

TEST(Golden, LibrdkafkaGroupJoinSyncHeartbeatLeave) {
  auto fc = decode_frame<find_coordinator_request>("000a000200000003000772646b61666b6100046772703100");
  EXPECT_EQ(fc.body.key, "grp1");
  EXPECT_EQ(fc.body.key_type, 0);

  // First join, without a member id (the broker answers MEMBER_ID_REQUIRED).
  auto join = decode_frame<join_group_request>(
      "000b000500000002000772646b61666b610004677270310000afc8000493e00000ffff0008636f6e73756d657200000002000572"
      "616e6765000000110001000000010001740000000000000000000a726f756e64726f62696e000000110001000000010001740000"
      "000000000000");
  auto& j = join.body;
  EXPECT_EQ(j.group_id, "grp1");
  EXPECT_EQ(j.session_timeout_ms, 45000);
  EXPECT_EQ(j.rebalance_timeout_ms, 300000);
  EXPECT_EQ(j.member_id, "");
  EXPECT_FALSE(j.group_instance_id.has_value());
  EXPECT_EQ(j.protocol_type, "consumer");
  ASSERT_EQ(j.protocols.size(), 2u);
  EXPECT_EQ(j.protocols[0].name, "range");
  EXPECT_EQ(j.protocols[0].metadata.size(), 17u);  // ConsumerProtocol subscription, opaque
  EXPECT_EQ(j.protocols[1].name, "roundrobin");

  auto sync = decode_frame<sync_group_request>(
      "000e000300000005000772646b61666b610004677270310000000100086d656d6265722d32ffff0000000100086d656d6265722d"
      "3200000015000000000001000174000000010000000000000000");
  EXPECT_EQ(sync.body.generation_id, 1);
  EXPECT_EQ(sync.body.member_id, "member-2");
  ASSERT_EQ(sync.body.assignments.size(), 1u);
  EXPECT_EQ(sync.body.assignments[0].member_id, "member-2");
  EXPECT_EQ(sync.body.assignments[0].assignment.size(), 21u);

  auto hb = decode_frame<heartbeat_request>("000c000300000006000772646b61666b610004677270310000000100086d656d6265722d32ffff");
  EXPECT_EQ(hb.body.group_id, "grp1");
  EXPECT_EQ(hb.body.generation_id, 1);
  EXPECT_EQ(hb.body.member_id, "member-2");
  EXPECT_FALSE(hb.body.group_instance_id.has_value());

  auto leave = decode_frame<leave_group_request>("000d0001000000090007" "72646b61666b6100046772703100086d656d6265722d32");
  EXPECT_EQ(leave.body.group_id, "grp1");
  EXPECT_EQ(leave.body.member_id, "member-2");
}

TEST(Golden, LibrdkafkaOffsetFetchV7Flexible) {
  // Flexible: compact strings and arrays, tagged-field sections everywhere.
  auto d = decode_frame<offset_fetch_request>("0009000700000007000772646b61666b610005677270310202740200000000000100");
  EXPECT_EQ(d.body.group_id, "grp1");
  ASSERT_TRUE(d.body.topics.has_value());
  ASSERT_EQ(d.body.topics->size(), 1u);
  EXPECT_EQ((*d.body.topics)[0].name, "t");
  EXPECT_EQ((*d.body.topics)[0].partition_indexes, (std::vector<int32_t>{0}));
  EXPECT_TRUE(d.body.require_stable);  // read_committed consumer
}

TEST(Golden, LibrdkafkaOffsetCommitV7) {
  auto d = decode_frame<offset_commit_request>(
      "0008000700000008000772646b61666b610004677270310000000100086d656d6265722d32ffff00000001000174000000010000"
      "00000000000000000003ffffffff0000");
  EXPECT_EQ(d.body.generation_id_or_member_epoch, 1);
  EXPECT_EQ(d.body.member_id, "member-2");
  ASSERT_EQ(d.body.topics.size(), 1u);
  auto& p = d.body.topics[0].partitions.at(0);
  EXPECT_EQ(p.committed_offset, 3);
  EXPECT_EQ(p.committed_leader_epoch, -1);
  EXPECT_EQ(p.committed_metadata, "");
}

// ---- consumer groups: kafka-python 2.0.2 (KafkaConsumer with group_id) --------------

TEST(Golden, KafkaPythonGroup) {
  auto fc = decode_frame<find_coordinator_request>("000a000000000003000b6b702d636f6e73756d657200076b7067726f7570");
  EXPECT_EQ(fc.body.key, "kpgroup");

  auto join = decode_frame<join_group_request>(
      "000b000200000001000b6b702d636f6e73756d657200076b7067726f757000002710000493e000000008636f6e73756d65720000"
      "0002000572616e67650000000d00000000000100017400000000000a726f756e64726f62696e0000000d00000000000100017400"
      "000000");
  EXPECT_EQ(join.body.session_timeout_ms, 10000);
  EXPECT_EQ(join.body.rebalance_timeout_ms, 300000);
  ASSERT_EQ(join.body.protocols.size(), 2u);
  EXPECT_EQ(join.body.protocols[0].metadata.size(), 13u);

  auto sync = decode_frame<sync_group_request>(
      "000e000100000002000b6b702d636f6e73756d657200076b7067726f75700000000100086d656d6265722d330000000100086d65"
      "6d6265722d330000000a00000000000000000000");
  EXPECT_EQ(sync.body.assignments.at(0).assignment.size(), 10u);

  auto fetch = decode_frame<offset_fetch_request>("0009000100000005000b6b702d636f6e73756d657200076b7067726f7570000000010001740000000100000000");
  ASSERT_TRUE(fetch.body.topics.has_value());
  EXPECT_EQ((*fetch.body.topics)[0].partition_indexes, (std::vector<int32_t>{0}));

  auto hb = decode_frame<heartbeat_request>("000c000100000006000b6b702d636f6e73756d657200076b7067726f75700000000100086d656d6265722d33");
  EXPECT_EQ(hb.body.member_id, "member-3");

  auto commit = decode_frame<offset_commit_request>(
      "0008000200000007000b6b702d636f6e73756d657200076b7067726f75700000000100086d656d6265722d33ffffffffffffffff"
      "00000001000174000000010000000000000000000000040000");
  EXPECT_EQ(commit.body.retention_time_ms, -1);
  EXPECT_EQ(commit.body.topics.at(0).partitions.at(0).committed_offset, 4);

  auto leave = decode_frame<leave_group_request>("000d000100000009000b6b702d636f6e73756d657200076b7067726f757000086d656d6265722d33");
  EXPECT_EQ(leave.body.member_id, "member-3");
}

// ---- admin: kafka-python 2.0.2 KafkaAdminClient ------------------------------------

TEST(Golden, KafkaPythonAdmin) {
  decode_frame<list_groups_request>("001000010000000300086b702d61646d696e");

  auto dg = decode_frame<describe_groups_request>("000f00030000000500086b702d61646d696e0000000100076b7067726f757000");
  EXPECT_EQ(dg.body.groups, (std::vector<std::string>{"kpgroup"}));
  EXPECT_FALSE(dg.body.include_authorized_operations);

  // list_consumer_group_offsets: v2+ null topics means all of the group's.
  auto of = decode_frame<offset_fetch_request>("000900030000000700086b702d61646d696e00076b7067726f7570ffffffff");
  EXPECT_FALSE(of.body.topics.has_value());

  auto dc = decode_frame<describe_configs_request>("002000020000000800086b702d61646d696e0000000102000174ffffffff00");
  ASSERT_EQ(dc.body.resources.size(), 1u);
  EXPECT_EQ(dc.body.resources[0].resource_type, 2);  // topic
  EXPECT_EQ(dc.body.resources[0].resource_name, "t");
  EXPECT_FALSE(dc.body.resources[0].configuration_keys.has_value());
  EXPECT_FALSE(dc.body.include_synonyms);

  auto ac = decode_frame<alter_configs_request>(
      "002100010000000900086b702d61646d696e000000010200017400000001000c726574656e74696f6e2e6d7300043130303000");
  EXPECT_EQ(ac.body.resources.at(0).configs.at(0).name, "retention.ms");
  EXPECT_EQ(ac.body.resources.at(0).configs.at(0).value, "1000");

  auto cp = decode_frame<create_partitions_request>("002500010000000a00086b702d61646d696e0000000100017400000002ffffffff00000bb800");
  EXPECT_EQ(cp.body.topics.at(0).count, 2);
  EXPECT_FALSE(cp.body.topics.at(0).assignments.has_value());
  EXPECT_EQ(cp.body.timeout_ms, 3000);

  auto del = decode_frame<delete_groups_request>("002a00010000000c00086b702d61646d696e0000000100076b7067726f7570");
  EXPECT_EQ(del.body.groups_names, (std::vector<std::string>{"kpgroup"}));

  auto acl = decode_frame<describe_acls_request>("001d00010000000d00086b702d61646d696e02ffff01ffff00012a0101");
  EXPECT_EQ(acl.body.resource_type_filter, 2);
  EXPECT_FALSE(acl.body.resource_name_filter.has_value());
  EXPECT_EQ(acl.body.pattern_type_filter, 1);
  EXPECT_EQ(acl.body.host_filter, "*");
}

// ---- librdkafka 2.0.2 (confluent-kafka 1.7.0): idempotence and admin ----------------

TEST(Golden, LibrdkafkaInitProducerIdV4Flexible) {
  // Producer({"enable.idempotence": True}): no transactional id (compact null).
  auto d = decode_frame<init_producer_id_request>("00160004000000030007636b2d6964656d0000ffffffffffffffffffffffffffff00");
  EXPECT_EQ(d.header.client_id, "ck-idem");
  EXPECT_FALSE(d.body.transactional_id.has_value());
  EXPECT_EQ(d.body.transaction_timeout_ms, -1);
  EXPECT_EQ(d.body.producer_id, -1);
  EXPECT_EQ(d.body.producer_epoch, -1);
}

TEST(Golden, LibrdkafkaAdmin) {
  decode_frame<list_groups_request>("00100000000000030008636b2d61646d696e");
  auto dg = decode_frame<describe_groups_request>("000f0000000000040008636b2d61646d696e0000000100026731");
  EXPECT_EQ(dg.body.groups, (std::vector<std::string>{"g1"}));
  auto dc = decode_frame<describe_configs_request>("00200001000000050008636b2d61646d696e0000000102000174ffffffff01");
  EXPECT_TRUE(dc.body.include_synonyms);
  auto ac = decode_frame<alter_configs_request>(
      "00210000000000060008636b2d61646d696e000000010200017400000001000c726574656e74696f6e2e6d7300043130303000");
  EXPECT_EQ(ac.body.resources.at(0).configs.at(0).value, "1000");
  auto cp = decode_frame<create_partitions_request>("00250000000000070008636b2d61646d696e0000000100017400000003ffffffff0000ea6000");
  EXPECT_EQ(cp.body.topics.at(0).count, 3);
  EXPECT_EQ(cp.body.timeout_ms, 60000);
}

}  // namespace
}  // namespace gregor::protocol
