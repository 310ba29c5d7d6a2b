#include "broker/partition_manager.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "base/log.h"
#include "metadata/topic_config.h"
#include "runtime/clock.h"
#include "runtime/file.h"
#include "storage/log_manager.h"
#include "storage/offset_checkpoint.h"

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
    // The high watermarks as of the last checkpoint: a restarted replica
    // exposes no more than was committed (and, as leader, no less).
    auto hw = storage::read_offset_checkpoint(dir + "/" + std::string(storage::high_watermark_checkpoint_file));
    if (!hw) log::get("broker")->warn("{} (high watermarks start at the log start)", hw.err().message);
    else
      for (auto& [tp, offset] : hw.value())
        if (shard_of(tp.first, tp.second, shards_) == shard_) checkpointed_hw_[{tp.first, tp.second}] = offset;
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
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    if (logs_.count(it->first)) {
      ++it;
      continue;
    }
    if (it->second.follower) ++followers_changed_;
    it = replicas_.erase(it);
  }
  for (auto& [name, topic] : img.topics) {
    for (auto& p : topic->partitions) {
      if (shard_of(name, p.partition, shards_) != shard_) continue;
      if (!hosts_replica(p, node_id)) continue;
      topic_partition tp{name, p.partition};
      if (auto open = logs_.find(tp); open != logs_.end()) {
        // Config changes (topic overrides, dynamic broker configs) take effect at once.
        auto c = effective_log_config(effective_, topic->configs);
        if (!(open->second->config() == c)) open->second->set_config(c);
        apply_role(*topic, p, node_id, *open->second);
        continue;
      }
      std::string dir;
      auto on_disk = dirs_on_disk_.find(tp);
      bool existing = on_disk != dirs_on_disk_.end();
      dir = existing ? on_disk->second : storage::partition_dir(choose_log_dir(), name, p.partition);
      auto opened = storage::log::open(dir, effective_log_config(effective_, topic->configs), existing && recover_,
                                       runtime::wall_clock_ms());
      if (!opened) {
        // The dir stays known as one found on disk: the next try opens it as
        // such, recovering it after an unclean shutdown. (Forgotten, it was
        // opened as a new log: no recovery, and with no producer state
        // snapshot its idempotent producers forgotten, so a retry of a batch
        // it holds was appended twice; simulation seed 1870.)
        lg->error("cannot open log {}: {}", dir, opened.err().message);
        continue;
      }
      if (existing) dirs_on_disk_.erase(on_disk);
      logs_[tp] = std::move(opened.value());
      topic_ids_[name] = topic->topic_id;
      apply_role(*topic, p, node_id, *logs_[tp]);
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
  auto it = replicas_.find({topic, partition});
  if (it == replicas_.end() || !it->second.leader) return nullptr;
  return find(topic, partition);
}

int32_t partition_manager::leader_epoch(const std::string& topic, int32_t partition) const {
  auto it = replicas_.find({topic, partition});
  return it == replicas_.end() || !it->second.leader ? -1 : it->second.leader->leader_epoch();
}

replica_state* partition_manager::replica(const std::string& topic, int32_t partition) {
  auto it = replicas_.find({topic, partition});
  return it == replicas_.end() ? nullptr : &it->second;
}

int64_t partition_manager::high_watermark(const std::string& topic, int32_t partition) const {
  auto it = replicas_.find({topic, partition});
  return it == replicas_.end() ? -1 : it->second.current_high_watermark();
}

replication::leader_settings partition_manager::leader_settings_for(
    const std::map<std::string, std::string>& topic_configs) const {
  replication::leader_settings s;
  auto it = topic_configs.find("min.insync.replicas");
  s.min_insync_replicas = it == topic_configs.end() ? effective_.min_insync_replicas : std::stoi(it->second);
  s.replica_lag_time_max_ms = effective_.replica_lag_time_max_ms;
  return s;
}

void partition_manager::apply_role(const metadata::topic_state& topic, const metadata::partition_state& p,
                                   int32_t node_id, storage::log& log) {
  topic_partition tp{topic.name, p.partition};
  auto [it, fresh] = replicas_.try_emplace(tp);
  replica_state& r = it->second;
  if (fresh) {
    // A replica opened now starts from its checkpointed high watermark.
    auto hw = checkpointed_hw_.find(tp);
    r.high_watermark = std::clamp<int64_t>(hw == checkpointed_hw_.end() ? 0 : hw->second, log.log_start_offset(),
                                           log.log_end_offset());
  }
  int64_t now = runtime::wall_clock_ms();
  int64_t hw = r.current_high_watermark();
  bool epoch_changed = r.leader_epoch != p.leader_epoch || r.leader_id != p.leader;
  r.topic_id = topic.topic_id;
  r.leader_recovery_state = p.leader_recovery_state;
  if (p.leader == node_id) {
    auto settings = leader_settings_for(topic.configs);
    if (!r.leader || epoch_changed) {
      // Kafka's makeLeader: this epoch's records start at the log end; the
      // followers in the ISR get a full lag window to show up.
      if (r.follower) ++followers_changed_;
      r.follower.reset();
      // Kafka's maybeAssignEpochStartOffset: the new epoch starts at the log
      // end now, not at the first append, so a follower fetching with the
      // previous epoch learns where it ends.
      if (auto e = log.begin_leader_epoch(p.leader_epoch); !e)
        gregor::log::get("replication")->warn("{}-{}: cannot record leader epoch {}: {}", tp.topic, tp.partition,
                                              p.leader_epoch, e.err().message);
      r.leader.emplace(node_id, p.leader_epoch, p.replicas, p.isr, log.log_end_offset(), hw, log.log_end_offset(), now,
                       settings);
      r.proposal_partition_epoch = -1;
      log::get("replication")->info("{}-{}: leader at epoch {} (log end {}, high watermark {}, ISR {})", tp.topic,
                                    tp.partition, p.leader_epoch, log.log_end_offset(), r.leader->high_watermark(),
                                    fmt::join(p.isr, ","));
    } else {
      if (r.leader->replicas() != p.replicas) r.leader->on_replicas_changed(p.replicas);
      r.leader->set_settings(settings);
      // The ISR as committed. While an AlterPartition is in flight, only an
      // image past the partition epoch it was based on settles it (until
      // then the leader counts the larger ISR).
      // An image older than an AlterPartition answer already applied changes nothing.
      bool settled = !r.leader->proposal_in_flight() || p.partition_epoch > r.proposal_partition_epoch;
      if (settled && p.partition_epoch >= r.partition_epoch &&
          (r.leader->isr() != p.isr || r.leader->proposal_in_flight()))
        r.leader->on_isr_committed(p.isr);
    }
  } else if (!r.follower || epoch_changed || r.leader) {
    // Kafka's makeFollower: fetch from the new leader; where the logs part is
    // found by the fetches themselves (DivergingEpoch), not by truncating here.
    r.leader.reset();
    if (p.leader >= 0) r.follower.emplace(p.leader, p.leader_epoch, log.log_end_offset(), hw);
    else r.follower.reset();
    r.high_watermark = hw;
    r.fetch_paused_until_ms = 0;
    ++followers_changed_;
  }
  if (epoch_changed) r.partition_epoch = p.partition_epoch;
  else r.partition_epoch = std::max(r.partition_epoch, p.partition_epoch);
  r.leader_id = p.leader;
  r.leader_epoch = p.leader_epoch;
}

void partition_manager::close_all() {
  if (!replicas_.empty()) ++followers_changed_;
  replicas_.clear();
  for (auto& [tp, log] : logs_) {
    if (auto r = log->close(); !r) log::get("broker")->error("closing {}-{}: {}", tp.topic, tp.partition, r.err().message);
  }
  logs_.clear();
}

}  // namespace gregor::broker
