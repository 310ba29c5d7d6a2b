#include "runtime/sim/disk.h"

#include <algorithm>
#include <cstring>

namespace gregor::runtime::sim {

namespace {

class sim_file final : public file {
 public:
  sim_file(disk& d, std::shared_ptr<disk::inode> ino, std::string path, bool writable)
      : file(std::move(path), ino->data.size()), disk_(d), ino_(std::move(ino)), writable_(writable) {}

  int native_handle() const override { return -1; }

  result<void> pwrite(uint64_t position, bytes_view data) override {
    if (auto r = check_write(); !r) return r;
    uint64_t end = position + data.size();
    if (end > ino_->data.size() && disk_.used_bytes() + (end - ino_->data.size()) > disk_.faults.capacity_bytes)
      return error{"cannot write " + path_ + ": No space left on device"};
    if (disk_.fails(disk_.faults.write_error)) return error{"cannot write " + path_ + ": Input/output error"};
    if (end > ino_->data.size()) ino_->data.resize(end);
    if (!data.empty()) std::memcpy(ino_->data.data() + position, data.data(), data.size());
    ino_->unsynced.push_back({false, position, bytes(data.begin(), data.end())});
    size_ = ino_->data.size();
    return ok();
  }

  result<size_t> pread(uint64_t position, uint8_t* dst, size_t n) const override {
    if (!disk_.owner().running()) return error{"cannot read " + path_ + ": the process is gone"};
    if (disk_.fails(disk_.faults.read_error)) return error{"cannot read " + path_ + ": Input/output error"};
    if (position >= ino_->data.size()) return size_t{0};
    size_t got = static_cast<size_t>(std::min<uint64_t>(n, ino_->data.size() - position));
    if (got > 0) std::memcpy(dst, ino_->data.data() + position, got);
    return got;
  }

  result<void> truncate(uint64_t size) override {
    if (auto r = check_write(); !r) return r;
    if (disk_.fails(disk_.faults.write_error)) return error{"cannot truncate " + path_ + ": Input/output error"};
    ino_->data.resize(size);
    ino_->unsynced.push_back({true, size, {}});
    size_ = size;
    return ok();
  }

  result<void> sync() override {
    if (!disk_.owner().running()) return error{"cannot fsync " + path_ + ": the process is gone"};
    if (disk_.fails(disk_.faults.sync_error)) return error{"cannot fsync " + path_ + ": Input/output error"};
    ino_->durable = ino_->data;
    ino_->unsynced.clear();
    return ok();
  }

  void start_writeback(uint64_t, uint64_t) override {}  // the page cache is not modelled

 private:
  result<void> check_write() const {
    if (!disk_.owner().running()) return error{"cannot write " + path_ + ": the process is gone"};
    if (!writable_) return error{"cannot write " + path_ + ": Bad file descriptor"};
    return ok();
  }

  disk& disk_;
  std::shared_ptr<disk::inode> ino_;
  bool writable_;
};

}  // namespace

std::string disk::normalize(const std::string& path) {
  std::string out = "/";
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") {
      if (part == "..") {
        auto cut = out.find_last_of('/', out.size() - 2);
        out = out.size() > 1 ? out.substr(0, cut + 1) : out;
      } else {
        out += part + "/";
      }
    }
    i = j + 1;
  }
  if (out.size() > 1) out.pop_back();
  return out;
}

std::string disk::parent_of(const std::string& path) {
  auto cut = path.find_last_of('/');
  return cut == 0 || cut == std::string::npos ? "/" : path.substr(0, cut);
}

bool disk::fails(double probability) { return probability > 0 && owner_.owner().chance(probability); }

result<std::shared_ptr<file>> disk::open(const std::string& raw, file::mode m) {
  std::string path = normalize(raw);
  if (!owner_.running()) return error{"cannot open " + path + ": the process is gone"};
  auto it = files_.find(path);
  if (it == files_.end()) {
    if (m == file::mode::read_only) return error{"cannot open " + path + ": No such file or directory"};
    if (!is_dir(parent_of(path))) return error{"cannot open " + path + ": No such file or directory"};
    if (is_dir(path)) return error{"cannot open " + path + ": Is a directory"};
    it = files_.emplace(path, std::make_shared<inode>()).first;
  }
  return std::shared_ptr<file>(std::make_shared<sim_file>(*this, it->second, path, m != file::mode::read_only));
}

bool disk::exists(const std::string& raw) {
  std::string path = normalize(raw);
  return files_.count(path) > 0 || is_dir(path);
}

result<void> disk::create_directories(const std::string& raw) {
  std::string path = normalize(raw);
  for (std::string p = path; p != "/"; p = parent_of(p)) {
    if (files_.count(p)) return error{"cannot create directory " + path + ": " + p + " is a file"};
  }
  for (std::string p = path; p != "/"; p = parent_of(p)) dirs_.insert(p);
  return ok();
}

