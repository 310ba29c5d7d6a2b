#pragma once
// The background work on one shard's partition logs, one coroutine per shard:
// - retention (cleanup.policy=delete) every log.retention.check.interval.ms:
//   segments beyond retention.ms / retention.bytes or below the log start
//   offset are deleted, the log start moves forward and is persisted;
// - flush.ms: logs whose last fsync is older are flushed;
// - compaction (cleanup.policy=compact) by the cleaner (storage/cleaner.h):
//   every log.cleaner.backoff.ms the dirtiest due log of the shard is picked
//   and cleaned in slices of about 1 MiB, yielding to the event loop between
//   slices.
#include "runtime/task.h"

namespace gregor::broker {

class broker;

// Runs on the calling shard until the broker stops.
runtime::task<void> run_log_maintenance(broker& b);

}  // namespace gregor::broker
