#include "protocol/compression.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

namespace gregor::protocol {

const char* to_string(compression_type c) {
  switch (c) {
    case compression_type::none: return "none";
    case compression_type::gzip: return "gzip";
    case compression_type::snappy: return "snappy";
    case compression_type::lz4: return "lz4";
    case compression_type::zstd: return "zstd";
  }
  return "unknown";
}

namespace {

codec_result fail(codec_status s, std::string msg) { return codec_result{s, std::move(msg)}; }

// Output that grows geometrically up to a hard limit. The limit is one byte
// more than the caller's maximum so that "exactly max" and "more than max"
// can be told apart.
class bounded_output {
 public:
  bounded_output(bytes& out, size_t max_output, size_t first_guess)
      : out_(out), base_(out.size()),
        limit_(max_output == std::numeric_limits<size_t>::max() ? max_output : max_output + 1),
        first_guess_(std::max<size_t>(first_guess, 256)) {}
  ~bounded_output() { out_.resize(base_ + used_); }

  // Room to write into; empty when the limit is reached.
  std::pair<uint8_t*, size_t> room() {
    size_t cap = out_.size() - base_;
    if (used_ == cap) {
      if (cap >= limit_) return {nullptr, 0};
      size_t ncap = std::min(limit_, std::max(cap * 2, first_guess_));
      out_.resize(base_ + ncap);
      cap = ncap;
    }
    return {out_.data() + base_ + used_, cap - used_};
  }
  void commit(size_t n) { used_ += n; }
  // Makes room for exactly n more bytes at once; false if beyond the limit.
  uint8_t* reserve_exact(size_t n) {
    if (n > limit_ - 1 - used_ || used_ > limit_ - 1) return nullptr;
    if (out_.size() < base_ + used_ + n) out_.resize(base_ + used_ + n);
    return out_.data() + base_ + used_;
  }
  size_t used() const { return used_; }
  bool over_max() const { return used_ > limit_ - 1; }

 private:
  bytes& out_;
  size_t base_;
  size_t limit_;
  size_t first_guess_;
  size_t used_ = 0;
};

codec_result too_large(size_t max_output) {
  return fail(codec_status::too_large, "decompressed data exceeds the limit of " + std::to_string(max_output) + " bytes");
}

// ---- gzip ----------------------------------------------------------------

codec_result gzip_compress(bytes_view in, bytes& out, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level < 0 ? 6 : std::min(level, 9), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return fail(codec_status::corrupt, "deflateInit2 failed");
  size_t base = out.size();
  size_t bound = deflateBound(&zs, static_cast<uLong>(in.size())) + 32;
  out.resize(base + bound);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data() + base;
  zs.avail_out = static_cast<uInt>(bound);
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = bound - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    out.resize(base);
    return fail(codec_status::corrupt, "deflate did not finish");
  }
  out.resize(base + produced);
  return {};
}

codec_result gzip_decompress(bytes_view in, size_t max_output, bytes& out) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return fail(codec_status::corrupt, "inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  bounded_output sink(out, max_output, in.size() * 4);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  if (in.size() > std::numeric_limits<uInt>::max()) return fail(codec_status::corrupt, "gzip input too large");
  for (;;) {
    auto [p, n] = sink.room();
    if (n == 0) return too_large(max_output);
    size_t chunk = std::min<size_t>(n, std::numeric_limits<uInt>::max());
    zs.next_out = p;
    zs.avail_out = static_cast<uInt>(chunk);
    int rc = inflate(&zs, Z_NO_FLUSH);
    sink.commit(chunk - zs.avail_out);
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (GZIPInputStream reads them all);
      // anything else after the end is ignored, as Java does.
      if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        if (inflateReset(&zs) != Z_OK) return fail(codec_status::corrupt, "inflateReset failed");
        continue;
      }
      break;
    }
    if (rc == Z_BUF_ERROR && zs.avail_out > 0) return fail(codec_status::corrupt, "gzip data is truncated");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      return fail(codec_status::corrupt, std::string("gzip: ") + (zs.msg ? zs.msg : "inflate failed"));
  }
  if (sink.over_max()) return too_large(max_output);
  return {};
}

// ---- snappy --------------------------------------------------------------

constexpr uint8_t kXerialMagic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
constexpr size_t kXerialHeader = 16;            // magic + version + compatible version
constexpr size_t kXerialBlock = 32 * 1024;      // snappy-java's default block size

