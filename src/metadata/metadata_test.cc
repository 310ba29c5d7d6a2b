#include <gtest/gtest.h>

#include "metadata/controller.h"
#include "metadata/records.h"
#include "metadata/topic_config.h"

namespace gregor::metadata {

using protocol::error_code;

namespace {
image one_broker() {
  image img;
  img.cluster_id = "c";
  img.controller_id = 1;
  broker_registration b;
  b.node_id = 1;
  b.endpoints = {{"PLAINTEXT", "localhost", 9092, 0}};
  b.fenced = false;
  img.brokers[1] = b;
  return img;
}
uuid id(uint8_t b) {
  uuid u;
  u.data.fill(b);
  return u;
}
}  // namespace

TEST(Controller, CreateTopicMakesTopicPartitionAndConfigRecords) {
  auto img = one_broker();
  std::vector<record> out;
  topic_spec spec{"orders", 3, -1, {}, {{"retention.ms", "1000"}}};
  auto d = plan_create_topic(img, spec, id(7), {1, 1}, out);
  ASSERT_TRUE(d.ok()) << d.message;
  ASSERT_EQ(out.size(), 5u);  // topic, 3 partitions, 1 config
  auto next = apply(img, out, 4);
  auto* t = next.topic("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->partitions.size(), 3u);
  EXPECT_EQ(t->partitions[2].leader, 1);
  EXPECT_EQ(t->configs.at("retention.ms"), "1000");
  EXPECT_EQ(next.last_offset, 4);
  EXPECT_EQ(img.topic("orders"), nullptr);  // the old image is untouched
}

TEST(Controller, RefusesWhatKafkaRefuses) {
  auto img = one_broker();
  std::vector<record> out;
  EXPECT_EQ(plan_create_topic(img, {"a b"}, id(1), {1, 1}, out).error, error_code::invalid_topic_exception);
  EXPECT_EQ(plan_create_topic(img, {std::string(250, 'x')}, id(1), {1, 1}, out).error,
            error_code::invalid_topic_exception);
  EXPECT_EQ(plan_create_topic(img, {"t", 0}, id(1), {1, 1}, out).error, error_code::invalid_partitions);
  EXPECT_EQ(plan_create_topic(img, {"t", 1, 3}, id(1), {1, 1}, out).error, error_code::invalid_replication_factor);
  EXPECT_EQ(plan_create_topic(img, {"t", 1, 1, {}, {{"retention.ms", "soon"}}}, id(1), {1, 1}, out).error,
            error_code::invalid_config);
  EXPECT_EQ(plan_create_topic(img, {"t", 1, 1, {}, {{"no.such.config", "1"}}}, id(1), {1, 1}, out).error,
            error_code::invalid_config);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(plan_create_topic(img, {"a.b"}, id(1), {1, 1}, out).ok());
  img = apply(img, out, 1);
  out.clear();
  EXPECT_EQ(plan_create_topic(img, {"a.b"}, id(2), {1, 1}, out).error, error_code::topic_already_exists);
  EXPECT_EQ(plan_create_topic(img, {"a_b"}, id(2), {1, 1}, out).error, error_code::invalid_topic_exception);
}

TEST(Controller, DeleteTopicRemovesIt) {
  auto img = one_broker();
  std::vector<record> out;
  ASSERT_TRUE(plan_create_topic(img, {"gone", 2}, id(3), {1, 1}, out).ok());
  img = apply(img, out, 2);
  out.clear();
  ASSERT_TRUE(plan_delete_topic(img, "gone", out).ok());
  img = apply(img, out, 3);
  EXPECT_EQ(img.topic("gone"), nullptr);
  out.clear();
  EXPECT_EQ(plan_delete_topic(img, "gone", out).error, error_code::unknown_topic_or_partition);
}

TEST(Records, RoundTripInKraftFraming) {
  auto img = one_broker();
  std::vector<record> out;
  ASSERT_TRUE(plan_create_topic(img, {"rt", 2, -1, {}, {{"cleanup.policy", "compact"}}}, id(9), {1, 1}, out).ok());
  std::vector<record> decoded;
  for (auto& r : out) {
    auto bytes = encode_record(r);
    EXPECT_EQ(bytes[0], 1);  // frame version
    auto back = decode_record(bytes);
    ASSERT_TRUE(back.ok()) << back.err().message;
    decoded.push_back(back.value());
  }
  auto a = apply(img, out, 1), b = apply(img, decoded, 1);
  ASSERT_NE(b.topic("rt"), nullptr);
  EXPECT_EQ(b.topic("rt")->partitions.size(), 2u);
  EXPECT_EQ(b.topic("rt")->topic_id, id(9));
  EXPECT_EQ(b.topic("rt")->configs, a.topic("rt")->configs);
  EXPECT_FALSE(decode_record(bytes{1, 99, 0}).ok());
  EXPECT_FALSE(decode_record(bytes{1}).ok());
}

TEST(TopicConfig, Validation) {
  EXPECT_FALSE(validate_topic_config("cleanup.policy", "compact,delete").has_value());
  EXPECT_TRUE(validate_topic_config("cleanup.policy", "shred").has_value());
  EXPECT_TRUE(validate_topic_config("retention.ms", "1h").has_value());
  EXPECT_FALSE(validate_topic_config("min.cleanable.dirty.ratio", "0.25").has_value());
  EXPECT_TRUE(validate_topic_config("unknown", "1").has_value());
}

}  // namespace gregor::metadata
