// The cluster's tools, with Kafka's names and flags:
//   gregor metadata-quorum --bootstrap-server B describe --status | --replication
//   gregor leader-election --bootstrap-server B --election-type PREFERRED|UNCLEAN
//                          (--all-topic-partitions | --topic T --partition P)
//   gregor storage random-uuid
#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "app/cli_common.h"
#include "client/admin.h"
#include "runtime/random.h"

namespace gregor::cli {

namespace {

client::admin_client make_admin(const std::string& bootstrap, const char* client_id) {
  client::admin_config cfg;
  cfg.bootstrap_servers = bootstrap;
  cfg.client_id = client_id;
  cfg.request_timeout_ms = 30000;
  return client::admin_client(cfg);
}

std::string id_list(const std::vector<client::quorum_replica>& rs) {
  std::string s = "[";
  for (size_t i = 0; i < rs.size(); ++i) s += (i ? "," : "") + std::to_string(rs[i].id);
  return s + "]";
}

int run_describe_quorum(const std::string& bootstrap, bool status, bool replication) {
  const char* tool = "metadata-quorum";
  if (status == replication) return fail(tool, "describe needs exactly one of --status or --replication");
  if (auto b = client::parse_bootstrap(bootstrap); !b) return fail(tool, b.err().message);
  auto admin = make_admin(bootstrap, "gregor-metadata-quorum");
  auto cluster = admin.describe_cluster();
  if (!cluster) return fail(tool, cluster.err().message);
  auto q = admin.describe_quorum();
  if (!q) return fail(tool, q.err().message);
  auto& d = q.value();
  if (status) {
    int64_t max_lag = 0, max_lag_ms = -1;
    for (auto& v : d.voters) {
      if (v.id == d.leader_id) continue;
      max_lag = std::max(max_lag, d.high_watermark - v.log_end_offset);
      for (auto& l : d.voters)
        if (l.id == d.leader_id && l.last_caught_up_timestamp >= 0 && v.last_caught_up_timestamp >= 0)
          max_lag_ms = std::max(max_lag_ms, l.last_caught_up_timestamp - v.last_caught_up_timestamp);
    }
    std::printf("ClusterId:              %s\n", cluster.value()->cluster_id.c_str());
    std::printf("LeaderId:               %d\n", d.leader_id);
    std::printf("LeaderEpoch:            %d\n", d.leader_epoch);
    std::printf("HighWatermark:          %lld\n", static_cast<long long>(d.high_watermark));
    std::printf("MaxFollowerLag:         %lld\n", static_cast<long long>(max_lag));
    std::printf("MaxFollowerLagTimeMs:   %lld\n", static_cast<long long>(max_lag_ms));
    std::printf("CurrentVoters:          %s\n", id_list(d.voters).c_str());
    std::printf("CurrentObservers:       %s\n", id_list(d.observers).c_str());
    return 0;
  }
  std::printf("%-8s %-15s %-8s %-24s %-24s %s\n", "NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp",
              "LastCaughtUpTimestamp", "Status");
  auto row = [&](const client::quorum_replica& r, const char* status) {
    std::printf("%-8d %-15lld %-8lld %-24lld %-24lld %s\n", r.id, static_cast<long long>(r.log_end_offset),
                static_cast<long long>(std::max<int64_t>(d.high_watermark - r.log_end_offset, 0)),
                static_cast<long long>(r.last_fetch_timestamp), static_cast<long long>(r.last_caught_up_timestamp),
                status);
  };
  for (auto& v : d.voters) row(v, v.id == d.leader_id ? "Leader" : "Follower");
  for (auto& o : d.observers) row(o, "Observer");
  return 0;
}

struct election_opts {
  std::string bootstrap;
  std::string type = "PREFERRED";
  bool all = false;
  std::string topic;
  int32_t partition = -1;
};

int run_leader_election(const election_opts& o) {
  const char* tool = "leader-election";
  std::string type = o.type;
  std::transform(type.begin(), type.end(), type.begin(), ::toupper);
  if (type != "PREFERRED" && type != "UNCLEAN") return fail(tool, "--election-type must be PREFERRED or UNCLEAN");
  if (o.all == !o.topic.empty())
    return fail(tool, "give --all-topic-partitions, or --topic with --partition");
  if (!o.topic.empty() && o.partition < 0) return fail(tool, "--partition is required with --topic");
  if (auto b = client::parse_bootstrap(o.bootstrap); !b) return fail(tool, b.err().message);
  auto admin = make_admin(o.bootstrap, "gregor-leader-election");
  std::vector<client::topic_partition> parts;
  if (!o.topic.empty()) parts.push_back({o.topic, o.partition});
  auto r = admin.elect_leaders(type == "PREFERRED" ? client::election_type::preferred : client::election_type::unclean,
                               parts);
  if (!r) return fail(tool, r.err().message);
  int failed = 0;
  std::vector<std::string> elected, not_needed;
  for (auto& [tp, res] : r.value()) {
    std::string name = tp.topic + "-" + std::to_string(tp.partition);
    if (res.ok()) elected.push_back(name);
    else if (res.error_code == 84) not_needed.push_back(name);  // ELECTION_NOT_NEEDED
    else {
      ++failed;
      std::fprintf(stderr, "Error completing leader election (%s) for partition: %s: %s\n", type.c_str(),
                   name.c_str(), res.describe().c_str());
    }
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!elected.empty()) std::printf("Successfully completed leader election (%s) for partitions %s\n", type.c_str(), join(elected).c_str());
  if (!not_needed.empty()) std::printf("Valid replica already elected for partitions %s\n", join(not_needed).c_str());
  if (elected.empty() && not_needed.empty() && failed == 0) std::printf("No partition needed a leader election\n");
  return failed ? 1 : 0;
}

}  // namespace

void register_cluster_tools(CLI::App& app, int& exit_code) {
  // metadata-quorum
  auto* mq = app.add_subcommand("metadata-quorum", "Describe the metadata quorum (kafka-metadata-quorum)");
  auto bootstrap = std::make_shared<std::string>();
  mq->add_option("--bootstrap-server", *bootstrap, "host:port of a broker")->required();
  mq->require_subcommand(1);
  auto* describe = mq->add_subcommand("describe", "The quorum's leader, epoch and replicas");
  auto status = std::make_shared<bool>(false), replication = std::make_shared<bool>(false);
  describe->add_flag("--status", *status, "Leader, epoch, high watermark, lag, voters and observers");
  describe->add_flag("--replication", *replication, "Each replica's log end offset, lag and fetch times");
  describe->callback([&exit_code, bootstrap, status, replication] {
    exit_code = run_describe_quorum(*bootstrap, *status, *replication);
  });

  // leader-election
  auto* le = app.add_subcommand("leader-election", "Elect preferred or unclean leaders (kafka-leader-election)");
  auto eo = std::make_shared<election_opts>();
  le->add_option("--bootstrap-server", eo->bootstrap, "host:port of a broker")->required();
  le->add_option("--election-type", eo->type, "PREFERRED or UNCLEAN");
  le->add_flag("--all-topic-partitions", eo->all, "Every partition");
  le->add_option("--topic", eo->topic, "One topic");
  le->add_option("--partition", eo->partition, "Its partition");
  le->callback([&exit_code, eo] { exit_code = run_leader_election(*eo); });

  // storage
  auto* st = app.add_subcommand("storage", "Storage tools (kafka-storage)");
  st->require_subcommand(1);
  auto* uuid = st->add_subcommand("random-uuid", "Print a new cluster id (for cluster.id)");
  uuid->callback([&exit_code] {
    std::printf("%s\n", runtime::random_uuid_base64().c_str());
    exit_code = 0;
  });
}

}  // namespace gregor::cli
