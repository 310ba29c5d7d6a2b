#pragma once
// Whole Gregor clusters under deterministic simulation: 3 or 5 voters
// (broker and controller) and optional broker-only nodes run the real node
// code on runtime's simulated backend, one thread, virtual time. A client
// issues CreateTopics, DeleteTopics and CreatePartitions to random brokers
// while faults drawn from the seed strike: crashes and restarts, partitions
// between nodes and isolated nodes, lost, duplicated and reordered frames,
// disk errors. After every event the run checks:
//
//   - at most one leader per epoch, ever;
//   - the committed metadata log never changes: every node's batches below
//     its high watermark are the same as every other node's at those offsets
//     (so each node's log is a prefix of the leader's committed log);
//   - a node's high watermark never goes back while it runs;
//   - every node's image at an offset equals every other node's at it;
//   - no fenced broker leads a partition, every leader is an in-sync replica.
//
// Then the faults stop, crashed nodes restart, and the run checks liveness:
// one active controller, every broker unfenced, every node caught up, a new
// topic created; and that every change the client had acknowledged is there.
//
// A run is a function of its options: a failing seed replays exactly.
#include <cstdint>
#include <string>

namespace gregor::sim {

struct options {
  uint64_t seed = 1;
  int voters = 3;             // broker,controller nodes
  int brokers = 0;            // broker-only nodes
  int64_t fault_ms = 30'000;  // virtual time with faults and workload
  int64_t heal_ms = 90'000;   // virtual time allowed to recover after that
  bool faults = true;
  std::string log_level = "off";
};

struct outcome {
  bool ok = true;
  std::string failure;  // the first broken property, with when and where
  uint64_t steps = 0;
  int64_t virtual_ms = 0;
  int crashes = 0;
  int partitions = 0;
  int max_epoch = 0;
  int topics_acked = 0;
  int64_t committed_offset = 0;
  int snapshots_installed = 0;
};

outcome run(const options& opts);
// The command that replays a run (printed with every failure).
std::string replay_command(const options& opts);

}  // namespace gregor::sim
