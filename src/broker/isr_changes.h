#pragma once
// A leader's ISR changes, sent to the controller (Kafka's
// AlterPartitionManager and Partition.maybeShrinkIsr/maybeExpandIsr): each
// shard looks at the partitions it leads every kIsrCheckMs, and sends the
// changes their leader_state asks for in one AlterPartition (v3, with each
// member's broker epoch). Until the controller answers, or the image moves
// past the partition epoch the change was based on, the leader counts the
// larger ISR for its high watermark; a lost answer is sent again.
#include <cstdint>

#include "metadata/cluster_control.h"
#include "runtime/task.h"

namespace gregor::broker {

class broker;

// Runs on each shard while the broker runs.
runtime::task<void> run_isr_changes(broker& b);

// Sends one AlterPartition to the active controller (applied here when this
// node is the active controller) and returns its answer; a transport failure
// is REQUEST_TIMED_OUT for the whole request. Shard 0.
runtime::task<metadata::alter_partition_result> send_alter_partition(broker& b,
                                                                     const metadata::alter_partition_request& req);

}  // namespace gregor::broker
