#include <gtest/gtest.h>

#include <filesystem>

#include "broker/config.h"
#include "broker/meta_properties.h"
#include "broker/partition_manager.h"
#include "broker/topic_configs.h"
#include "runtime/file.h"
#include "runtime/random.h"

namespace gregor::broker {

TEST(Config, KafkaDefaults) {
  auto c = make_broker_config({}, nullptr);
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->num_partitions, 1);
  EXPECT_EQ(c->log_retention_ms, 168LL * 3600 * 1000);
  EXPECT_EQ(c->log_segment_bytes, 1073741824);
  EXPECT_EQ(c->message_max_bytes, 1048588);
  EXPECT_TRUE(c->auto_create_topics_enable);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].port, 9092);
  EXPECT_EQ(c->advertised_listeners[0].host, "localhost");
  EXPECT_EQ(c->log_dirs, std::vector<std::string>{"/tmp/kafka-logs"});
}

TEST(Config, PropertiesFileAndOverridePrecedence) {
  auto props = parse_properties(
      "# comment\n! also comment\nlisteners=PLAINTEXT://127.0.0.1:19092\nlog.dirs = /a, /b\n"
      "log.retention.hours=1\nlog.retention.minutes=30\nnum.partitions: 3\nlong.value=a\\\n  b\n");
  ASSERT_TRUE(props.ok());
  EXPECT_EQ(props.value()["long.value"], "ab");
  std::vector<std::string> warnings;
  auto c = make_broker_config(props.value(), &warnings);
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->listeners[0].host, "127.0.0.1");
  EXPECT_EQ(c->listeners[0].port, 19092);
  EXPECT_EQ(c->log_dirs, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(c->log_retention_ms, 30LL * 60 * 1000);  // minutes win over hours
  EXPECT_EQ(c->num_partitions, 3);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("long.value"), std::string::npos);
}

TEST(Config, BadValuesNameTheKey) {
  auto c = make_broker_config({{"num.partitions", "many"}}, nullptr);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.err().message.find("num.partitions"), std::string::npos);
  auto l = make_broker_config({{"listeners", "127.0.0.1:9092"}}, nullptr);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.err().message.find("NAME://host:port"), std::string::npos);
  auto t = make_broker_config({{"log.message.timestamp.type", "Now"}}, nullptr);
  ASSERT_FALSE(t.ok());
}

TEST(Config, KraftRolesVotersAndListeners) {
  std::map<std::string, std::string> props = {
      {"process.roles", "broker,controller"},
      {"node.id", "2"},
      {"listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"},
      {"controller.listener.names", "CONTROLLER"},
      {"controller.quorum.voters", "1@127.0.0.1:19093,2@127.0.0.1:9093,3@[::1]:29093"},
      {"broker.rack", "r1"},
      {"cluster.id", "MkU3OEVBNTcwNTJENDM2Qg"},
  };
  auto c = make_broker_config(props, nullptr);
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_TRUE(c->roles_given && c->is_broker && c->is_controller);
  ASSERT_EQ(c->quorum_voters.size(), 3u);
  EXPECT_EQ(c->quorum_voters[2].host, "::1");
  EXPECT_EQ(c->quorum_voters[2].port, 29093);
  EXPECT_EQ(c->broker_rack, "r1");
  EXPECT_EQ(c->broker_session_timeout_ms, 9000);
  EXPECT_EQ(c->quorum_election_timeout_ms, 1000);
  EXPECT_EQ(c->quorum_fetch_timeout_ms, 2000);
  ASSERT_EQ(broker_listeners(*c).size(), 1u);
  EXPECT_EQ(broker_listeners(*c)[0].port, 9092);
  ASSERT_EQ(controller_listeners(*c).size(), 1u);
  EXPECT_EQ(controller_listeners(*c)[0].port, 9093);
  ASSERT_EQ(advertised_broker_listeners(*c).size(), 1u);

  // Without process.roles: a single node, its own quorum of one.
  auto single = make_broker_config({}, nullptr);
  ASSERT_TRUE(single.ok());
  EXPECT_FALSE(single->roles_given);
  EXPECT_TRUE(single->is_broker && single->is_controller);
}

TEST(Config, KraftMistakesSayHowToFixThem) {
  auto check = [](std::map<std::string, std::string> props, const std::string& expect) {
    auto c = make_broker_config(props, nullptr);
    ASSERT_FALSE(c.ok()) << "accepted: " << expect;
    EXPECT_NE(c.err().message.find(expect), std::string::npos) << c.err().message;
  };
  std::map<std::string, std::string> base = {
      {"process.roles", "broker,controller"},
      {"node.id", "1"},
      {"listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"},
      {"controller.listener.names", "CONTROLLER"},
      {"controller.quorum.voters", "1@127.0.0.1:9093"},
  };
  auto with = [&](std::string k, std::string v) {
    auto p = base;
    if (v.empty()) p.erase(k);
    else p[k] = v;
    return p;
  };
  check(with("process.roles", "worker"), "invalid role 'worker'");
  check(with("controller.quorum.voters", ""), "neither controller.quorum.voters");
  check(with("controller.quorum.voters", "1@host"), "expected host:port");
  check(with("controller.quorum.voters", "x@h:1"), "invalid voter id");
  check(with("controller.listener.names", ""), "controller.listener.names must be set");
  check(with("listeners", "PLAINTEXT://127.0.0.1:9092"), "is not in listeners");
  check(with("node.id", "2"), "must be one of controller.quorum.voters");
  check(with("process.roles", "broker"), "so process.roles must contain controller");
  check(with("cluster.id", "short"), "22-character base64");
  auto p = base;
  p.erase("process.roles");
  check(p, "need process.roles");
}

