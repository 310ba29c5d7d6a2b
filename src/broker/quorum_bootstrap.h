#pragma once
// controller.quorum.bootstrap.servers: how a broker-only node that is given no
// controller.quorum.voters finds the metadata quorum (KIP-853). It asks each
// bootstrap server DescribeQuorum in turn; the quorum's leader answers with
// the voters and their controller listeners, which the node then fetches
// metadata from as an observer.
#include <cstdint>
#include <vector>

#include "base/result.h"
#include "broker/config.h"
#include "raft/driver.h"
#include "runtime/task.h"

namespace gregor::broker {

// Retries until a bootstrap server's answer names the voters, or timeout_ms.
runtime::task<result<std::vector<raft::voter_endpoint>>> discover_voters(const broker_config& config,
                                                                        int64_t timeout_ms);

}  // namespace gregor::broker
