#pragma once
// The backend: everything a node sees of the world — its shards' executors,
// timers, clocks, random numbers, files and network — behind one interface
// with two implementations:
//
//   engine (engine.h)        production: one thread and Asio event loop per
//                            shard, the real clocks, POSIX files, TCP.
//   sim::node (sim/world.h)  tests: many nodes in one thread on virtual time,
//                            with an in-memory network and disk whose faults
//                            come from one seed.
//
// Code outside runtime/ never names a backend: it calls runtime's free
// functions (clock.h, file.h, net.h, submit_to), which ask the backend of
// the calling thread. A backend's executor sets that thread-local before it
// runs anything, so in a simulation every resumed coroutine sees its own
// node. Without any backend (unit tests, command-line tools) the process
// default serves clocks, randomness and files, and refuses the rest.
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "runtime/task.h"

namespace gregor::runtime {

class filesystem;
class listener;
class connection;

// A one-shot timer on one shard, made by the backend.
class timer_impl {
 public:
  virtual ~timer_impl() = default;
  // Calls done(true) on the timer's shard once delay_ms has passed, or
  // done(false) soon after cancel(). One wait at a time.
  virtual void wait(int64_t delay_ms, std::function<void(bool expired)> done) = 0;
  virtual void cancel() = 0;
};

// The detached coroutines of a backend (spawn), so that tearing the backend
// down can destroy every coroutine still suspended, and with them (through
// the tasks they await) everything else that is running. Every shard's
// thread spawns and finishes roots on the one list: it is locked (an
// unlocked list was corrupted by two shards at once under ASan).
class root_tasks {
 public:
  struct node {
    node* prev = nullptr;
    node* next = nullptr;
    std::coroutine_handle<> frame;
  };
  void add(node* n);
  void remove(node* n);
  // Destroys every registered root (each removes itself).
  void destroy_all();
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return size_;
  }

 private:
  void unlink(node* n);

  mutable std::mutex mu_;
  node head_;
  size_t size_ = 0;
};

class backend {
 public:
  virtual ~backend() = default;

  // ---- executor
  virtual size_t shard_count() const = 0;
  // Resumes h / runs fn on `shard`, soon, in posting order per (from, to) pair.
  virtual void post(size_t shard, std::coroutine_handle<> h) = 0;
  virtual void post(size_t shard, std::function<void()> fn) = 0;
  // A timer on the calling shard.
  virtual std::unique_ptr<timer_impl> make_timer() = 0;

  // ---- clocks and randomness
  virtual int64_t wall_clock_ms() = 0;
  virtual int64_t monotonic_ms() = 0;
  virtual uint64_t random_u64() = 0;

  // ---- files and network
  virtual filesystem& files() = 0;
  // Binds host:port; accepted connections are handed to the shard asked for.
  virtual result<std::unique_ptr<listener>> listen(const std::string& host, uint16_t port) = 0;
  virtual task<result<std::shared_ptr<connection>>> connect(const std::string& host, uint16_t port,
                                                            int64_t timeout_ms) = 0;

  // The node cannot go on (its metadata log failed to sync, say): production
  // exits the process; a simulated node crashes. It returns in a simulation,
  // where the node is dead from then on: nothing it does afterwards reaches
  // the network or the disk, and nothing of it runs again. Callers return.
  virtual void halt(const std::string& why) = 0;

  root_tasks& roots() { return roots_; }

 private:
  root_tasks roots_;
};

// The backend and shard of the calling thread (the process default backend
// and shard 0 outside any executor).
backend& current();
size_t this_shard();
size_t shard_count();
// Set by a backend's executor before it runs anything of its own.
void set_current(backend* b, size_t shard);

// Sets the calling thread's backend and shard for a scope.
class scoped_current {
 public:
  scoped_current(backend* b, size_t shard);
  ~scoped_current();
  scoped_current(const scoped_current&) = delete;
  scoped_current& operator=(const scoped_current&) = delete;

 private:
  backend* prev_backend_;
  size_t prev_shard_;
};

namespace detail {
// A detached coroutine: registered with its backend's roots, destroys itself
// when it finishes. An exception escaping it is a bug, logged critically.
struct root_task {
  struct promise_type {
    root_tasks::node link;
    root_tasks* owner = nullptr;
    promise_type();
    ~promise_type();
    root_task get_return_object() noexcept {
      return root_task{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept;
  };
  std::coroutine_handle<promise_type> h;
};

template <class F>
root_task run_detached(F fn) {
  // fn lives in this frame for as long as the coroutine it returns runs
  // (a lambda coroutine refers to its captures through the lambda object).
  co_await fn();
}
}  // namespace detail

// Starts fn() (a callable returning task<void>) detached on `shard` of the
// current backend. It runs until it finishes or the backend is torn down.
template <class F>
void spawn(size_t shard, F fn) {
  auto r = detail::run_detached(std::move(fn));
  current().post(shard, std::coroutine_handle<>(r.h));
}

// Suspends the caller and resumes it on `shard` (of the same backend).
struct switch_to {
  size_t shard;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { current().post(shard, h); }
  void await_resume() const noexcept {}
};

// Lets others on this shard run before the caller goes on.
inline switch_to yield() { return switch_to{this_shard()}; }

}  // namespace gregor::runtime
