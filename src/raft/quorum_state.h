#pragma once
// The quorum-state file: what a node must remember across restarts to keep
// Raft's promises (its epoch, whom it voted for in it, the leader it knows).
// Kafka's format: JSON in <metadata log dir>/__cluster_metadata-0/quorum-state,
//
//   {"clusterId":"","leaderId":1,"leaderEpoch":5,"votedId":-1,
//    "appliedOffset":0,"currentVoters":[{"voterId":1},...],"data_version":0}
//
// written atomically (temporary file, fsync, rename, fsync of the directory)
// before anything that depends on it is sent.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace gregor::raft {

struct quorum_state {
  int32_t leader_epoch = 0;
  int32_t leader_id = -1;
  int32_t voted_id = -1;
  std::vector<int32_t> voters;
  bool operator==(const quorum_state&) const = default;
};

std::string quorum_state_path(const std::string& partition_dir);
// nullopt when the file does not exist (a new node); an error when it is unreadable.
result<std::optional<quorum_state>> read_quorum_state(const std::string& partition_dir);
result<void> write_quorum_state(const std::string& partition_dir, const quorum_state& s);

// For tests and tools: the JSON text and back.
std::string encode_quorum_state(const quorum_state& s);
result<quorum_state> decode_quorum_state(const std::string& text);

}  // namespace gregor::raft
