#include "broker/partition_manager.h"

#include <algorithm>

#include "base/log.h"
#include "metadata/topic_config.h"
#include "runtime/clock.h"
#include "runtime/file.h"
#include "storage/log_manager.h"

namespace gregor::broker {

size_t shard_of(const std::string& topic, int32_t partition, size_t shards) {
  // FNV-1a over the name, mixed with the partition: stable across runs.
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : topic) h = (h ^ c) * 1099511628211ULL;
  h = (h ^ static_cast<uint32_t>(partition)) * 1099511628211ULL;
  return static_cast<size_t>(h % shards);
}

storage::log_config effective_log_config(const broker_config& b, const std::map<std::string, std::string>& t) {
  storage::log_config c;
  auto i64 = [&](const char* key, int64_t def) {
    auto it = t.find(key);
    return it == t.end() ? def : std::stoll(it->second);
  };
  c.segment_bytes = i64("segment.bytes", b.log_segment_bytes);
  c.segment_ms = i64("segment.ms", b.log_roll_ms);
  c.index_interval_bytes = static_cast<int32_t>(i64("index.interval.bytes", b.log_index_interval_bytes));
  c.index_max_bytes = i64("segment.index.bytes", b.log_index_size_max_bytes);
  c.flush_interval_messages = i64("flush.messages", b.log_flush_interval_messages);
  c.flush_interval_ms = i64("flush.ms", b.log_flush_interval_ms);
  c.retention_ms = i64("retention.ms", b.log_retention_ms);
  c.retention_bytes = i64("retention.bytes", b.log_retention_bytes);
  auto ts = t.find("message.timestamp.type");
  c.message_timestamp_type = ts == t.end() ? b.log_message_timestamp_type : ts->second;
  // Compaction. With compact alone nothing is deleted by time or size.
  auto policy = t.find("cleanup.policy");
  auto items = metadata::split_config_list(policy == t.end() ? b.log_cleanup_policy : policy->second);
  bool del = std::find(items.begin(), items.end(), "delete") != items.end();
  c.compact = std::find(items.begin(), items.end(), "compact") != items.end();
  if (!del) c.retention_ms = c.retention_bytes = -1;
  c.delete_retention_ms = i64("delete.retention.ms", b.log_cleaner_delete_retention_ms);
  c.min_compaction_lag_ms = i64("min.compaction.lag.ms", b.log_cleaner_min_compaction_lag_ms);
  c.max_compaction_lag_ms = i64("max.compaction.lag.ms", b.log_cleaner_max_compaction_lag_ms);
  auto ratio = t.find("min.cleanable.dirty.ratio");
  c.min_cleanable_dirty_ratio = ratio == t.end() ? b.log_cleaner_min_cleanable_ratio : std::stod(ratio->second);
  // Kafka rolls compacted logs by max.compaction.lag.ms too, so no record waits longer for the cleaner.
  if (c.compact && c.max_compaction_lag_ms > 0) c.segment_ms = std::min(c.segment_ms, c.max_compaction_lag_ms);
  return c;
}

namespace {
bool hosts_replica(const metadata::partition_state& p, int32_t node_id) {
  return std::find(p.replicas.begin(), p.replicas.end(), node_id) != p.replicas.end();
}
}  // namespace

partition_manager::partition_manager(const broker_config& config, size_t shard, size_t shards, bool recover)
    : config_(config), effective_(config), shard_(shard), shards_(shards), recover_(recover) {
  scan_existing();
}

void partition_manager::scan_existing() {
  for (auto& dir : config_.log_dirs) {
    for (auto& p : storage::list_partition_dirs(dir)) {
      if (p.topic == "__cluster_metadata") continue;
      if (shard_of(p.topic, p.partition, shards_) != shard_) continue;
      dirs_on_disk_[{p.topic, p.partition}] = p.path;
    }
  }
}

std::string partition_manager::choose_log_dir() const {
  // The dir with the fewest partitions of this shard; good enough balance.
  std::map<std::string, size_t> count;
  for (auto& d : config_.log_dirs) count[d] = 0;
  for (auto& [tp, log] : logs_)
    for (auto& d : config_.log_dirs)
      if (log->dir().starts_with(d + "/")) ++count[d];
  std::string best = config_.log_dirs.front();
  for (auto& [d, n] : count)
    if (n < count[best]) best = d;
  return best;
}

