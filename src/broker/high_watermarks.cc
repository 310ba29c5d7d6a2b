#include "broker/high_watermarks.h"

#include <map>
#include <string>

#include "base/log.h"
#include "broker/broker.h"
#include "runtime/clock.h"
#include "runtime/shards.h"
#include "storage/offset_checkpoint.h"

namespace gregor::broker {

runtime::task<void> checkpoint_high_watermarks(broker& b) {
  std::map<std::string, storage::partition_offsets> by_dir;
  for (auto& d : b.config().log_dirs) by_dir[d];
  for (size_t i = 0; i < b.shard_count(); ++i) {
    co_await runtime::submit_to_void(i, [&b, &by_dir]() -> runtime::task<void> {
      auto& pm = b.partitions();
      for (auto& [tp, log] : pm.logs()) {
        int64_t hw = pm.high_watermark(tp.topic, tp.partition);
        if (hw < 0) continue;
        // The partition dir's parent is its log dir.
        auto slash = log->dir().rfind('/');
        std::string dir = slash == std::string::npos ? "." : log->dir().substr(0, slash);
        by_dir[dir][{tp.topic, tp.partition}] = hw;
      }
      co_return;
    });
  }
  for (auto& [dir, offsets] : by_dir) {
    auto r = storage::write_offset_checkpoint(dir + "/" + std::string(storage::high_watermark_checkpoint_file), offsets);
    if (!r) log::get("replication")->error("cannot write the high watermark checkpoint in {}: {}", dir, r.err().message);
  }
}

runtime::task<void> run_high_watermark_checkpoints(broker& b) {
  while (!b.stopping()) {
    co_await runtime::sleep_for(std::max<int64_t>(b.config().replica_high_watermark_checkpoint_interval_ms, 100));
    if (b.stopping()) break;
    co_await checkpoint_high_watermarks(b);
  }
}

}  // namespace gregor::broker
