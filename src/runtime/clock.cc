#include "runtime/clock.h"

#include <algorithm>
#include <functional>

namespace gregor::runtime {

int64_t wall_clock_ms() { return current().wall_clock_ms(); }
int64_t monotonic_ms() { return current().monotonic_ms(); }

namespace {
// Suspends on a timer_impl until it fires or is cancelled.
struct timer_wait {
  timer_impl* impl;
  int64_t ms;
  bool expired = false;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    impl->wait(ms, [this, h](bool e) {
      expired = e;
      h.resume();
    });
  }
  bool await_resume() const noexcept { return expired; }
};
}  // namespace

task<void> sleep_for(int64_t ms) {
  auto t = current().make_timer();
  co_await timer_wait{t.get(), std::max<int64_t>(ms, 0)};
}

timer::timer() : impl_(current().make_timer()) {}
timer::~timer() = default;

task<bool> timer::wait_for(int64_t ms) { co_return co_await timer_wait{impl_.get(), std::max<int64_t>(ms, 0)}; }

void timer::cancel() { impl_->cancel(); }

struct notifier::waiter {
  timer t;
  bool notified = false;
};

notifier::notifier() : waiters_(std::make_shared<std::vector<std::shared_ptr<waiter>>>()) {}

task<bool> notifier::wait_for(int64_t timeout_ms) {
  auto w = std::make_shared<waiter>();
  auto list = waiters_;
  list->push_back(w);
  co_await w->t.wait_for(timeout_ms < 0 ? 0 : timeout_ms);
  std::erase(*list, w);
  co_return w->notified;
}

void notifier::notify_all() {
  auto list = *waiters_;
  for (auto& w : list) {
    if (w->notified) continue;
    w->notified = true;
    w->t.cancel();
  }
}

event::~event() = default;

task<void> event::wait() {
  while (!set_) co_await parked{this};
}

void event::set() {
  set_ = true;
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& w : waiters) current().post(w.shard, w.h);
}

}  // namespace gregor::runtime
