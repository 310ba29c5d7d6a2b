#pragma once
// One client connection: reads size-prefixed request frames, dispatches each
// to its handler and writes the responses in request order. Frames it cannot
// trust (a bad size, an unknown API, a body that does not decode) close the
// connection with a log line; they never reach a handler.
#include <memory>

#include "runtime/net.h"
#include "runtime/task.h"

namespace gregor::broker {
class broker;
runtime::task<void> serve_connection(broker& b, std::shared_ptr<runtime::connection> conn);
}  // namespace gregor::broker
