#include "protocol/errors.h"

namespace gregor::protocol {

const char* error_name(error_code e) {
  switch (e) {
#define GREGOR_X(name, code) \
  case error_code::name:     \
    return #name;
    GREGOR_KAFKA_ERRORS(GREGOR_X)
#undef GREGOR_X
  }
  return "unknown_error_code";
}

}  // namespace gregor::protocol
