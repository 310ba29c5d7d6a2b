#include "broker/partition_io.h"

#include <algorithm>

#include "broker/broker.h"
#include "protocol/record_batch.h"
#include "runtime/clock.h"
#include "runtime/engine.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
int32_t max_message_bytes(const broker_config& c, const std::map<std::string, std::string>& topic) {
  auto it = topic.find("max.message.bytes");
  return it == topic.end() ? c.message_max_bytes : static_cast<int32_t>(std::stol(it->second));
}
}  // namespace

runtime::task<void> append_on_shard(broker& b, size_t shard, std::vector<append_work>& work) {
  co_await runtime::submit_to_void(shard, [&b, &work]() -> runtime::task<void> {
    bool appended = false;
    int64_t now = runtime::wall_clock_ms();
    bytes buffer;
    for (auto& w : work) {
      auto* log = b.partitions().find(*w.topic, w.partition);
      if (!log) {
        w.result.error = error_code::not_leader_or_follower;
        continue;
      }
      protocol::validate_options opts;
      opts.max_batch_bytes = max_message_bytes(b.config(), *w.topic_configs);
      opts.require_single_batch = true;  // produce v3+: one batch per partition, as Kafka requires
      auto v = protocol::validate_batches(w.records, opts);
      if (!v.ok()) {
        w.result.error = static_cast<error_code>(protocol::kafka_error_code(v.error));
        w.result.message = v.message;
        continue;
      }
      buffer.assign(w.records.begin(), w.records.end());
      auto r = log->append(buffer, now);
      if (!r) {
        w.result.error = error_code::kafka_storage_error;
        w.result.message = r.err().message;
        continue;
      }
      w.result.base_offset = r.value().base_offset;
      w.result.log_append_time_ms = r.value().log_append_time_ms;
      w.result.log_start_offset = r.value().log_start_offset;
      appended = true;
    }
    if (appended) b.notify_appended();
    co_return;
  });
}

runtime::task<void> read_on_shard(broker& b, size_t shard, std::vector<read_work*>& work, int64_t& budget,
                                  bool& first_batch_pending) {
  co_await runtime::submit_to_void(shard, [&]() -> runtime::task<void> {
    for (auto* w : work) {
      auto* log = b.partitions().find(*w->topic, w->partition);
      if (!log) {
        w->error = error_code::not_leader_or_follower;
        continue;
      }
      w->high_watermark = log->log_end_offset();
      w->log_start_offset = log->log_start_offset();
      if (budget <= 0 && !first_batch_pending) continue;
      int64_t limit = std::min<int64_t>(w->partition_max_bytes, std::max<int64_t>(budget, 0));
      auto r = log->read(w->fetch_offset, static_cast<int32_t>(limit), first_batch_pending);
      if (!r) {
        w->error = error_code::kafka_storage_error;
        continue;
      }
      if (r.value().offset_out_of_range) {
        w->error = error_code::offset_out_of_range;
        continue;
      }
      w->records = std::move(r.value().records);
      if (!w->records.empty()) {
        first_batch_pending = false;
        budget -= static_cast<int64_t>(w->records.size());
      }
    }
    co_return;
  });
}

runtime::task<void> list_offsets_on_shard(broker& b, size_t shard, std::vector<offset_query*>& work) {
  co_await runtime::submit_to_void(shard, [&]() -> runtime::task<void> {
    for (auto* q : work) {
      auto* log = b.partitions().find(*q->topic, q->partition);
      if (!log) {
        q->error = error_code::not_leader_or_follower;
        continue;
      }
      if (q->timestamp == -2) {
        q->offset = log->log_start_offset();
      } else if (q->timestamp == -1) {
        q->offset = log->log_end_offset();
      } else {
        auto found = q->timestamp == -3 ? log->offset_for_max_timestamp() : log->offset_for_timestamp(q->timestamp);
        if (!found) {
          q->error = error_code::kafka_storage_error;
          continue;
        }
        if (found.value()) {
          q->offset = found.value()->offset;
          q->found_timestamp = found.value()->timestamp;
        }
      }
    }
    co_return;
  });
}

}  // namespace gregor::broker
