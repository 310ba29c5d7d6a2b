#pragma once
// Private to runtime's production backend: the Asio state behind engine.
#include <memory>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "runtime/engine.h"
#include "runtime/posix_files.h"

namespace gregor::runtime {

struct engine::impl {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards;
  std::vector<std::thread> threads;
  posix_filesystem files;
};

inline asio::io_context& io_context_of(size_t shard) {
  return *engine::current().internals().contexts.at(shard);
}

}  // namespace gregor::runtime