result<std::vector<std::string>> disk::list_dir(const std::string& raw) {
  std::string path = normalize(raw);
  if (!is_dir(path)) return error{"cannot list directory " + path + ": No such file or directory"};
  std::string prefix = path == "/" ? "/" : path + "/";
  std::vector<std::string> names;
  auto child = [&](const std::string& p) {
    if (p.size() <= prefix.size() || p.compare(0, prefix.size(), prefix) != 0) return;
    std::string rest = p.substr(prefix.size());
    if (rest.find('/') == std::string::npos) names.push_back(rest);
  };
  for (auto& [p, _] : files_) child(p);
  for (auto& d : dirs_) child(d);
  return names;
}

result<void> disk::rename(const std::string& raw_from, const std::string& raw_to) {
  std::string from = normalize(raw_from), to = normalize(raw_to);
  if (!owner_.running()) return error{"cannot rename " + from + ": the process is gone"};
  if (auto it = files_.find(from); it != files_.end()) {
    if (!is_dir(parent_of(to))) return error{"cannot rename " + from + " to " + to + ": No such file or directory"};
    auto ino = it->second;
    files_.erase(it);
    files_[to] = std::move(ino);
    return ok();
  }
  if (is_dir(from)) {
    // A directory and everything under it.
    std::string prefix = from + "/";
    std::map<std::string, std::shared_ptr<inode>> moved;
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->first.compare(0, prefix.size(), prefix) == 0) {
        moved[to + "/" + it->first.substr(prefix.size())] = it->second;
        it = files_.erase(it);
      } else {
        ++it;
      }
    }
    std::set<std::string> dirs;
    for (auto it = dirs_.begin(); it != dirs_.end();) {
      if (*it == from || it->compare(0, prefix.size(), prefix) == 0) {
        dirs.insert(to + it->substr(from.size()));
        it = dirs_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [p, ino] : moved) files_[p] = ino;
    dirs_.insert(dirs.begin(), dirs.end());
    return ok();
  }
  return error{"cannot rename " + from + " to " + to + ": No such file or directory"};
}

result<void> disk::remove(const std::string& raw) {
  std::string path = normalize(raw);
  if (!owner_.running()) return error{"cannot remove " + path + ": the process is gone"};
  if (files_.erase(path) > 0) return ok();
  if (is_dir(path)) {
    auto names = list_dir(path);
    if (names && !names.value().empty()) return error{"cannot remove " + path + ": Directory not empty"};
    dirs_.erase(path);
  }
  return ok();
}

result<void> disk::remove_all(const std::string& raw) {
  std::string path = normalize(raw);
  if (!owner_.running()) return error{"cannot remove " + path + ": the process is gone"};
  std::string prefix = path + "/";
  for (auto it = files_.begin(); it != files_.end();) {
    if (it->first == path || it->first.compare(0, prefix.size(), prefix) == 0) it = files_.erase(it);
    else ++it;
  }
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (*it != "/" && (*it == path || it->compare(0, prefix.size(), prefix) == 0)) it = dirs_.erase(it);
    else ++it;
  }
  return ok();
}

result<void> disk::sync_dir(const std::string& raw) {
  std::string path = normalize(raw);
  if (!owner_.running()) return error{"cannot fsync directory " + path + ": the process is gone"};
  if (!is_dir(path)) return error{"cannot open directory " + path + ": No such file or directory"};
  if (fails(faults.sync_error)) return error{"cannot fsync directory " + path + ": Input/output error"};
  return ok();
}

result<void> disk::lock_exclusive(const std::string& raw) {
  // One process per machine runs at a time here: the lock cannot be contended.
  std::string path = normalize(raw);
  if (!files_.count(path)) files_.emplace(path, std::make_shared<inode>());
  return ok();
}

void disk::crash() {
  auto& w = owner_.owner();
  for (auto& [_, ino] : files_) {
    size_t n = ino->unsynced.size();
    size_t keep = static_cast<size_t>(w.random_below(n + 1));
    bytes data = ino->durable;
    auto apply = [&](const inode::write_op& op, size_t length) {
      if (op.is_truncate) {
        data.resize(op.position);
        return;
      }
      uint64_t end = op.position + length;
      if (end > data.size()) data.resize(end);
      if (length > 0) std::memcpy(data.data() + op.position, op.data.data(), length);
    };
    for (size_t i = 0; i < keep; ++i) apply(ino->unsynced[i], ino->unsynced[i].data.size());
    if (faults.torn_tail_on_crash && keep < n && !ino->unsynced[keep].is_truncate) {
      auto& op = ino->unsynced[keep];
      apply(op, static_cast<size_t>(w.random_below(op.data.size() + 1)));
    }
    ino->data = data;
    ino->durable = std::move(data);
    ino->unsynced.clear();
  }
}

uint64_t disk::used_bytes() const {
  uint64_t n = 0;
  for (auto& [_, ino] : files_) n += ino->data.size();
  return n;
}

}  // namespace gregor::runtime::sim
