#include "runtime/engine.h"

#include <malloc.h>

#include <csignal>
#include <exception>

#include "base/assert.h"
#include "base/log.h"

namespace gregor::runtime {
namespace {
thread_local size_t tls_shard = 0;
engine* g_engine = nullptr;
}  // namespace

engine::engine(size_t shards) {
  GREGOR_ASSERT(shards > 0, "an engine needs at least one shard");
  GREGOR_ASSERT(g_engine == nullptr, "one engine per process");
  // A peer that closes while we write must cost us that connection only:
  // sendfile(2) cannot take MSG_NOSIGNAL, so SIGPIPE is ignored process-wide.
  std::signal(SIGPIPE, SIG_IGN);
  // Memory the broker frees is kept for its next request rather than given
  // back to the kernel. Request frames, responses and fetch buffers of up to a
  // few MB come and go all the time; glibc would return them (munmap, or a
  // trimmed heap) and the next one would start on fresh pages, each costing a
  // page fault, and on a VM that hands free memory back to its host, a fault
  // in the host too (about 10 us per 4 KiB page on our CI machines: fresh
  // memory fills at ~400 MB/s, reused memory at >10 GB/s).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  for (size_t i = 0; i < shards; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        contexts_.back()->get_executor()));
  }
  g_engine = this;
}

engine::~engine() {
  stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  g_engine = nullptr;
}

engine& engine::current() {
  GREGOR_ASSERT(g_engine != nullptr, "no engine is running");
  return *g_engine;
}

void engine::run() {
  for (size_t i = 1; i < contexts_.size(); ++i) {
    threads_.emplace_back([this, i] {
      tls_shard = i;
      contexts_[i]->run();
    });
  }
  tls_shard = 0;
  contexts_[0]->run();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void engine::stop() {
  guards_.clear();
  for (auto& c : contexts_) c->stop();
}

void engine::spawn(size_t shard, std::function<task<void>()> fn) {
  asio::co_spawn(context(shard), std::move(fn), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::get("runtime")->critical("task failed with an exception (a bug): {}", ex.what());
    }
  });
}

size_t this_shard() { return tls_shard; }
size_t shard_count() { return g_engine ? g_engine->shard_count() : 1; }

}  // namespace gregor::runtime

// ---- run_on_shards (runtime/shards.h)
#include <asio/post.hpp>

#include "runtime/clock.h"
#include "runtime/shards.h"

namespace gregor::runtime {

task<void> run_on_shards(std::vector<shard_job> jobs) {
  struct state {
    size_t pending = 0;
    event done;
  };
  auto st = std::make_shared<state>();
  const size_t me = this_shard();
  auto& origin = engine::current().context(me);
  for (auto& j : jobs)
    if (j.shard != me) ++st->pending;
  for (auto& j : jobs) {
    if (j.shard == me) continue;
    asio::post(engine::current().context(j.shard), [fn = std::move(j.run), st, &origin] {
      fn();
      asio::post(origin, [st] {
        if (--st->pending == 0) st->done.set();
      });
    });
  }
  for (auto& j : jobs)
    if (j.shard == me) j.run();
  if (st->pending > 0) co_await st->done.wait();
}

}  // namespace gregor::runtime
