#include "app/cli_common.h"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace gregor::cli {

int fail(const std::string& tool, const std::string& message) {
  std::fprintf(stderr, "gregor %s: %s\n", tool.c_str(), message.c_str());
  return 1;
}

result<std::map<std::string, std::string>> parse_pairs(const std::vector<std::string>& items, bool split_commas) {
  std::map<std::string, std::string> out;
  for (auto& item : items) {
    std::vector<std::string> parts;
    if (split_commas) {
      std::stringstream ss(item);
      std::string p;
      while (std::getline(ss, p, ',')) parts.push_back(p);
    } else {
      parts.push_back(item);
    }
    for (auto& p : parts) {
      if (p.empty()) continue;
      auto eq = p.find('=');
      if (eq == std::string::npos || eq == 0) return error{fmt::format("expected key=value, got '{}'", p)};
      out[p.substr(0, eq)] = p.substr(eq + 1);
    }
  }
  return out;
}

result<std::map<std::string, std::string>> read_properties_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return error{fmt::format("cannot read {}", path)};
  std::map<std::string, std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#' || line[start] == '!') continue;
    auto eq = line.find_first_of("=:", start);
    if (eq == std::string::npos) return error{fmt::format("{}: bad line '{}'", path, line)};
    auto trim = [](std::string s) {
      auto a = s.find_first_not_of(" \t\r");
      auto b = s.find_last_not_of(" \t\r");
      return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
    };
    out[trim(line.substr(start, eq - start))] = trim(line.substr(eq + 1));
  }
  return out;
}

namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }
}  // namespace

void install_stop_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_stop != 0; }

}  // namespace gregor::cli
