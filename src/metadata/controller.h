#pragma once
// The controller: decides metadata changes (create and delete topics, for
// now) against the current image and returns the records that make them. It
// is pure: ids and defaults come in as arguments, records go out, and the
// driver commits them to the metadata log before anyone is told.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "metadata/image.h"
#include "metadata/records.h"
#include "protocol/errors.h"

namespace gregor::metadata {

struct topic_spec {
  std::string name;
  int32_t num_partitions = -1;      // -1: the broker default
  int16_t replication_factor = -1;  // -1: the broker default
  std::map<int32_t, std::vector<int32_t>> assignments;  // explicit replica placement, if given
  std::map<std::string, std::string> configs;
};

struct controller_defaults {
  int32_t num_partitions = 1;
  int16_t replication_factor = 1;
};

struct decision {
  protocol::error_code error = protocol::error_code::none;
  std::string message;
  bool ok() const { return error == protocol::error_code::none; }
};

// Kafka's topic name rules: 1-249 of [a-zA-Z0-9._-], not "." or "..".
std::optional<std::string> invalid_topic_name(const std::string& name);

decision plan_create_topic(const image& img, const topic_spec& spec, const uuid& new_topic_id,
                           const controller_defaults& defaults, std::vector<record>& out);
decision plan_delete_topic(const image& img, const std::string& name, std::vector<record>& out);

}  // namespace gregor::metadata
