#include "runtime/process.h"

#include <sched.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <thread>

#include <asio/signal_set.hpp>

#include "runtime/engine_impl.h"

namespace gregor::runtime {

uint64_t raise_open_files_limit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return UINT64_MAX;  // unknown: let the broker try
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}


void on_shutdown_signal(std::function<void()> fn) {
  auto signals = std::make_shared<asio::signal_set>(*engine::current().internals().contexts.at(0), SIGINT, SIGTERM);
  signals->async_wait([signals, fn = std::move(fn)](const std::error_code& ec, int) {
    if (ec) return;
    signals->async_wait([](const std::error_code& ec2, int) {
      if (!ec2) std::_Exit(130);
    });
    fn();
  });
}

size_t default_shard_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<size_t>(n);
  }
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

}  // namespace gregor::runtime
