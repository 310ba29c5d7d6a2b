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
enum class listener_kind : uint8_t;
// Serves a connection of a listener: `kind` decides which APIs it takes
// (client listeners and the controller listener differ), `listener` is its name.
runtime::task<void> serve_connection(broker& b, std::shared_ptr<runtime::connection> conn, listener_kind kind,
                                     std::string listener);
}  // namespace gregor::broker
