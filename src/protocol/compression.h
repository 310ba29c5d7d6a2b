#pragma once
// The compression codecs of record batch v2, framed the way Kafka frames them:
//   gzip   zlib with gzip framing (several concatenated members are accepted)
//   snappy xerial/snappy-java framing ("\x82SNAPPY\0" + versions + chunks), as
//          the Java client writes; a plain raw snappy block is accepted too
//          (librdkafka writes that)
//   lz4    the LZ4 frame format (lz4frame.h), independent 64 KiB blocks
//   zstd   zstd frames; decompressed as a stream, so frames without a content
//          size (the Java client's) work
// Decompression never produces more than `max_output` bytes: data that would
// expand beyond it fails with codec_status::too_large (compression bombs).
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/bytes.h"

namespace gregor::protocol {

// Bits 0-2 of the record batch attributes.
enum class compression_type : int8_t { none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4 };

const char* to_string(compression_type c);

enum class codec_status { ok, corrupt, too_large, unsupported };

struct codec_result {
  codec_status status = codec_status::ok;
  std::string message;
  bool ok() const { return status == codec_status::ok; }
};

// Appends the compressed form of `input` to `out`. `level` < 0 means the
// codec's default (gzip 6, lz4 fast, zstd 3).
codec_result compress(compression_type type, bytes_view input, bytes& out, int level = -1);

// Appends the decompressed form of `input` to `out`, failing if it would grow
// `out` by more than `max_output` bytes.
codec_result decompress(compression_type type, bytes_view input, size_t max_output, bytes& out);

}  // namespace gregor::protocol
