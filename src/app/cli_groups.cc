// gregor consumer-groups: kafka-consumer-groups.sh's common operations.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "app/cli_common.h"
#include "client/admin.h"

namespace gregor::cli {

namespace {

struct groups_opts {
  std::string bootstrap;
  bool list = false, describe = false, reset = false, del = false;
  std::vector<std::string> groups;
  bool all_groups = false;
  bool members = false, state = false, offsets = false;
  std::vector<std::string> topics;
  bool all_topics = false;
  bool to_earliest = false, to_latest = false, to_current = false;
  std::optional<int64_t> to_offset;
  std::optional<int64_t> shift_by;
  std::string to_datetime;
  bool execute = false, dry_run = false;
};

// "YYYY-MM-DDTHH:mm:SS[.sss]" (UTC, or with a Z / ±hh:mm suffix) to epoch ms.
result<int64_t> parse_datetime(const std::string& s) {
  int y, mo, d, h, mi, sec;
  int n = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
    return error{fmt::format("bad --to-datetime '{}': expected YYYY-MM-DDTHH:mm:SS.sss", s)};
  int ms = 0;
  size_t pos = static_cast<size_t>(n);
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    for (; digits < 3; ++digits) ms *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int oh = 0, om = 0;
      if (std::sscanf(s.c_str() + pos + 1, "%d:%d", &oh, &om) < 1) return error{"bad time zone in --to-datetime"};
      offset_s = (s[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
      pos = s.size();
    }
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  int64_t t = static_cast<int64_t>(timegm(&tm)) - offset_s;
  return t * 1000 + ms;
}

std::string dash(int64_t v) { return v < 0 ? "-" : std::to_string(v); }

int run_groups(const groups_opts& o) {
  const char* tool = "consumer-groups";
  int actions = o.list + o.describe + o.reset + o.del;
  if (actions != 1) return fail(tool, "exactly one of --list, --describe, --reset-offsets, --delete is required");
  client::admin_config cfg;
  cfg.bootstrap_servers = o.bootstrap;
  cfg.client_id = "gregor-consumer-groups";
  if (auto b = client::parse_bootstrap(o.bootstrap); !b) return fail(tool, b.err().message);
  client::admin_client admin(cfg);
  auto cl = admin.describe_cluster();
  if (!cl) return fail(tool, cl.err().message);

  if (o.list) {
    auto r = admin.list_groups();
    if (!r) return fail(tool, r.err().message);
    for (auto& g : r.value())
      if (o.state) std::printf("%s\t%s\n", g.group_id.c_str(), g.state.c_str());
      else std::printf("%s\n", g.group_id.c_str());
    return 0;
  }
  std::vector<std::string> groups = o.groups;
  if (o.all_groups) {
    auto r = admin.list_groups();
    if (!r) return fail(tool, r.err().message);
    for (auto& g : r.value()) groups.push_back(g.group_id);
  }
  if (groups.empty()) return fail(tool, "--group (or --all-groups) is required");

  if (o.del) {
    auto r = admin.delete_groups(groups);
    if (!r) return fail(tool, r.err().message);
    int rc = 0;
    for (auto& item : r.value()) {
      if (item.ok()) std::printf("Deletion of requested consumer groups ('%s') was successful.\n", item.name.c_str());
      else rc = fail(tool, fmt::format("cannot delete group '{}': {}", item.name, item.describe()));
    }
    return rc;
  }

  if (o.describe) {
    auto desc = admin.describe_groups(groups);
    if (!desc) return fail(tool, desc.err().message);
    int rc = 0;
    for (auto& g : desc.value()) {
      if (g.error_code != 0) {
        rc = fail(tool, fmt::format("cannot describe group '{}': {}", g.group_id, client::describe_error(g.error_code)));
        continue;
      }
      if (o.state) {
        std::printf("\n%-30s %-25s %-20s %-15s\n", "GROUP", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS");
        std::printf("%-30s %-25s %-20s %-15zu\n", g.group_id.c_str(), g.protocol.c_str(), g.state.c_str(),
                    g.members.size());
        continue;
      }
      if (o.members) {
        if (g.members.empty()) {
          std::printf("\nConsumer group '%s' has no active members.\n", g.group_id.c_str());
          continue;
        }
        std::printf("\n%-30s %-50s %-20s %-25s %-12s\n", "GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS");
        for (auto& m : g.members)
          std::printf("%-30s %-50s %-20s %-25s %-12zu\n", g.group_id.c_str(), m.member_id.c_str(),
                      m.client_host.c_str(), m.client_id.c_str(), m.assignment.size());
        continue;
      }
      auto committed = admin.list_group_offsets(g.group_id);
      if (!committed) return fail(tool, committed.err().message);
      if (g.state == "Dead" && committed.value().empty()) {
        rc = fail(tool, fmt::format("consumer group '{}' does not exist", g.group_id));
        continue;
      }
      // Every partition: committed ones plus the members' assignments.
      std::map<client::topic_partition, const client::member_description*> owner;
      for (auto& m : g.members)
        for (auto& tp : m.assignment) owner[tp] = &m;
      std::vector<client::topic_partition> tps;
      for (auto& [tp, om] : committed.value()) tps.push_back(tp);
      for (auto& [tp, m] : owner)
        if (!committed.value().count(tp)) tps.push_back(tp);
      std::sort(tps.begin(), tps.end());
      auto ends = admin.list_offsets(tps, client::latest_timestamp);
      if (!ends) return fail(tool, ends.err().message);
      if (g.members.empty()) std::printf("\nConsumer group '%s' has no active members.\n", g.group_id.c_str());
      std::printf("\n%-30s %-30s %-10s %-15s %-15s %-10s %-50s %-20s %s\n", "GROUP", "TOPIC", "PARTITION",
                  "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID");
      for (auto& tp : tps) {
        int64_t cur = -1;
        if (auto it = committed.value().find(tp); it != committed.value().end()) cur = it->second.offset;
        int64_t end = -1;
        if (auto it = ends.value().find(tp); it != ends.value().end() && it->second.error_code == 0)
          end = it->second.offset;
        std::string lag = cur >= 0 && end >= 0 ? std::to_string(std::max<int64_t>(0, end - cur)) : "-";
        auto* m = owner.count(tp) ? owner[tp] : nullptr;
        std::printf("%-30s %-30s %-10d %-15s %-15s %-10s %-50s %-20s %s\n", g.group_id.c_str(), tp.topic.c_str(),
                    tp.partition, dash(cur).c_str(), dash(end).c_str(), lag.c_str(),
                    m ? m->member_id.c_str() : "-", m ? m->client_host.c_str() : "-", m ? m->client_id.c_str() : "-");
      }
    }
    return rc;
  }

  // --reset-offsets
  int targets = o.to_earliest + o.to_latest + o.to_current + o.to_offset.has_value() + o.shift_by.has_value() +
                !o.to_datetime.empty();
  if (targets != 1)
    return fail(tool, "--reset-offsets needs exactly one of --to-earliest, --to-latest, --to-current, --to-offset, "
                      "--shift-by, --to-datetime");
  if (o.topics.empty() && !o.all_topics) return fail(tool, "--reset-offsets needs --topic or --all-topics");
  int rc = 0;
  for (auto& group : groups) {
    auto desc = admin.describe_groups({group});
    if (!desc) return fail(tool, desc.err().message);
    if (!desc.value().empty() && !desc.value()[0].members.empty())
      return fail(tool, fmt::format("assignments can only be reset if the group '{}' is inactive, but the current "
                                    "state is {}",
                                    group, desc.value()[0].state));
    auto committed = admin.list_group_offsets(group);
    if (!committed) return fail(tool, committed.err().message);
    std::vector<client::topic_partition> tps;
    if (o.all_topics) {
      for (auto& [tp, om] : committed.value()) tps.push_back(tp);
    } else {
      for (auto& spec : o.topics) {
        // "topic" or "topic:0,1,2"
        auto colon = spec.find(':');
        std::string t = spec.substr(0, colon);
        if (colon != std::string::npos) {
          std::string ps = spec.substr(colon + 1);
          size_t start = 0;
          while (start < ps.size()) {
            auto comma = ps.find(',', start);
            tps.push_back({t, std::stoi(ps.substr(start, comma - start))});
            if (comma == std::string::npos) break;
            start = comma + 1;
          }
        } else {
          auto d = admin.describe_topics({t});
          if (!d) return fail(tool, d.err().message);
          if (d.value()[0].error_code != 0) return fail(tool, fmt::format("topic '{}' does not exist", t));
          for (auto& p : d.value()[0].partitions) tps.push_back({t, p.partition});
        }
      }
    }
    std::map<client::topic_partition, int64_t> target;
    if (o.to_current || o.shift_by) {
      for (auto& tp : tps) {
        auto it = committed.value().find(tp);
        if (it == committed.value().end() || it->second.offset < 0) continue;
        target[tp] = it->second.offset + o.shift_by.value_or(0);
      }
    } else if (o.to_offset) {
      for (auto& tp : tps) target[tp] = *o.to_offset;
    } else {
      int64_t ts = o.to_earliest ? client::earliest_timestamp : client::latest_timestamp;
      if (!o.to_datetime.empty()) {
        auto t = parse_datetime(o.to_datetime);
        if (!t) return fail(tool, t.err().message);
        ts = t.value();
      }
      auto offs = admin.list_offsets(tps, ts);
      if (!offs) return fail(tool, offs.err().message);
      std::vector<client::topic_partition> past_end;
      for (auto& [tp, lo] : offs.value()) {
        if (lo.error_code != 0)
          return fail(tool, fmt::format("cannot list offsets of {}-{}: {}", tp.topic, tp.partition,
                                        client::describe_error(lo.error_code)));
        if (lo.offset < 0) past_end.push_back(tp);  // no record at or after the time: go to the end
        else target[tp] = lo.offset;
      }
      if (!past_end.empty()) {
        auto ends = admin.list_offsets(past_end, client::latest_timestamp);
        if (!ends) return fail(tool, ends.err().message);
        for (auto& [tp, lo] : ends.value()) target[tp] = lo.offset;
      }
    }
    // Clamp into [log start, log end], as Kafka does.
    if (!target.empty()) {
      std::vector<client::topic_partition> keys;
      for (auto& [tp, off] : target) keys.push_back(tp);
      auto lo = admin.list_offsets(keys, client::earliest_timestamp);
      auto hi = admin.list_offsets(keys, client::latest_timestamp);
      if (lo && hi)
        for (auto& [tp, off] : target) {
          if (lo.value()[tp].error_code == 0) off = std::max(off, lo.value()[tp].offset);
          if (hi.value()[tp].error_code == 0) off = std::min(off, hi.value()[tp].offset);
        }
    }
    if (o.execute) {
      auto r = admin.alter_group_offsets(group, target);
      if (!r) return fail(tool, r.err().message);
      for (auto& [tp, ec] : r.value())
        if (ec != 0)
          rc = fail(tool, fmt::format("cannot reset {}-{} of group '{}': {}", tp.topic, tp.partition, group,
                                      client::describe_error(ec)));
    }
    std::printf("\n%-30s %-30s %-10s %-15s\n", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (auto& [tp, off] : target)
      std::printf("%-30s %-30s %-10d %-15lld\n", group.c_str(), tp.topic.c_str(), tp.partition,
                  static_cast<long long>(off));
    if (!o.execute)
      std::fprintf(stderr, "(dry run: nothing was changed; add --execute to reset the offsets)\n");
  }
  return rc;
}

}  // namespace

void register_consumer_groups(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<groups_opts>();
  auto* sub = app.add_subcommand("consumer-groups", "List, describe, reset and delete consumer groups");
  sub->add_option("--bootstrap-server", o->bootstrap, "host:port of a broker")->required();
  sub->add_flag("--list", o->list, "List groups");
  sub->add_flag("--describe", o->describe, "Offsets, log end offsets and lag per partition");
  sub->add_flag("--reset-offsets", o->reset, "Reset committed offsets (with --execute)");
  sub->add_flag("--delete", o->del, "Delete groups");
  sub->add_option("--group", o->groups, "Group id (repeatable)");
  sub->add_flag("--all-groups", o->all_groups, "Every group");
  sub->add_flag("--members", o->members, "With --describe: members");
  sub->add_flag("--state", o->state, "With --describe / --list: state");
  sub->add_flag("--offsets", o->offsets, "With --describe: offsets (the default)");
  sub->add_option("--topic", o->topics, "topic or topic:0,1 (repeatable)");
  sub->add_flag("--all-topics", o->all_topics, "Every topic the group has offsets for");
  sub->add_flag("--to-earliest", o->to_earliest, "Reset to the log start");
  sub->add_flag("--to-latest", o->to_latest, "Reset to the log end");
  sub->add_flag("--to-current", o->to_current, "Reset to the committed offset");
  sub->add_option("--to-offset", o->to_offset, "Reset to this offset");
  sub->add_option("--shift-by", o->shift_by, "Move the committed offset by n");
  sub->add_option("--to-datetime", o->to_datetime, "Reset to the first offset at or after YYYY-MM-DDTHH:mm:SS.sss");
  sub->add_flag("--execute", o->execute, "Apply the reset");
  sub->add_flag("--dry-run", o->dry_run, "Only show the new offsets (the default)");
  sub->callback([o, &exit_code] { exit_code = run_groups(*o); });
}

}  // namespace gregor::cli
