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
                            protocol::config_record>;

// The value of a metadata record in a batch: frame version, record type and
// version as unsigned varints, then the record's fields (KRaft's framing).
bytes encode_record(const record& r);
result<record> decode_record(bytes_view value);

// Applies records in order to `base` and returns the new image.
image apply(const image& base, const std::vector<record>& records, int64_t last_offset);

}  // namespace gregor::metadata
