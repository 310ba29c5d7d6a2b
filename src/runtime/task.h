#pragma once
// task<T>: the coroutine type of all asynchronous code. Today it is Asio's
// awaitable, run by the per-shard executors in engine.h.
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>

namespace gregor::runtime {
template <class T = void>
using task = asio::awaitable<T>;
}  // namespace gregor::runtime
