// The cluster simulation in CI: a bounded slice of seeds (3 voters; 5 voters
// with a broker-only node), and every seed that once failed. Longer
// campaigns: gregor-sim --seeds FIRST-LAST (see README).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cluster_sim.h"

namespace gregor::sim {
namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

// How many seeds of the slice to run: all of them in a release build; a
// quarter under the sanitizers (about ten times slower), so each test stays
// within ctest's 120 s.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GREGOR_SIM_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GREGOR_SIM_SANITIZED 1
#endif
#ifdef GREGOR_SIM_SANITIZED
constexpr uint64_t kSliceDivisor = 4;
#else
constexpr uint64_t kSliceDivisor = 1;
#endif

void run_seeds(uint64_t first, uint64_t count, int voters, int brokers, int64_t fault_ms) {
  for (uint64_t seed = first; seed < first + count; ++seed) {
    options o;
    o.seed = seed;
    o.voters = voters;
    o.brokers = brokers;
    o.fault_ms = fault_ms;
    auto r = run(o);
    ASSERT_TRUE(r.ok) << "seed " << seed << " " << r.failure << "\n  replay: " << replay_command(o);
  }
}

TEST(ClusterSim, ThreeVotersUnderFaults) {
  run_seeds(1, env_or("GREGOR_SIM_SEEDS", 200 / kSliceDivisor), 3, 0, 30'000);
}

TEST(ClusterSim, FiveVotersAndABrokerUnderFaults) {
  run_seeds(100'001, env_or("GREGOR_SIM_SEEDS", 200 / kSliceDivisor) / 2, 5, 1, 30'000);
}

TEST(ClusterSim, RegressionSeeds) {
  std::ifstream in(GREGOR_SIM_REGRESSIONS);
  ASSERT_TRUE(in.good()) << "cannot read " << GREGOR_SIM_REGRESSIONS;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    options o;
    fields >> o.seed >> o.voters >> o.brokers >> o.fault_ms;
    // Each seed with the data workload, and without it: seeds found before
    // the data workload existed fail (if they do) only without it, and a run
    // without it is cheap.
    for (bool data : {true, false}) {
      o.data = data;
      auto r = run(o);
      EXPECT_TRUE(r.ok) << "seed " << o.seed << " " << r.failure << "\n  replay: " << replay_command(o);
    }
  }
}

}  // namespace
}  // namespace gregor::sim
