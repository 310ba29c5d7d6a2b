#pragma once
// CRC32C (Castagnoli), the checksum of record batch v2. Uses SSE4.2 when the
// CPU has it, a table otherwise.
#include <cstddef>
#include <cstdint>

#include "base/bytes.h"

namespace gregor {
uint32_t crc32c(const uint8_t* data, size_t size, uint32_t crc = 0);
inline uint32_t crc32c(bytes_view b) { return crc32c(b.data(), b.size()); }
}  // namespace gregor
