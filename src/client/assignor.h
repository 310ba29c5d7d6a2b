#pragma once
// Client-side partition assignors of the classic consumer group protocol,
// run by the group leader: range, roundrobin and cooperative-sticky, with
// Kafka's names and results (range and roundrobin match the Java client's
// assignments exactly; cooperative-sticky keeps owned partitions where the
// balance allows and never hands a partition straight from one member to
// another in one rebalance: its owner revokes it first).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "client/admin.h"

namespace gregor::client {

struct member_subscription {
  std::string member_id;
  std::vector<std::string> topics;
  std::vector<topic_partition> owned;
};

using group_assignment = std::map<std::string, std::vector<topic_partition>>;

// False for an unknown strategy name.
bool known_assignor(const std::string& name);
// `partitions_per_topic`: the partition count of every subscribed topic that
// exists. Every member gets an entry, possibly empty.
group_assignment assign_partitions(const std::string& strategy, const std::vector<member_subscription>& members,
                                   const std::map<std::string, int32_t>& partitions_per_topic);

}  // namespace gregor::client
