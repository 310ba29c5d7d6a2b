// The controller's config and partition decisions: AlterConfigs,
// IncrementalAlterConfigs (SET/DELETE/APPEND/SUBTRACT), CreatePartitions.
#include <gtest/gtest.h>

#include "metadata/controller.h"
#include "metadata/records.h"
#include "metadata/topic_config.h"

namespace gregor::metadata {

using protocol::error_code;

namespace {

image with_topic(std::map<std::string, std::string> configs = {}, int partitions = 2) {
  image img;
  img.cluster_id = "c";
  img.controller_id = 1;
  broker_registration b;
  b.node_id = 1;
  b.endpoints = {{"PLAINTEXT", "localhost", 9092, 0}};
  b.fenced = false;
  img.brokers[1] = b;
  std::vector<record> out;
  topic_spec spec{"t", partitions, -1, {}, configs};
  uuid id;
  id.data.fill(3);
  EXPECT_TRUE(plan_create_topic(img, spec, id, {1, 1}, out).ok());
  return apply(img, out, 1);
}

broker_config_rules rules() {
  broker_config_rules r;
  r.validate = [](const std::string& n, const std::string& v) -> std::optional<std::string> {
    if (n == "log.retention.ms") {
      if (v.empty() || v.find_first_not_of("-0123456789") != std::string::npos) return "Invalid value " + v;
      return std::nullopt;
    }
    if (n == "log.cleanup.policy") return std::nullopt;
    return "Cannot update these configs dynamically: Set(" + n + ")";
  };
  r.is_list = [](const std::string& n) { return n == "log.cleanup.policy"; };
  r.default_value = [](const std::string& n) { return n == "log.cleanup.policy" ? std::string("delete") : std::string(); };
  return r;
}

image run_incremental(const image& img, int8_t type, const std::string& name, std::vector<config_change> changes,
                      decision* d) {
  std::vector<record> out;
  *d = plan_incremental_alter_configs(img, type, name, changes, rules(), out);
  return apply(img, out, img.last_offset + 1);
}

}  // namespace

TEST(ControllerConfigs, IncrementalSetDeleteAppendSubtract) {
  auto img = with_topic({{"retention.ms", "1000"}});
  decision d;
  img = run_incremental(img, topic_resource, "t",
                        {{"segment.bytes", config_op::set, "1048576"}, {"retention.ms", config_op::remove, std::nullopt}},
                        &d);
  ASSERT_TRUE(d.ok()) << d.message;
  EXPECT_EQ(img.topic("t")->configs, (std::map<std::string, std::string>{{"segment.bytes", "1048576"}}));
  // APPEND starts from the default (delete).
  img = run_incremental(img, topic_resource, "t", {{"cleanup.policy", config_op::append, "compact"}}, &d);
  ASSERT_TRUE(d.ok()) << d.message;
  EXPECT_EQ(img.topic("t")->configs.at("cleanup.policy"), "delete,compact");
  img = run_incremental(img, topic_resource, "t", {{"cleanup.policy", config_op::subtract, "delete"}}, &d);
  ASSERT_TRUE(d.ok()) << d.message;
  EXPECT_EQ(img.topic("t")->configs.at("cleanup.policy"), "compact");
  // APPEND on a non-list config, unknown names, bad values, duplicates.
  run_incremental(img, topic_resource, "t", {{"retention.ms", config_op::append, "5"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  EXPECT_NE(d.message.find("append is not allowed"), std::string::npos);
  run_incremental(img, topic_resource, "t", {{"no.such.config", config_op::set, "1"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  run_incremental(img, topic_resource, "t", {{"retention.ms", config_op::set, "abc"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  EXPECT_NE(d.message.find("retention.ms"), std::string::npos);
  run_incremental(img, topic_resource, "t", {{"retention.ms", config_op::set, "-2"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  run_incremental(img, topic_resource, "t", {{"min.cleanable.dirty.ratio", config_op::set, "1.5"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  run_incremental(img, topic_resource, "t",
                  {{"retention.ms", config_op::set, "1"}, {"retention.ms", config_op::set, "2"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_request);
  run_incremental(img, topic_resource, "t",
                  {{"min.compaction.lag.ms", config_op::set, "10"}, {"max.compaction.lag.ms", config_op::set, "5"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  run_incremental(img, topic_resource, "nope", {{"retention.ms", config_op::set, "1"}}, &d);
  EXPECT_EQ(d.error, error_code::unknown_topic_or_partition);
  // Nothing changes: no records.
  std::vector<record> out;
  d = plan_incremental_alter_configs(img, topic_resource, "t", {{"segment.bytes", config_op::set, "1048576"}}, rules(), out);
  EXPECT_TRUE(d.ok());
  EXPECT_TRUE(out.empty());
}

TEST(ControllerConfigs, BrokerConfigsAreValidatedByTheRules) {
  auto img = with_topic();
  decision d;
  img = run_incremental(img, broker_resource, "1", {{"log.retention.ms", config_op::set, "60000"}}, &d);
  ASSERT_TRUE(d.ok()) << d.message;
  img = run_incremental(img, broker_resource, "", {{"log.cleanup.policy", config_op::append, "compact"}}, &d);
  ASSERT_TRUE(d.ok()) << d.message;
  EXPECT_EQ(img.broker_configs.at("1").at("log.retention.ms"), "60000");
  EXPECT_EQ(img.broker_configs.at("").at("log.cleanup.policy"), "delete,compact");
  run_incremental(img, broker_resource, "1", {{"node.id", config_op::set, "2"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_config);
  run_incremental(img, broker_resource, "x", {{"log.retention.ms", config_op::set, "1"}}, &d);
  EXPECT_EQ(d.error, error_code::invalid_request);
  img = run_incremental(img, broker_resource, "1", {{"log.retention.ms", config_op::remove, std::nullopt}}, &d);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(img.broker_configs.at("1").count("log.retention.ms"));
}

TEST(ControllerConfigs, AlterConfigsReplacesTheWholeSet) {
  auto img = with_topic({{"retention.ms", "1000"}, {"segment.bytes", "100000"}});
  std::vector<record> out;
  auto d = plan_alter_configs(img, topic_resource, "t", {{"cleanup.policy", "compact"}}, rules(), out);
  ASSERT_TRUE(d.ok()) << d.message;
  img = apply(img, out, 9);
  EXPECT_EQ(img.topic("t")->configs, (std::map<std::string, std::string>{{"cleanup.policy", "compact"}}));
  out.clear();
  d = plan_alter_configs(img, topic_resource, "t", {{"retention.ms", std::nullopt}}, rules(), out);
  EXPECT_EQ(d.error, error_code::invalid_request);
  d = plan_alter_configs(img, topic_resource, "t", {{"segment.bytes", "1"}}, rules(), out);
  EXPECT_EQ(d.error, error_code::invalid_config);
  EXPECT_NE(d.message.find("at least 14"), std::string::npos) << d.message;
  // Records round-trip through the metadata log encoding, removals included.
  out.clear();
  d = plan_alter_configs(img, topic_resource, "t", {}, rules(), out);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(out.size(), 1u);
  auto decoded = decode_record(encode_record(out[0]));
  ASSERT_TRUE(decoded.ok());
  EXPECT_FALSE(std::get<protocol::config_record>(decoded.value()).value.has_value());
}

TEST(ControllerConfigs, CreatePartitionsOnlyGrows) {
  auto img = with_topic({}, 2);
  std::vector<record> out;
  auto d = plan_create_partitions(img, "t", 1, std::nullopt, out);
  EXPECT_EQ(d.error, error_code::invalid_partitions);
  EXPECT_EQ(d.message, "Topic currently has 2 partitions, which is higher than the requested 1.");
  d = plan_create_partitions(img, "t", 2, std::nullopt, out);
  EXPECT_EQ(d.error, error_code::invalid_partitions);
  d = plan_create_partitions(img, "nope", 3, std::nullopt, out);
  EXPECT_EQ(d.error, error_code::unknown_topic_or_partition);
  d = plan_create_partitions(img, "t", 4, std::vector<std::vector<int32_t>>{{1}}, out);
  EXPECT_EQ(d.error, error_code::invalid_replica_assignment);
  d = plan_create_partitions(img, "t", 3, std::vector<std::vector<int32_t>>{{9}}, out);
  EXPECT_EQ(d.error, error_code::invalid_replica_assignment);
  ASSERT_TRUE(out.empty());
  d = plan_create_partitions(img, "t", 5, std::nullopt, out);
  ASSERT_TRUE(d.ok()) << d.message;
  EXPECT_EQ(out.size(), 3u);
  img = apply(img, out, 5);
  ASSERT_EQ(img.topic("t")->partitions.size(), 5u);
  EXPECT_EQ(img.topic("t")->partitions[4].leader, 1);
}

}  // namespace gregor::metadata
