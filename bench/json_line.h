// json_line.h: the one JSON line (a flat object) each of bench/'s load generators prints
// with its results.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace bench {

class json_line {
 public:
  json_line& str(const char* key, const std::string& v) {
    sep(key);
    out_ += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
      } else {
        out_ += c;
      }
    }
    out_ += '"';
    return *this;
  }
  json_line& num(const char* key, double v, int decimals = 3) {
    sep(key);
    if (!std::isfinite(v)) {
      out_ += "null";
      return *this;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    out_ += buf;
    return *this;
  }
  json_line& integer(const char* key, int64_t v) {
    sep(key);
    out_ += std::to_string(v);
    return *this;
  }
  json_line& boolean(const char* key, bool v) {
    sep(key);
    out_ += v ? "true" : "false";
    return *this;
  }
  void print() const { std::printf("{%s}\n", out_.c_str()); }

 private:
  void sep(const char* key) {
    if (!out_.empty()) out_ += ',';
    out_ += '"';
    out_ += key;
    out_ += "\":";
  }
  std::string out_;
};

}  // namespace bench
