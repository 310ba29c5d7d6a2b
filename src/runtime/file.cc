// Files: what every backend's files share, the fs:: functions (which go to
// the calling thread's backend), and the POSIX filesystem of production.
#include "runtime/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "runtime/backend.h"
#include "runtime/handle_cache.h"
#include "runtime/posix_files.h"

namespace gregor::runtime {

// ---- every backend's files

result<std::shared_ptr<file>> file::open(const std::string& path, mode m) { return current().files().open(path, m); }

result<uint64_t> file::append(bytes_view data) {
  uint64_t at = size_;
  auto r = pwrite(at, data);
  if (!r) return r.err();
  return at;
}

result<bytes> file::read_all() const {
  bytes out(size_);
  auto n = pread(0, out.data(), out.size());
  if (!n) return n.err();
  out.resize(n.value());
  return out;
}

file_region file::region(uint64_t position, uint32_t size) const {
  return file_region{shared_from_this(), position, size};
}

result<void> file::read_exact_at(uint64_t position, uint8_t* dst, size_t n) const {
  auto got = pread(position, dst, n);
  if (!got) return got.err();
  if (got.value() != n) return error{"log data ends before the region read (" + path_ + ")"};
  return ok();
}

result<bytes> read_region(const file_region& r) {
  bytes out(r.size);
  if (auto got = r.source->read_exact_at(r.position, out.data(), out.size()); !got) return got.err();
  return out;
}

void set_max_open_files(size_t n) { process_handle_cache().set_capacity(n); }
size_t cached_open_files() { return process_handle_cache().open_count(); }

namespace fs {
bool exists(const std::string& path) { return current().files().exists(path); }
result<void> create_directories(const std::string& path) { return current().files().create_directories(path); }
result<std::vector<std::string>> list_dir(const std::string& path) { return current().files().list_dir(path); }
result<void> rename(const std::string& from, const std::string& to) { return current().files().rename(from, to); }
result<void> remove(const std::string& path) { return current().files().remove(path); }
result<void> remove_all(const std::string& path) { return current().files().remove_all(path); }
result<void> sync_dir(const std::string& path) { return current().files().sync_dir(path); }
result<void> lock_exclusive(const std::string& path) { return current().files().lock_exclusive(path); }

result<std::string> read_file(const std::string& path) {
  auto f = file::open(path, file::mode::read_only);
  if (!f) return f.err();
  auto b = f.value()->read_all();
  if (!b) return b.err();
  return std::string(b.value().begin(), b.value().end());
}

result<void> write_file_atomic(const std::string& path, std::string_view content) {
  std::string tmp = path + ".tmp";
  {
    auto f = file::open(tmp, file::mode::read_write_create);
    if (!f) return f.err();
    if (auto r = f.value()->truncate(0); !r) return r;
    if (auto r = f.value()->pwrite(0, as_bytes(content)); !r) return r;
    if (auto r = f.value()->sync(); !r) return r;
  }
  if (auto r = rename(tmp, path); !r) return r;
  auto dir = std::filesystem::path(path).parent_path().string();
  return sync_dir(dir.empty() ? "." : dir);
}
}  // namespace fs

// ---- POSIX

namespace {
error sys_error(const std::string& what, const std::string& path) {
  return error{what + " " + path + ": " + std::strerror(errno)};
}

// Writes go to the kernel in pieces that end on 32 KiB boundaries of the file,
// so the page cache holds them in folios of at most 32 KiB. The kernel takes
// folios that small from per-CPU lists of pages freed moments before, that is
// from the page cache's own reclaimed pages; larger folios come from the buddy
// allocator, and on a VM whose host takes free memory back (free page
// reporting, as on our CI machines) those are mostly pages the host must fault
// in again. Measured there, 1 MB appends to a file in a full memory cgroup:
// 0.5-1.0 GB/s written whole, 2.1-2.5 GB/s in 32 KiB pieces. The extra system
// calls cost about 1 us per 32 KiB.
constexpr uint64_t kWritePiece = 32 << 10;

// A descriptor of a file, either owned (no bound on open files) or pinned in
// the process's handle cache for as long as this lives.
class fd_use {
 public:
  fd_use(int fd, handle_cache::slot_id slot) : fd_(fd), slot_(slot) {}
  fd_use(fd_use&& o) noexcept : fd_(o.fd_), slot_(o.slot_) { o.slot_ = 0; }
  fd_use(const fd_use&) = delete;
  fd_use& operator=(const fd_use&) = delete;
  fd_use& operator=(fd_use&&) = delete;
  ~fd_use() {
    if (slot_ != 0) process_handle_cache().unpin(slot_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
  handle_cache::slot_id slot_;
};

// What a region of a cached file sends from: its descriptor stays pinned (so
// open, and its number not reused) until the region is sent or dropped.
class pinned_source final : public region_source {
 public:
  pinned_source(std::shared_ptr<const file> f, int fd, handle_cache::slot_id slot)
      : file_(std::move(f)), use_(fd, slot) {}
  int native_handle() const override { return use_.fd(); }
  result<void> read_exact_at(uint64_t position, uint8_t* dst, size_t n) const override {
    return file_->read_exact_at(position, dst, n);
  }

 private:
  std::shared_ptr<const file> file_;
  fd_use use_;
};

class posix_file final : public file {
 public:
  // slot 0: fd is owned by this file; otherwise the handle cache holds it.
  posix_file(int fd, handle_cache::slot_id slot, std::string path, uint64_t size,
             std::shared_ptr<writeback_worker> writeback)
      : file(std::move(path), size), fd_(fd), slot_(slot), writeback_(std::move(writeback)) {}
  ~posix_file() override {
    if (slot_ != 0)
      process_handle_cache().forget(slot_);
    else if (fd_ >= 0)
      ::close(fd_);
  }

  // Only a pinned region may hand out a cached file's descriptor.
  int native_handle() const override { return slot_ == 0 ? fd_ : -1; }

  file_region region(uint64_t position, uint32_t size) const override {
    if (slot_ == 0) return file::region(position, size);
    auto fd = process_handle_cache().pin(slot_);
    if (!fd) return file::region(position, size);  // sent by reading: the read reports the error
    return file_region{std::make_shared<pinned_source>(shared_from_this(), fd.value(), slot_), position, size};
  }

  result<void> pwrite(uint64_t position, bytes_view data) override {
    auto use = acquire();
    if (!use) return use.err();
    int fd = use.value().fd();
    size_t done = 0;
    while (done < data.size()) {
      uint64_t at = position + done;
      size_t piece = static_cast<size_t>(std::min<uint64_t>(data.size() - done, kWritePiece - at % kWritePiece));
      ssize_t n = ::pwrite(fd, data.data() + done, piece, static_cast<off_t>(at));
      if (n < 0) {
        if (errno == EINTR) continue;
        return sys_error("cannot write", path_);
      }
      done += static_cast<size_t>(n);
    }
    if (position + data.size() > size_) size_ = position + data.size();
    return ok();
  }

  result<size_t> pread(uint64_t position, uint8_t* dst, size_t n) const override {
    auto use = acquire();
    if (!use) return use.err();
    int fd = use.value().fd();
    size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd, dst + done, n - done, static_cast<off_t>(position + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        return sys_error("cannot read", path_);
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  result<void> truncate(uint64_t size) override {
    auto use = acquire();
    if (!use) return use.err();
    if (::ftruncate(use.value().fd(), static_cast<off_t>(size)) != 0) return sys_error("cannot truncate", path_);
    size_ = size;
    return ok();
  }

  result<void> sync() override {
    auto use = acquire();
    if (!use) return use.err();
    if (::fdatasync(use.value().fd()) != 0) return sys_error("cannot fsync", path_);
    return ok();
  }

  void start_writeback(uint64_t position, uint64_t length) override {
    if (slot_ == 0) {
      writeback_->submit(shared_from_this(), fd_, position, length);
      return;
    }
    auto fd = process_handle_cache().pin(slot_);
    if (!fd) return;  // advisory
    writeback_->submit(std::make_shared<pinned_source>(shared_from_this(), fd.value(), slot_), fd.value(),
                       position, length);
  }

 private:
  // By value: every read and write takes one, so no allocation for it.
  result<fd_use> acquire() const {
    if (slot_ == 0) return fd_use(fd_, 0);
    auto fd = process_handle_cache().pin(slot_);
    if (!fd) return fd.err();
    return fd_use(fd.value(), slot_);
  }

  int fd_;
  handle_cache::slot_id slot_;
  std::shared_ptr<writeback_worker> writeback_;
};
}  // namespace

writeback_worker::~writeback_worker() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void writeback_worker::submit(std::shared_ptr<const region_source> f, int fd, uint64_t position, uint64_t length) {
  {
    std::lock_guard lock(mu_);
    // Behind by this much, the kernel's own flusher writes these pages back.
    if (stopping_ || jobs_.size() >= kMaxQueued) return;
    jobs_.push_back(job{std::move(f), fd, position, length});
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  wake_.notify_one();
}

void writeback_worker::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    job j = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    // Advisory: on failure the kernel's flusher writes the pages back later.
    (void)::sync_file_range(j.fd, static_cast<off64_t>(j.position), static_cast<off64_t>(j.length),
                            SYNC_FILE_RANGE_WRITE);
    j.keep_open.reset();  // may close the file: not under the lock
    lock.lock();
  }
}

result<std::shared_ptr<file>> posix_filesystem::open(const std::string& path, file::mode m) {
  int flags = m == file::mode::read_only ? O_RDONLY : (O_RDWR | O_CREAT);
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return sys_error("cannot stat", path);
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  auto& cache = process_handle_cache();
  if (cache.capacity() == 0) return std::shared_ptr<file>(std::make_shared<posix_file>(fd, 0, path, size, writeback_));
  // Reopened later as it was opened, less O_CREAT: a file removed behind the
  // broker's back is an error, not a new empty file.
  const int reopen_flags = (flags & ~O_CREAT) | O_CLOEXEC;
  auto slot = cache.add(path, [reopen_flags](const std::string& p) -> result<int> {
    int f = ::open(p.c_str(), reopen_flags);
    if (f < 0) return sys_error("cannot reopen", p);
    return f;
  }, fd);
  return std::shared_ptr<file>(std::make_shared<posix_file>(-1, slot, path, size, writeback_));
}

bool posix_filesystem::exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

result<void> posix_filesystem::create_directories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return error{"cannot create directory " + path + ": " + ec.message()};
  return ok();
}

result<std::vector<std::string>> posix_filesystem::list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return sys_error("cannot list directory", path);
  std::vector<std::string> names;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  return names;
}

result<void> posix_filesystem::rename(const std::string& from, const std::string& to) {
  // A file replaced by the rename keeps its descriptor: reopened by path it
  // would be the file renamed over it.
  process_handle_cache().removing(to);
  if (::rename(from.c_str(), to.c_str()) != 0) return sys_error("cannot rename " + from + " to", to);
  process_handle_cache().renamed(from, to);
  return ok();
}

result<void> posix_filesystem::remove(const std::string& path) {
  process_handle_cache().removing(path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove", path);
  return ok();
}

result<void> posix_filesystem::remove_all(const std::string& path) {
  process_handle_cache().removing(path);
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return error{"cannot remove " + path + ": " + ec.message()};
  return ok();
}

result<void> posix_filesystem::sync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("cannot open directory", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return sys_error("cannot fsync directory", path);
  return ok();
}

result<void> posix_filesystem::lock_exclusive(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error("cannot open lock file", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return error{"data directory is in use by another process (lock " + path +
                 " is held); stop the other broker or use another log.dirs"};
  }
  return ok();  // fd intentionally kept open: the lock lives as long as the process
}

}  // namespace gregor::runtime
