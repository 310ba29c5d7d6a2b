#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace gregor::detail {
void assertion_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "assertion failed: %s at %s:%d: %s\n", expr, file, line, msg.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace gregor::detail