codec_result snappy_block(const uint8_t* p, size_t n, bounded_output& sink, size_t max_output) {
  size_t len = 0;
  if (snappy_uncompressed_length(reinterpret_cast<const char*>(p), n, &len) != SNAPPY_OK)
    return fail(codec_status::corrupt, "snappy: bad block header");
  uint8_t* dst = sink.reserve_exact(len);
  if (!dst) return too_large(max_output);
  size_t got = len;
  if (snappy_uncompress(reinterpret_cast<const char*>(p), n, reinterpret_cast<char*>(dst), &got) != SNAPPY_OK ||
      got != len)
    return fail(codec_status::corrupt, "snappy: corrupt block");
  sink.commit(len);
  return {};
}

codec_result snappy_compress_xerial(bytes_view in, bytes& out) {
  size_t base = out.size();
  out.insert(out.end(), kXerialMagic, kXerialMagic + 8);
  append_be<int32_t>(out, 1);  // version
  append_be<int32_t>(out, 1);  // minimum compatible version
  size_t done = 0;
  do {
    size_t n = std::min(kXerialBlock, in.size() - done);
    size_t at = out.size();
    size_t bound = snappy_max_compressed_length(n);
    out.resize(at + 4 + bound);
    size_t clen = bound;
    if (snappy_compress(reinterpret_cast<const char*>(in.data() + done), n, reinterpret_cast<char*>(out.data() + at + 4),
                        &clen) != SNAPPY_OK) {
      out.resize(base);
      return fail(codec_status::corrupt, "snappy_compress failed");
    }
    store_be<int32_t>(out.data() + at, static_cast<int32_t>(clen));
    out.resize(at + 4 + clen);
    done += n;
  } while (done < in.size());
  return {};
}

codec_result snappy_decompress(bytes_view in, size_t max_output, bytes& out) {
  bounded_output sink(out, max_output, 0);
  if (in.size() >= kXerialHeader && std::memcmp(in.data(), kXerialMagic, 8) == 0) {
    size_t pos = kXerialHeader;
    while (pos < in.size()) {
      if (in.size() - pos < 4) return fail(codec_status::corrupt, "snappy: truncated xerial chunk length");
      int32_t clen = load_be<int32_t>(in.data() + pos);
      pos += 4;
      if (clen < 0 || static_cast<size_t>(clen) > in.size() - pos)
        return fail(codec_status::corrupt, "snappy: xerial chunk length out of range");
      if (auto r = snappy_block(in.data() + pos, static_cast<size_t>(clen), sink, max_output); !r.ok()) return r;
      pos += static_cast<size_t>(clen);
    }
    return {};
  }
  return snappy_block(in.data(), in.size(), sink, max_output);
}

// ---- lz4 -----------------------------------------------------------------

codec_result lz4_compress(bytes_view in, bytes& out, int level) {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.blockSizeID = LZ4F_max64KB;
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
  prefs.frameInfo.frameType = LZ4F_frame;
  prefs.compressionLevel = level < 0 ? 0 : level;
  size_t base = out.size();
  size_t bound = LZ4F_compressFrameBound(in.size(), &prefs);
  out.resize(base + bound);
  size_t n = LZ4F_compressFrame(out.data() + base, bound, in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) {
    out.resize(base);
    return fail(codec_status::corrupt, std::string("lz4: ") + LZ4F_getErrorName(n));
  }
  out.resize(base + n);
  return {};
}

struct lz4_dctx {
  LZ4F_dctx* ctx = nullptr;
  lz4_dctx() { LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION); }
  ~lz4_dctx() { LZ4F_freeDecompressionContext(ctx); }
};

