#include "storage/offset_checkpoint.h"

#include <charconv>
#include <sstream>

#include "runtime/file.h"

namespace gregor::storage {

namespace {

template <class T>
bool parse_number(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace

result<void> write_offset_checkpoint(const std::string& path, const partition_offsets& offsets) {
  std::string out = "0\n" + std::to_string(offsets.size()) + "\n";
  for (auto& [tp, offset] : offsets)
    out += tp.first + " " + std::to_string(tp.second) + " " + std::to_string(offset) + "\n";
  return runtime::fs::write_file_atomic(path, out);
}

result<partition_offsets> read_offset_checkpoint(const std::string& path) {
  partition_offsets out;
  if (!runtime::fs::exists(path)) return out;
  auto text = runtime::fs::read_file(path);
  if (!text) return text.err();
  std::istringstream in(text.value());
  std::string line;
  auto bad = [&](const std::string& why) { return error{path + ": " + why + " (move the file away to rebuild it)"}; };
  if (!std::getline(in, line) || line != "0") return bad("unknown version '" + line + "'");
  size_t count = 0;
  if (!std::getline(in, line) || !parse_number(line, count)) return bad("bad entry count '" + line + "'");
  for (size_t i = 0; i < count; ++i) {
    if (!std::getline(in, line)) return bad("expected " + std::to_string(count) + " entries, found " + std::to_string(i));
    // Topic names cannot hold spaces: the last two fields are the numbers.
    auto last = line.rfind(' ');
    auto mid = last == std::string::npos || last == 0 ? std::string::npos : line.rfind(' ', last - 1);
    int32_t partition = 0;
    int64_t offset = 0;
    if (mid == std::string::npos || mid == 0 ||
        !parse_number(std::string_view(line).substr(mid + 1, last - mid - 1), partition) ||
        !parse_number(std::string_view(line).substr(last + 1), offset) || partition < 0)
      return bad("bad entry '" + line + "'");
    out[{line.substr(0, mid), partition}] = offset;
  }
  return out;
}

}  // namespace gregor::storage
