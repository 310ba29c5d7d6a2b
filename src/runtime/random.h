#pragma once
// Random numbers from the calling thread's backend: seeded by the OS in
// production, by the seed of a simulation (so a run can be replayed).
#include <cstdint>
#include <string>

namespace gregor::runtime {
uint64_t random_u64();
// Uniform in [0, n); 0 when n is 0.
uint64_t random_below(uint64_t n);
std::string random_uuid_base64();  // Kafka's 22-character url-safe form
}  // namespace gregor::runtime
