#pragma once
// The high watermark checkpoint (Kafka's replication-offset-checkpoint, one
// per log dir): every replica's high watermark, written from shard 0 every
// replica.high.watermark.checkpoint.interval.ms and once more at shutdown.
// A restarted replica starts from it (partition_manager reads it), so it
// exposes no record the ISR did not have, and a leader no fewer than it had.
#include "runtime/task.h"

namespace gregor::broker {

class broker;

// Gathers every shard's high watermarks and writes each log dir's file.
runtime::task<void> checkpoint_high_watermarks(broker& b);
// Shard 0, while the broker runs.
runtime::task<void> run_high_watermark_checkpoints(broker& b);

}  // namespace gregor::broker