TEST(MetaProperties, FormatsOnceThenRefusesAnotherNode) {
  auto dir = (std::filesystem::temp_directory_path() / ("gregor-meta-" + std::to_string(runtime::random_u64()))).string();
  auto first = ensure_formatted({dir}, 1);
  ASSERT_TRUE(first.ok()) << first.err().message;
  auto again = ensure_formatted({dir}, 1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first.value(), again.value());
  auto other = ensure_formatted({dir}, 2);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.err().message.find("node.id=1"), std::string::npos);
  EXPECT_TRUE(runtime::fs::remove_all(dir).ok());
}

TEST(Sharding, StableAndSpread) {
  std::vector<int> count(2);
  for (int p = 0; p < 100; ++p) {
    size_t s = shard_of("topic", p, 2);
    EXPECT_EQ(s, shard_of("topic", p, 2));
    ++count[s];
  }
  EXPECT_GT(count[0], 20);
  EXPECT_GT(count[1], 20);
}

TEST(TopicConfigs, SourcesFollowOverridesAndBrokerConfig) {
  auto c = make_broker_config({{"log.retention.hours", "1"}}, nullptr);
  ASSERT_TRUE(c.ok());
  auto described = describe_topic_configs(c.value(), {{"cleanup.policy", "compact"}});
  bool saw_retention = false, saw_cleanup = false, saw_segment = false;
  for (auto& d : described) {
    if (d.name == "retention.ms") {
      saw_retention = true;
      EXPECT_EQ(d.value, "3600000");
      EXPECT_EQ(d.source, config_source::static_broker_config);
    }
    if (d.name == "cleanup.policy") {
      saw_cleanup = true;
      EXPECT_EQ(d.value, "compact");
      EXPECT_EQ(d.source, config_source::dynamic_topic_config);
    }
    if (d.name == "segment.bytes") {
      saw_segment = true;
      EXPECT_EQ(d.value, "1073741824");
      EXPECT_EQ(d.source, config_source::default_config);
    }
  }
  EXPECT_TRUE(saw_retention && saw_cleanup && saw_segment);
}


namespace {
metadata::image one_partition_image(int32_t leader, int32_t leader_epoch, int32_t partition_epoch,
                                    std::vector<int32_t> isr) {
  metadata::image img;
  auto t = std::make_shared<metadata::topic_state>();
  t->name = "t";
  t->topic_id.data[0] = 1;
  metadata::partition_state p;
  p.leader = leader;
  p.leader_epoch = leader_epoch;
  p.partition_epoch = partition_epoch;
  p.replicas = {1, 2, 3};
  p.isr = std::move(isr);
  t->partitions.push_back(p);
  img.topics["t"] = t;
  return img;
}
}  // namespace

// A replica's role follows the image: a follower of the leader it names, a
// leader at each new leader epoch, and an ISR change in flight settled only by
// an image past the partition epoch it was based on.
TEST(PartitionManager, ReplicaRolesFollowTheImage) {
  auto dir = (std::filesystem::temp_directory_path() / ("gregor-pm-" + std::to_string(runtime::random_u64()))).string();
  auto c = make_broker_config({{"log.dirs", dir}, {"node.id", "1"}}, nullptr);
  ASSERT_TRUE(c.ok()) << c.err().message;
  {
    partition_manager pm(c.value(), 0, 1, false);
    uint64_t changed = pm.followers_changed();
    pm.apply_image(one_partition_image(2, 1, 1, {1, 2, 3}), 1);
    auto* r = pm.replica("t", 0);
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->follower.has_value());
    EXPECT_EQ(r->follower->leader_id(), 2);
    EXPECT_EQ(r->follower->leader_epoch(), 1);
    EXPECT_FALSE(r->leader.has_value());
    EXPECT_EQ(pm.find_leader("t", 0), nullptr);  // clients go to the leader
    EXPECT_GT(pm.followers_changed(), changed);

    pm.apply_image(one_partition_image(1, 2, 2, {1, 2, 3}), 1);
    r = pm.replica("t", 0);
    ASSERT_TRUE(r->leader.has_value());
    EXPECT_FALSE(r->follower.has_value());
    EXPECT_EQ(pm.leader_epoch("t", 0), 2);
    EXPECT_NE(pm.find_leader("t", 0), nullptr);

    // A shrink goes out at partition epoch 2; an image at that epoch does not settle it.
    replication::isr_proposal shrink{{1, 2}, replication::isr_proposal::why::shrink, {3}};
    r->leader->proposal_sent(shrink);
    r->proposal_partition_epoch = 2;
    pm.apply_image(one_partition_image(1, 2, 2, {1, 2, 3}), 1);
    EXPECT_TRUE(pm.replica("t", 0)->leader->proposal_in_flight());
    pm.apply_image(one_partition_image(1, 2, 3, {1, 2}), 1);
    EXPECT_FALSE(pm.replica("t", 0)->leader->proposal_in_flight());
    EXPECT_EQ(pm.replica("t", 0)->leader->isr(), (std::vector<int32_t>{1, 2}));
    // An older image (published late) does not undo it.
    pm.apply_image(one_partition_image(1, 2, 2, {1, 2, 3}), 1);
    EXPECT_EQ(pm.replica("t", 0)->leader->isr(), (std::vector<int32_t>{1, 2}));

    // Leaderless: neither leads nor follows, and keeps its high watermark.
    pm.apply_image(one_partition_image(-1, 3, 4, {1}), 1);
    EXPECT_FALSE(pm.replica("t", 0)->leader.has_value());
    EXPECT_FALSE(pm.replica("t", 0)->follower.has_value());
    EXPECT_EQ(pm.high_watermark("t", 0), 0);
    pm.close_all();
  }
  EXPECT_TRUE(runtime::fs::remove_all(dir).ok());
}

}  // namespace gregor::broker