void partition_manager::apply_image(const metadata::image& img, int32_t node_id) {
  auto lg = log::get("broker");
  effective_ = effective_broker_config(config_, img.broker_configs);
  // Logs of topics that are gone, or were deleted and created again under a new id.
  for (auto it = logs_.begin(); it != logs_.end();) {
    auto* t = img.topic(it->first.topic);
    bool gone = !t || static_cast<size_t>(it->first.partition) >= t->partitions.size() ||
                !(topic_ids_[it->first.topic] == t->topic_id) ||
                !hosts_replica(t->partitions[static_cast<size_t>(it->first.partition)], node_id);
    if (!gone) {
      ++it;
      continue;
    }
    lg->info("deleting log of {}-{}", it->first.topic, it->first.partition);
    std::string dir = it->second->dir();
    if (auto r = it->second->close(); !r) lg->warn("closing {}: {}", dir, r.err().message);
    it = logs_.erase(it);
    if (auto r = storage::delete_log_dir(dir); !r) lg->error("cannot delete {}: {}", dir, r.err().message);
  }
  leader_epochs_.clear();
  for (auto& [name, topic] : img.topics) {
    for (auto& p : topic->partitions) {
      if (shard_of(name, p.partition, shards_) != shard_) continue;
      if (!hosts_replica(p, node_id)) continue;
      topic_partition tp{name, p.partition};
      if (p.leader == node_id) leader_epochs_[tp] = p.leader_epoch;
      if (auto open = logs_.find(tp); open != logs_.end()) {
        // Config changes (topic overrides, dynamic broker configs) take effect at once.
        auto c = effective_log_config(effective_, topic->configs);
        if (!(open->second->config() == c)) open->second->set_config(c);
        continue;
      }
      std::string dir;
      bool existing = false;
      if (auto d = dirs_on_disk_.find(tp); d != dirs_on_disk_.end()) {
        dir = d->second;
        existing = true;
        dirs_on_disk_.erase(d);
      } else {
        dir = storage::partition_dir(choose_log_dir(), name, p.partition);
      }
      auto opened = storage::log::open(dir, effective_log_config(effective_, topic->configs), existing && recover_,
                                       runtime::wall_clock_ms());
      if (!opened) {
        lg->error("cannot open log {}: {}", dir, opened.err().message);
        continue;
      }
      logs_[tp] = std::move(opened.value());
      topic_ids_[name] = topic->topic_id;
    }
  }
  // Partition dirs on disk that the image does not place here belong to
  // deleted topics or to replicas that moved away.
  for (auto it = dirs_on_disk_.begin(); it != dirs_on_disk_.end();) {
    auto* t = img.topic(it->first.topic);
    if (t && static_cast<size_t>(it->first.partition) < t->partitions.size() &&
        hosts_replica(t->partitions[static_cast<size_t>(it->first.partition)], node_id)) {
      ++it;
      continue;
    }
    lg->info("removing stray log dir {} (no replica of it belongs here)", it->second);
    if (auto r = storage::delete_log_dir(it->second); !r) lg->error("{}", r.err().message);
    it = dirs_on_disk_.erase(it);
  }
}

storage::log* partition_manager::find(const std::string& topic, int32_t partition) {
  auto it = logs_.find({topic, partition});
  return it == logs_.end() ? nullptr : it->second.get();
}

storage::log* partition_manager::find_leader(const std::string& topic, int32_t partition) {
  if (!leader_epochs_.count({topic, partition})) return nullptr;
  return find(topic, partition);
}

int32_t partition_manager::leader_epoch(const std::string& topic, int32_t partition) const {
  auto it = leader_epochs_.find({topic, partition});
  return it == leader_epochs_.end() ? -1 : it->second;
}

void partition_manager::close_all() {
  for (auto& [tp, log] : logs_) {
    if (auto r = log->close(); !r) log::get("broker")->error("closing {}-{}: {}", tp.topic, tp.partition, r.err().message);
  }
  logs_.clear();
}

}  // namespace gregor::broker
