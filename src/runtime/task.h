#pragma once
// task<T>: the coroutine type of all asynchronous code.
//
// A task is lazy: calling a coroutine that returns task<T> allocates its frame
// and runs nothing until the caller co_awaits it. The awaiting coroutine is
// then suspended, the task runs on the same thread, and when it finishes it
// resumes its awaiter directly (symmetric transfer: no queue, no extra
// stack depth). An exception leaving a task is rethrown in its awaiter.
//
// A task owns its frame: destroying an un-finished task destroys the
// coroutine and, through the task objects in its frame, everything it was
// awaiting. Runtime backends rely on this to tear a node down (see
// root_tasks in backend.h): every running coroutine hangs off some root.
//
// Nothing here knows about threads or shards; moving between shards is
// submit_to() in engine.h.
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "base/assert.h"

namespace gregor::runtime {

template <class T = void>
class task;

namespace detail {

struct promise_base {
  std::coroutine_handle<> continuation;
  std::exception_ptr exception;

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      auto next = h.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };

  std::suspend_always initial_suspend() noexcept { return {}; }
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
  void rethrow_if_failed() {
    if (exception) std::rethrow_exception(exception);
  }
};

template <class T>
struct promise final : promise_base {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    rethrow_if_failed();
    GREGOR_ASSERT(value.has_value(), "task finished without a value");
    return std::move(*value);
  }
};

template <>
struct promise<void> final : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() { rethrow_if_failed(); }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using value_type = T;

  task() = default;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(h_); }

  struct awaiter {
    std::coroutine_handle<promise_type> h;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
      h.promise().continuation = caller;
      return h;  // start the task now, on this thread
    }
    T await_resume() { return h.promise().take(); }
  };
  awaiter operator co_await() && noexcept {
    GREGOR_ASSERT(h_, "co_await on an empty task");
    return awaiter{h_};
  }

  // For runtime internals that drive a task by hand (roots, tests).
  std::coroutine_handle<promise_type> handle() const noexcept { return h_; }

 private:
  void reset() noexcept {
    if (h_) h_.destroy();
    h_ = {};
  }
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace gregor::runtime
