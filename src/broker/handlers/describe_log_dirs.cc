// DescribeLogDirs: each log dir with the size of every partition in it
// (what kafka-log-dirs and UIs show as topic sizes).
#include <algorithm>
#include <map>
#include <set>

#include "broker/broker.h"
#include "broker/handler.h"
#include "broker/partition_io.h"

namespace gregor::broker {

using protocol::error_code;
using response = protocol::describe_log_dirs_response;

runtime::task<std::optional<response>> handle_describe_log_dirs(request_context& ctx,
                                                                protocol::describe_log_dirs_request& req) {
  auto& b = ctx.b;
  std::vector<log_dir_partition> parts;
  for (size_t shard = 0; shard < b.shard_count(); ++shard) co_await log_dirs_on_shard(b, shard, parts);
  std::set<std::pair<std::string, int32_t>> wanted;
  if (req.topics)
    for (auto& t : *req.topics)
      for (auto p : t.partitions) wanted.insert({t.topic, p});

  // log dir -> topic -> partitions, in a stable order.
  std::map<std::string, std::map<std::string, std::vector<const log_dir_partition*>>> tree;
  for (auto& d : b.config().log_dirs) tree[d];
  for (auto& p : parts) {
    if (req.topics && !wanted.count({p.topic, p.partition})) continue;
    tree[p.log_dir][p.topic].push_back(&p);
  }
  response resp;
  for (auto& [dir, topics] : tree) {
    auto& r = resp.results.emplace_back();
    r.error_code = 0;
    r.log_dir = dir;
    for (auto& [name, ps] : topics) {
      auto& t = r.topics.emplace_back();
      t.name = name;
      std::vector<const log_dir_partition*> sorted = ps;
      std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* c) { return a->partition < c->partition; });
      for (auto* p : sorted) {
        auto& e = t.partitions.emplace_back();
        e.partition_index = p->partition;
        e.partition_size = p->size_bytes;
        e.offset_lag = 0;
        e.is_future_key = false;
      }
    }
  }
  co_return resp;
}

}  // namespace gregor::broker
