#include "runtime/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

namespace gregor::runtime {
namespace {
error sys_error(const std::string& what, const std::string& path) {
  return error{what + " " + path + ": " + std::strerror(errno)};
}
}  // namespace

result<std::shared_ptr<file>> file::open(const std::string& path, mode m) {
  int flags = m == mode::read_only ? O_RDONLY : (O_RDWR | O_CREAT);
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return sys_error("cannot stat", path);
  }
  return std::shared_ptr<file>(new file(fd, path, static_cast<uint64_t>(st.st_size)));
}

file::~file() {
  if (fd_ >= 0) ::close(fd_);
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

result<void> file::pwrite(uint64_t position, bytes_view data) {
  size_t done = 0;
  while (done < data.size()) {
    uint64_t at = position + done;
    size_t piece = static_cast<size_t>(std::min<uint64_t>(data.size() - done, kWritePiece - at % kWritePiece));
    ssize_t n = ::pwrite(fd_, data.data() + done, piece, static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot write", path_);
    }
    done += static_cast<size_t>(n);
  }
  if (position + data.size() > size_) size_ = position + data.size();
  return ok();
}

result<uint64_t> file::append(bytes_view data) {
  uint64_t at = size_;
  auto r = pwrite(at, data);
  if (!r) return r.err();
  return at;
}

result<size_t> file::pread(uint64_t position, uint8_t* dst, size_t n) const {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd_, dst + done, n - done, static_cast<off_t>(position + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot read", path_);
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

result<bytes> file::read_all() const {
  bytes out(size_);
  auto n = pread(0, out.data(), out.size());
  if (!n) return n.err();
  out.resize(n.value());
  return out;
}

result<void> file::truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return sys_error("cannot truncate", path_);
  size_ = size;
  return ok();
}

result<void> file::sync() {
  if (::fdatasync(fd_) != 0) return sys_error("cannot fsync", path_);
  return ok();
}

namespace {
// Starts writeback on a thread of its own, off the shards' event loops.
// sync_file_range(WRITE) does not wait for the disk, but it submits the I/O
// itself: it allocates blocks and queues requests, and that took 1-5 ms now and
// then (measured at 100 MB/s of appends). On a shard every request queued
// behind such a call waits as long, which showed as produce latency spikes.
class writeback_worker {
 public:
  static writeback_worker& instance() {
    static writeback_worker w;
    return w;
  }

  void submit(std::shared_ptr<const file> f, int fd, uint64_t position, uint64_t length) {
    {
      std::lock_guard lock(mu_);
      // Behind by this much, the kernel's own flusher writes these pages back.
      if (stopping_ || jobs_.size() >= kMaxQueued) return;
      jobs_.push_back(job{std::move(f), fd, position, length});
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    }
    wake_.notify_one();
  }

  ~writeback_worker() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct job {
    std::shared_ptr<const file> keep_open;  // the fd stays valid until the call is made
    int fd;
    uint64_t position, length;
  };
  static constexpr size_t kMaxQueued = 256;

  void run() {
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

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};
}  // namespace

void file::start_writeback(uint64_t position, uint64_t length) {
  writeback_worker::instance().submit(shared_from_this(), fd_, position, length);
}

file_region file::region(uint64_t position, uint32_t size) const {
  return file_region{fd_, position, size, shared_from_this()};
}

result<bytes> read_region(const file_region& r) {
  bytes out(r.size);
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(r.fd, out.data() + done, out.size() - done, static_cast<off_t>(r.position + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return error{std::string("cannot read log data: ") + std::strerror(errno)};
    if (n == 0) return error{"log data ends before the region read"};
    done += static_cast<size_t>(n);
  }
  return out;
}

namespace fs {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

result<void> create_directories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return error{"cannot create directory " + path + ": " + ec.message()};
  return ok();
}

result<std::vector<std::string>> list_dir(const std::string& path) {
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

result<void> rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return sys_error("cannot rename " + from + " to", to);
  return ok();
}

result<void> remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove", path);
  return ok();
}

result<void> remove_all(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return error{"cannot remove " + path + ": " + ec.message()};
  return ok();
}

result<std::string> read_file(const std::string& path) {
  auto f = file::open(path, file::mode::read_only);
  if (!f) return f.err();
  auto b = f.value()->read_all();
  if (!b) return b.err();
  return std::string(b.value().begin(), b.value().end());
}

result<void> sync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("cannot open directory", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return sys_error("cannot fsync directory", path);
  return ok();
}

result<void> write_file_atomic(const std::string& path, std::string_view content) {
  std::string tmp = path + ".tmp";
  {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sys_error("cannot create", tmp);
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::write(fd, content.data() + done, content.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        ::close(fd);
        return sys_error("cannot write", tmp);
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      return sys_error("cannot fsync", tmp);
    }
    ::close(fd);
  }
  if (auto r = rename(tmp, path); !r) return r;
  auto dir = std::filesystem::path(path).parent_path().string();
  return sync_dir(dir.empty() ? "." : dir);
}

result<void> lock_exclusive(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error("cannot open lock file", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return error{"data directory is in use by another process (lock " + path +
                 " is held); stop the other broker or use another log.dirs"};
  }
  return ok();  // fd intentionally kept open: the lock lives as long as the process
}

}  // namespace fs

uint64_t random_u64() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

std::string random_uuid_base64() {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint8_t raw[16];
  for (int i = 0; i < 2; ++i) {
    uint64_t v = random_u64();
    std::memcpy(raw + 8 * i, &v, 8);
  }
  raw[6] = (raw[6] & 0x0f) | 0x40;  // version 4
  raw[8] = (raw[8] & 0x3f) | 0x80;  // variant
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t b : raw) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      out.push_back(alphabet[(acc >> (bits - 6)) & 0x3f]);
      bits -= 6;
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3f]);
  return out;  // 22 characters, no padding
}

}  // namespace gregor::runtime
