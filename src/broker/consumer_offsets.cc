#include "broker/consumer_offsets.h"

#include "base/log.h"
#include "broker/broker.h"
#include "broker/partition_io.h"
#include "coordinator/transaction_coordinator.h"
#include "protocol/record_batch.h"
#include "runtime/clock.h"
#include "runtime/shards.h"
#include "runtime/file.h"

namespace gregor::broker {

using protocol::error_code;

namespace {
constexpr int32_t read_chunk_bytes = 1 << 20;
constexpr int64_t kCommitTimeoutMs = 5000;  // Kafka's offsets.commit.timeout.ms
}  // namespace

coordinator::group_config group_config_from(const broker_config& c) {
  coordinator::group_config g;
  g.offsets_topic_num_partitions = c.offsets_topic_num_partitions;
  g.group_initial_rebalance_delay_ms = c.group_initial_rebalance_delay_ms;
  g.group_min_session_timeout_ms = c.group_min_session_timeout_ms;
  g.group_max_session_timeout_ms = c.group_max_session_timeout_ms;
  g.offsets_retention_ms = c.offsets_retention_minutes * 60 * 1000;
  g.offsets_retention_check_interval_ms = c.offsets_retention_check_interval_ms;
  g.offset_metadata_max_bytes = c.offset_metadata_max_bytes;
  return g;
}

internal_topic_spec consumer_offsets_spec(const broker_config& c) {
  internal_topic_spec s;
  s.name = coordinator::offsets_topic_name;
  s.num_partitions = c.offsets_topic_num_partitions;
  s.replication_factor = c.offsets_topic_replication_factor;
  s.configs = {{"cleanup.policy", "compact"}, {"segment.bytes", "104857600"}, {"compression.type", "producer"}};
  return s;
}

internal_topic_spec transaction_state_spec(const broker_config& c) {
  internal_topic_spec s;
  s.name = coordinator::transaction_state_topic_name;
  s.num_partitions = c.transaction_state_log_num_partitions;
  s.replication_factor = c.transaction_state_log_replication_factor;
  s.min_insync_replicas = c.transaction_state_log_min_isr;
  s.configs = {{"cleanup.policy", "compact"},
               {"segment.bytes", std::to_string(c.transaction_state_log_segment_bytes)},
               {"compression.type", "uncompressed"},
               {"unclean.leader.election.enable", "false"}};
  return s;
}

consumer_offsets_log::consumer_offsets_log(broker& b) : b_(b), spec_(consumer_offsets_spec(b.config())) {}

int32_t consumer_offsets_log::partition_count() {
  const std::string& topic_name = spec_.name;
  auto* t = b_.image()->topic(topic_name);
  return t ? static_cast<int32_t>(t->partitions.size()) : 0;
}

runtime::task<result<int32_t>> consumer_offsets_log::create_topic() {
  const std::string& topic_name = spec_.name;
  if (int32_t n = partition_count(); n > 0) co_return n;
  metadata::topic_spec spec;
  spec.name = topic_name;
  spec.num_partitions = spec_.num_partitions;
  int16_t rf = spec_.replication_factor;
  // Like Kafka: no more replicas than there are brokers.
  rf = std::min<int16_t>(rf, static_cast<int16_t>(std::max<size_t>(b_.image()->unfenced_brokers().size(), 1)));
  spec.replication_factor = rf;
  spec.configs = spec_.configs;
  if (spec_.min_insync_replicas > 0)
    spec.configs["min.insync.replicas"] = std::to_string(std::min<int32_t>(spec_.min_insync_replicas, rf));
  auto decisions = co_await b_.create_topics({spec}, false);
  if (!decisions.empty() && !decisions[0].ok() && decisions[0].error != error_code::topic_already_exists)
    co_return error{"cannot create " + topic_name + ": " + decisions[0].message};
  int32_t n = partition_count();
  if (n <= 0) co_return error{topic_name + " does not exist after its creation"};
  log::get("coordinator")->info("created {} with {} partitions", topic_name, n);
  co_return n;
}

runtime::task<coordinator::offsets_log::append_result> consumer_offsets_log::append(int32_t partition, bytes batch) {
  const std::string& topic_name = spec_.name;
  // As a producer with acks=all (Kafka's coordinator does the same): a
  // commit is answered once every in-sync replica has it, so it survives the
  // loss of the leader.
  auto img = b_.image();
  auto* t = img->topic(topic_name);
  if (!t) co_return append_result{error_code::not_leader_or_follower, -1};
  std::map<size_t, std::vector<append_work>> by_shard;
  auto& work = by_shard[shard_of(topic_name, partition, b_.shard_count())];
  work.push_back(append_work{&topic_name, partition, bytes_view(batch), &t->configs, 0, 0, {}, true});
  for (auto& [shard, items] : by_shard) {
    auto* w = &items;
    co_await runtime::submit_to_void(shard, [this, w]() -> runtime::task<void> {
      append_here(b_, *w, -1);
      co_return;
    });
  }
  co_await await_acks(b_, by_shard, runtime::monotonic_ms() + kCommitTimeoutMs);
  auto& r = work.front().result;
  if (r.error != error_code::none && r.error != error_code::not_leader_or_follower)
    log::get("coordinator")->warn("append to {}-{} failed: {} {}", topic_name, partition, protocol::error_name(r.error),
                                  r.message);
  co_return append_result{r.error, r.error == error_code::none ? r.base_offset : -1};
}

runtime::task<bool> consumer_offsets_log::committed_up_to(int32_t partition, int64_t offset) {
  size_t shard = shard_of(spec_.name, partition, b_.shard_count());
  co_return co_await runtime::submit_to(shard, [this, partition, offset]() -> runtime::task<bool> {
    co_return b_.partitions().find_leader(spec_.name, partition) &&
        b_.partitions().high_watermark(spec_.name, partition) >= offset;
  });
}

runtime::task<result<bytes>> consumer_offsets_log::read(int32_t partition, int64_t offset) {
  const std::string& topic_name = spec_.name;
  // (Crossing shards needs a default-constructible result.)
  struct read_out {
    std::optional<std::string> error;
    bytes data;
  };
  size_t shard = shard_of(topic_name, partition, b_.shard_count());
  auto r = co_await runtime::submit_to(shard, [this, partition, offset]() -> runtime::task<read_out> {
    read_out out;
    auto* log = b_.partitions().find_leader(spec_.name, partition);
    if (!log) {
      out.error = "no log for " + spec_.name + "-" + std::to_string(partition);
      co_return out;
    }
    int64_t from = std::max(offset, log->log_start_offset());
    if (from >= log->log_end_offset()) co_return out;
    auto rd = log->read(from, read_chunk_bytes, true);
    if (!rd) {
      out.error = rd.err().message;
      co_return out;
    }
    for (auto& c : rd.value().records.chunks()) {
      if (auto* b = std::get_if<bytes>(&c)) {
        out.data.insert(out.data.end(), b->begin(), b->end());
      } else {
        auto data = runtime::read_region(std::get<file_region>(c));
        if (!data) {
          out.error = data.err().message;
          co_return out;
        }
        out.data.insert(out.data.end(), data.value().begin(), data.value().end());
      }
    }
    co_return out;
  });
  if (r.error) co_return error{*r.error};
  co_return std::move(r.data);
}

}  // namespace gregor::broker
