#include "client/assignor.h"

#include <algorithm>
#include <set>

namespace gregor::client {

namespace {

// Every member gets an entry in `out` (possibly empty); returns the members
// ordered by member id, the order both assignors hand partitions out in.
std::vector<const member_subscription*> sorted_members(const std::vector<member_subscription>& members,
                                                      group_assignment& out) {
  std::vector<const member_subscription*> sorted;
  for (auto& m : members) {
    out[m.member_id];
    sorted.push_back(&m);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->member_id < b->member_id; });
  return sorted;
}

bool subscribes(const member_subscription& m, const std::string& topic) {
  return std::find(m.topics.begin(), m.topics.end(), topic) != m.topics.end();
}

group_assignment range(const std::vector<member_subscription>& members, const std::map<std::string, int32_t>& parts) {
  group_assignment out;
  for (auto& m : members) out[m.member_id];
  for (auto& [topic, n] : parts) {
    std::vector<std::string> consumers;
    for (auto& m : members)
      if (subscribes(m, topic)) consumers.push_back(m.member_id);
    if (consumers.empty()) continue;
    std::sort(consumers.begin(), consumers.end());
    const int32_t per = n / static_cast<int32_t>(consumers.size());
    const int32_t extra = n % static_cast<int32_t>(consumers.size());
    for (int32_t i = 0; i < static_cast<int32_t>(consumers.size()); ++i) {
      const int32_t start = per * i + std::min(i, extra);
      const int32_t len = per + (i + 1 > extra ? 0 : 1);
      for (int32_t p = start; p < start + len; ++p) out[consumers[i]].push_back({topic, p});
    }
  }
  return out;
}

group_assignment roundrobin(const std::vector<member_subscription>& members,
                            const std::map<std::string, int32_t>& parts) {
  group_assignment out;
  auto sorted = sorted_members(members, out);
  if (sorted.empty()) return out;
  size_t next = 0;
  for (auto& [topic, n] : parts) {
    for (int32_t p = 0; p < n; ++p) {
      for (size_t tries = 0; tries < sorted.size(); ++tries) {
        auto* m = sorted[next % sorted.size()];
        ++next;
        if (subscribes(*m, topic)) {
          out[m->member_id].push_back({topic, p});
          break;
        }
      }
    }
  }
  return out;
}

group_assignment cooperative_sticky(const std::vector<member_subscription>& members,
                                    const std::map<std::string, int32_t>& parts) {
  group_assignment out;
  auto sorted = sorted_members(members, out);
  if (sorted.empty()) return out;
  std::vector<topic_partition> all;
  for (auto& [t, n] : parts)
    for (int32_t p = 0; p < n; ++p) all.push_back({t, p});
  // Upper bound per member: ceil(partitions / members subscribed to anything).
  const size_t quota = (all.size() + sorted.size() - 1) / sorted.size();
  std::map<topic_partition, std::string> owner;  // current owner, from subscriptions
  std::set<topic_partition> taken;
  for (auto* m : sorted) {
    std::vector<topic_partition> owned = m->owned;
    std::sort(owned.begin(), owned.end());
    for (auto& tp : owned) {
      auto pit = parts.find(tp.topic);
      if (pit == parts.end() || tp.partition >= pit->second || !subscribes(*m, tp.topic)) continue;
      if (!owner.emplace(tp, m->member_id).second) continue;  // claimed twice: first wins
      if (out[m->member_id].size() < quota) {
        out[m->member_id].push_back(tp);
        taken.insert(tp);
      }
    }
  }
  for (auto& tp : all) {
    if (taken.count(tp)) continue;
    const member_subscription* best = nullptr;
    for (auto* m : sorted) {
      if (!subscribes(*m, tp.topic)) continue;
      if (!best || out[m->member_id].size() < out[best->member_id].size()) best = m;
    }
    if (best) {
      out[best->member_id].push_back(tp);
      taken.insert(tp);
    }
  }
  // Cooperative: a partition that changes hands is left unassigned in this
  // round; its owner revokes it and rejoins, and the next round assigns it.
  for (auto& [member, tps] : out) {
    tps.erase(std::remove_if(tps.begin(), tps.end(),
                             [&, &member = member](const topic_partition& tp) {
                               auto it = owner.find(tp);
                               return it != owner.end() && it->second != member;
                             }),
              tps.end());
    std::sort(tps.begin(), tps.end());
  }
  return out;
}

}  // namespace

bool known_assignor(const std::string& name) {
  return name == "range" || name == "roundrobin" || name == "cooperative-sticky";
}

group_assignment assign_partitions(const std::string& strategy, const std::vector<member_subscription>& members,
                                   const std::map<std::string, int32_t>& partitions_per_topic) {
  if (strategy == "roundrobin") return roundrobin(members, partitions_per_topic);
  if (strategy == "cooperative-sticky") return cooperative_sticky(members, partitions_per_topic);
  return range(members, partitions_per_topic);
}

}  // namespace gregor::client
