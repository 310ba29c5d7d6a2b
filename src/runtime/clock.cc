#include "runtime/clock.h"

#include <vector>

#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>

namespace gregor::runtime {

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t monotonic_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

task<void> sleep_for(int64_t ms) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
}

struct notifier::waiter {
  explicit waiter(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  bool notified = false;
};

notifier::notifier() : waiters_(std::make_shared<std::vector<std::shared_ptr<waiter>>>()) {}

task<bool> notifier::wait_for(int64_t timeout_ms) {
  auto w = std::make_shared<waiter>(co_await asio::this_coro::executor);
  w->timer.expires_after(std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms));
  auto list = waiters_;
  list->push_back(w);
  std::error_code ec;
  co_await w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  std::erase(*list, w);
  co_return w->notified;
}

void notifier::notify_all() {
  auto list = *waiters_;
  for (auto& w : list) {
    w->notified = true;
    w->timer.cancel();
  }
}

event::event() = default;

task<void> event::wait() {
  while (!set_) {
    if (!timer_) timer_ = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    auto t = timer_;
    t->expires_at(asio::steady_timer::time_point::max());
    std::error_code ec;
    co_await t->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void event::set() {
  set_ = true;
  if (timer_) timer_->cancel();
}

}  // namespace gregor::runtime
