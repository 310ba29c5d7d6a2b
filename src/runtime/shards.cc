#include "runtime/shards.h"

#include "runtime/clock.h"

namespace gregor::runtime {
task<void> run_on_shards(std::vector<shard_job> jobs) {
  struct state {
    size_t pending = 0;
    event done;
  };
  auto st = std::make_shared<state>();
  const size_t me = this_shard();
  auto& be = current();
  for (auto& j : jobs)
    if (j.shard != me) ++st->pending;
  for (auto& j : jobs) {
    if (j.shard == me) continue;
    be.post(j.shard, [fn = std::move(j.run), st, me, &be] {
      fn();
      be.post(me, [st] {
        if (--st->pending == 0) st->done.set();
      });
    });
  }
  for (auto& j : jobs)
    if (j.shard == me) j.run();
  if (st->pending > 0) co_await st->done.wait();
}

}  // namespace gregor::runtime
