#pragma once
// Always-on assertions: a broken invariant stops the process with a message,
// in every build type. Never used for bad input from the network or disk.
#include <fmt/format.h>

namespace gregor::detail {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line, const std::string& msg);
}

#define GREGOR_ASSERT(cond, ...)                                                               \
  do {                                                                                         \
    if (!(cond)) [[unlikely]] {                                                                \
      ::gregor::detail::assertion_failed(#cond, __FILE__, __LINE__, ::fmt::format(__VA_ARGS__)); \
    }                                                                                          \
  } while (0)
