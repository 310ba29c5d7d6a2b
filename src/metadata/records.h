#pragma once
// Metadata records: the changes the controller writes to the metadata log, in
// KRaft's own record formats (generated from schemas/metadata), and how each
// one changes the image.
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "metadata/image.h"
#include "protocol/messages.h"

namespace gregor::metadata {

using record = std::variant<protocol::topic_record, protocol::partition_record, protocol::remove_topic_record,
                            protocol::config_record, protocol::register_broker_record,
                            protocol::unregister_broker_record, protocol::fence_broker_record,
                            protocol::unfence_broker_record, protocol::broker_registration_change_record,
                            protocol::partition_change_record, protocol::feature_level_record,
                            protocol::no_op_record, protocol::producer_ids_record>;

// The value of a metadata record in a batch: frame version, record type and
// version as unsigned varints, then the record's fields (KRaft's framing).
bytes encode_record(const record& r);
result<record> decode_record(bytes_view value);

// Applies records in order to `base` and returns the new image.
image apply(const image& base, const std::vector<record>& records, int64_t last_offset);

// The records that rebuild `img` from an empty image (a snapshot's content):
// brokers, topics with their partitions and configs, broker configs, the
// next producer id.
std::vector<record> image_records(const image& img);

// The record's name, for logs ("RegisterBrokerRecord").
const char* record_name(const record& r);

}  // namespace gregor::metadata
