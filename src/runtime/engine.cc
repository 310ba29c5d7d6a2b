#include "runtime/engine.h"

#include <malloc.h>

#include <chrono>
#include <csignal>
#include <random>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "base/assert.h"
#include "base/log.h"
#include "runtime/engine_impl.h"
#include "runtime/net.h"

namespace gregor::runtime {

engine::engine(size_t shards) : impl_(std::make_unique<impl>()) {
  GREGOR_ASSERT(shards > 0, "an engine needs at least one shard");
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
    impl_->contexts.push_back(std::make_unique<asio::io_context>(1));
    impl_->guards.push_back(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        impl_->contexts.back()->get_executor()));
  }
}

engine::~engine() {
  stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  {
    scoped_current here(this, 0);
    roots().destroy_all();
  }
  impl_->contexts.clear();
}

engine& engine::current() {
  auto* e = dynamic_cast<engine*>(&runtime::current());
  GREGOR_ASSERT(e != nullptr, "no engine is running on this thread");
  return *e;
}

void engine::run() {
  auto& contexts = impl_->contexts;
  for (size_t i = 1; i < contexts.size(); ++i) {
    impl_->threads.emplace_back([this, i] {
      set_current(this, i);
      impl_->contexts[i]->run();
      set_current(nullptr, 0);
    });
  }
  {
    scoped_current here(this, 0);
    contexts[0]->run();
  }
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  // Every shard has stopped: destroy the coroutines still suspended, while
  // what they refer to (the broker, say) still exists. Their pending Asio
  // handlers are destroyed, never run, with the contexts.
  scoped_current here(this, 0);
  roots().destroy_all();
}

void engine::stop() {
  impl_->guards.clear();
  for (auto& c : impl_->contexts) c->stop();
}

size_t engine::shard_count() const { return impl_->contexts.size(); }

void engine::post(size_t shard, std::coroutine_handle<> h) {
  asio::post(*impl_->contexts.at(shard), [h] { h.resume(); });
}

void engine::post(size_t shard, std::function<void()> fn) { asio::post(*impl_->contexts.at(shard), std::move(fn)); }

namespace {
class asio_timer final : public timer_impl {
 public:
  explicit asio_timer(asio::io_context& ctx) : state_(std::make_shared<state>(ctx)) {}
  ~asio_timer() override {
    // The handler may still be queued: it must not call back into a
    // coroutine that is being destroyed with this timer.
    state_->done = nullptr;
    state_->t.cancel();
  }
  void wait(int64_t delay_ms, std::function<void(bool)> done) override {
    state_->done = std::move(done);
    state_->t.expires_after(std::chrono::milliseconds(delay_ms));
    state_->t.async_wait([st = state_](std::error_code ec) {
      if (!st->done) return;
      auto done = std::move(st->done);
      st->done = nullptr;
      done(!ec);
    });
  }
  void cancel() override { state_->t.cancel(); }

 private:
  struct state {
    explicit state(asio::io_context& ctx) : t(ctx) {}
    asio::steady_timer t;
    std::function<void(bool)> done;
  };
  std::shared_ptr<state> state_;
};
}  // namespace

std::unique_ptr<timer_impl> engine::make_timer() {
  return std::make_unique<asio_timer>(*impl_->contexts.at(this_shard()));
}

int64_t engine::wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t engine::monotonic_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t engine::random_u64() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

filesystem& engine::files() { return impl_->files; }

void engine::halt(const std::string& why) {
  log::get("runtime")->critical("stopping the process: {}", why);
  std::_Exit(1);
}

}  // namespace gregor::runtime