codec_result lz4_decompress(bytes_view in, size_t max_output, bytes& out) {
  thread_local lz4_dctx d;
  if (!d.ctx) return fail(codec_status::corrupt, "lz4: cannot create a decompression context");
  LZ4F_resetDecompressionContext(d.ctx);
  bounded_output sink(out, max_output, in.size() * 4);
  size_t pos = 0;
  size_t hint = 1;
  while (pos < in.size()) {
    auto [p, n] = sink.room();
    if (n == 0) return too_large(max_output);
    size_t dst = n;
    size_t src = in.size() - pos;
    hint = LZ4F_decompress(d.ctx, p, &dst, in.data() + pos, &src, nullptr);
    if (LZ4F_isError(hint)) {
      LZ4F_resetDecompressionContext(d.ctx);
      return fail(codec_status::corrupt, std::string("lz4: ") + LZ4F_getErrorName(hint));
    }
    sink.commit(dst);
    pos += src;
    if (src == 0 && dst == 0) break;  // no progress possible
  }
  // Flush whatever the decoder still holds.
  while (hint != 0) {
    auto [p, n] = sink.room();
    if (n == 0) return too_large(max_output);
    size_t dst = n;
    size_t src = 0;
    hint = LZ4F_decompress(d.ctx, p, &dst, nullptr, &src, nullptr);
    if (LZ4F_isError(hint)) {
      LZ4F_resetDecompressionContext(d.ctx);
      return fail(codec_status::corrupt, std::string("lz4: ") + LZ4F_getErrorName(hint));
    }
    sink.commit(dst);
    if (dst == 0) break;
  }
  if (hint != 0) {
    LZ4F_resetDecompressionContext(d.ctx);
    return fail(codec_status::corrupt, "lz4: frame is truncated");
  }
  if (sink.over_max()) return too_large(max_output);
  return {};
}

// ---- zstd ----------------------------------------------------------------

codec_result zstd_compress(bytes_view in, bytes& out, int level) {
  size_t base = out.size();
  size_t bound = ZSTD_compressBound(in.size());
  out.resize(base + bound);
  size_t n = ZSTD_compress(out.data() + base, bound, in.data(), in.size(), level < 0 ? 3 : level);
  if (ZSTD_isError(n)) {
    out.resize(base);
    return fail(codec_status::corrupt, std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  out.resize(base + n);
  return {};
}

struct zstd_dctx {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  ~zstd_dctx() { ZSTD_freeDCtx(ctx); }
};

codec_result zstd_decompress(bytes_view in, size_t max_output, bytes& out) {
  thread_local zstd_dctx d;
  if (!d.ctx) return fail(codec_status::corrupt, "zstd: cannot create a decompression context");
  ZSTD_DCtx_reset(d.ctx, ZSTD_reset_session_only);
  bounded_output sink(out, max_output, in.size() * 4);
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  size_t last = 0;
  for (;;) {
    auto [p, n] = sink.room();
    if (n == 0) return too_large(max_output);
    ZSTD_outBuffer ob{p, n, 0};
    last = ZSTD_decompressStream(d.ctx, &ob, &ib);
    if (ZSTD_isError(last)) {
      ZSTD_DCtx_reset(d.ctx, ZSTD_reset_session_only);
      return fail(codec_status::corrupt, std::string("zstd: ") + ZSTD_getErrorName(last));
    }
    sink.commit(ob.pos);
    if (ib.pos == ib.size && ob.pos < ob.size) break;
  }
  if (last != 0) {
    ZSTD_DCtx_reset(d.ctx, ZSTD_reset_session_only);
    return fail(codec_status::corrupt, "zstd: frame is truncated");
  }
  if (sink.over_max()) return too_large(max_output);
  return {};
}

}  // namespace

codec_result compress(compression_type type, bytes_view input, bytes& out, int level) {
  switch (type) {
    case compression_type::none: out.insert(out.end(), input.begin(), input.end()); return {};
    case compression_type::gzip: return gzip_compress(input, out, level);
    case compression_type::snappy: return snappy_compress_xerial(input, out);
    case compression_type::lz4: return lz4_compress(input, out, level);
    case compression_type::zstd: return zstd_compress(input, out, level);
  }
  return fail(codec_status::unsupported, "unknown compression type");
}

codec_result decompress(compression_type type, bytes_view input, size_t max_output, bytes& out) {
  switch (type) {
    case compression_type::none:
      if (input.size() > max_output) return too_large(max_output);
      out.insert(out.end(), input.begin(), input.end());
      return {};
    case compression_type::gzip: return gzip_decompress(input, max_output, out);
    case compression_type::snappy: return snappy_decompress(input, max_output, out);
    case compression_type::lz4: return lz4_decompress(input, max_output, out);
    case compression_type::zstd: return zstd_decompress(input, max_output, out);
  }
  return fail(codec_status::unsupported, "unknown compression type " + std::to_string(static_cast<int>(type)));
}

}  // namespace gregor::protocol
