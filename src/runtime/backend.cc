#include "runtime/backend.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <random>

#include "base/log.h"
#include "runtime/net.h"
#include "runtime/posix_files.h"
#include "runtime/random.h"

namespace gregor::runtime {

// ---- roots

void root_tasks::add(node* n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!head_.next) head_.next = head_.prev = &head_;
  n->next = head_.next;
  n->prev = &head_;
  head_.next->prev = n;
  head_.next = n;
  ++size_;
}

void root_tasks::unlink(node* n) {
  if (!n->next) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = nullptr;
  --size_;
}

void root_tasks::remove(node* n) {
  std::lock_guard<std::mutex> lock(mu_);
  unlink(n);
}

void root_tasks::destroy_all() {
  // Destroying a root may finish others' work (its destructors run), but it
  // never starts new roots: nothing runs while a backend is torn down. The
  // lock is not held while a frame is destroyed (its promise removes itself).
  for (;;) {
    std::coroutine_handle<> frame;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (size_ == 0) break;
      node* n = head_.next;
      frame = n->frame;
      unlink(n);
    }
    frame.destroy();
  }
}

namespace detail {
root_task::promise_type::promise_type() {
  owner = &current().roots();
  link.frame = std::coroutine_handle<promise_type>::from_promise(*this);
  owner->add(&link);
}

root_task::promise_type::~promise_type() { owner->remove(&link); }

void root_task::promise_type::unhandled_exception() noexcept {
  try {
    std::rethrow_exception(std::current_exception());
  } catch (const std::exception& e) {
    log::get("runtime")->critical("task failed with an exception (a bug): {}", e.what());
  } catch (...) {
    log::get("runtime")->critical("task failed with an unknown exception (a bug)");
  }
}
}  // namespace detail

// ---- the process default: clocks, randomness and files, no executor

namespace {

class default_backend final : public backend {
 public:
  size_t shard_count() const override { return 1; }
  void post(size_t, std::coroutine_handle<>) override { refuse("post"); }
  void post(size_t, std::function<void()>) override { refuse("post"); }
  std::unique_ptr<timer_impl> make_timer() override {
    refuse("timers");
    return nullptr;
  }
  int64_t wall_clock_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t monotonic_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  uint64_t random_u64() override {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return rng();
  }
  filesystem& files() override { return files_; }
  result<std::unique_ptr<listener>> listen(const std::string&, uint16_t) override {
    refuse("listen");
    return error{"no engine"};
  }
  task<result<std::shared_ptr<connection>>> connect(const std::string&, uint16_t, int64_t) override {
    refuse("connect");
    co_return error{"no engine"};
  }
  void halt(const std::string& why) override {
    log::get("runtime")->critical("stopping: {}", why);
    std::_Exit(1);
  }

 private:
  [[noreturn]] static void refuse(const char* what) {
    GREGOR_ASSERT(false, "{} needs a running engine (runtime::engine or a simulation)", what);
    std::abort();
  }
  posix_filesystem files_;
};

default_backend& process_default() {
  static default_backend b;
  return b;
}

thread_local backend* tls_backend = nullptr;
thread_local size_t tls_shard = 0;

}  // namespace

backend& current() { return tls_backend ? *tls_backend : process_default(); }
size_t this_shard() { return tls_shard; }
size_t shard_count() { return current().shard_count(); }

void set_current(backend* b, size_t shard) {
  tls_backend = b;
  tls_shard = shard;
}

scoped_current::scoped_current(backend* b, size_t shard) : prev_backend_(tls_backend), prev_shard_(tls_shard) {
  set_current(b, shard);
}

scoped_current::~scoped_current() { set_current(prev_backend_, prev_shard_); }

// ---- randomness

uint64_t random_u64() { return current().random_u64(); }

uint64_t random_below(uint64_t n) { return n == 0 ? 0 : random_u64() % n; }

std::string random_uuid_base64() {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint8_t raw[16];
  for (int i = 0; i < 2; ++i) {
    uint64_t v = random_u64();
    std::memcpy(raw + 8 * i, &v, 8);
  }
  raw[6] = (raw[6] & 0x0f) | 0x40;  // version 4
  raw[8] = (raw[8] & 0x3f) | 0x80;  // variant
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t b : raw) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      out.push_back(alphabet[(acc >> (bits - 6)) & 0x3f]);
      bits -= 6;
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3f]);
  return out;  // 22 characters, no padding
}

}  // namespace gregor::runtime
