// gregor-netdisk: this machine's own limits, the denominators of the benchmark ratios.
//
//  * loopback TCP bandwidth: one sender thread and one receiver thread over 127.0.0.1,
//    1 MiB writes, for --loopback-seconds (default 2.5) or --loopback-gib (default 16),
//    whichever comes first; measured at the receiver.
//  * sequential disk write bandwidth: --disk-mib MiB (default 1024) written in 1 MiB
//    chunks to a fresh file in --disk-dir, then fdatasync; the time includes the sync.
//    The file is removed afterwards.
//
// Prints one JSON line to stdout; progress goes to stderr. MB means 10^6 bytes.
//
//   gregor-netdisk [--loopback-seconds S] [--loopback-gib G] [--disk-dir DIR]
//                  [--disk-mib N] [--timeout-s T] [--skip-loopback] [--skip-disk]

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "gregor-netdisk: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "gregor-netdisk: %s\n"
               "usage: gregor-netdisk [--loopback-seconds S] [--loopback-gib G] "
               "[--disk-dir DIR] [--disk-mib N] [--timeout-s T] [--skip-loopback] "
               "[--skip-disk]\n",
               why.c_str());
  std::exit(64);
}

constexpr size_t chunk_bytes = 1 << 20;

struct loopback_result {
  uint64_t bytes = 0;
  double seconds = 0;
};

loopback_result measure_loopback(double max_seconds, double max_gib) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
  if (listen(listener, 1) < 0) die("listen");
  socklen_t len = sizeof addr;
  if (getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0) die("getsockname");

  loopback_result result;
  std::thread receiver([&] {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) die("accept");
    std::vector<char> buf(chunk_bytes);
    uint64_t total = 0;
    clock_type::time_point first{};
    bool started = false;
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        die("read");
      }
      if (n == 0) break;
      if (!started) {
        started = true;
        first = clock_type::now();
      }
      total += static_cast<uint64_t>(n);
    }
    result.seconds = started ? seconds_since(first) : 0;
    result.bytes = total;
    close(fd);
  });

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("connect");
  std::vector<char> buf(chunk_bytes);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, 8);
  }
  const uint64_t max_bytes = static_cast<uint64_t>(max_gib * (1ull << 30));
  uint64_t sent = 0;
  auto t0 = clock_type::now();
  while (sent < max_bytes && seconds_since(t0) < max_seconds) {
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = write(fd, buf.data() + off, buf.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("write");
      }
      off += static_cast<size_t>(n);
    }
    sent += buf.size();
  }
  shutdown(fd, SHUT_WR);
  receiver.join();
  close(fd);
  close(listener);
  return result;
}

struct disk_result {
  uint64_t bytes = 0;
  double seconds = 0;           // write + fdatasync
  double buffered_seconds = 0;  // write only (page cache)
  bool timed_out = false;
};

disk_result measure_disk(const std::string& dir, uint64_t mib, double timeout_s) {
  std::string path = dir + "/gregor-netdisk." + std::to_string(getpid()) + ".tmp";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("open " + path);
  std::vector<char> buf(chunk_bytes);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, 8);
  }
  disk_result result;
  auto t0 = clock_type::now();
  for (uint64_t i = 0; i < mib; ++i) {
    if (seconds_since(t0) > timeout_s) {
      result.timed_out = true;
      break;
    }
    // Vary the chunk a little so nothing below us can deduplicate it.
    std::memcpy(buf.data(), &i, sizeof i);
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = write(fd, buf.data() + off, buf.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        int saved = errno;
        unlink(path.c_str());
        errno = saved;
        die("write " + path);
      }
      off += static_cast<size_t>(n);
    }
    result.bytes += buf.size();
  }
  result.buffered_seconds = seconds_since(t0);
  if (fdatasync(fd) < 0) die("fdatasync " + path);
  result.seconds = seconds_since(t0);
  close(fd);
  unlink(path.c_str());
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  double loopback_seconds = 2.5;
  double loopback_gib = 16;
  std::string disk_dir = ".";
  uint64_t disk_mib = 1024;
  double timeout_s = 60;
  bool do_loopback = true;
  bool do_disk = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--loopback-seconds") {
      loopback_seconds = std::atof(value().c_str());
    } else if (arg == "--loopback-gib") {
      loopback_gib = std::atof(value().c_str());
    } else if (arg == "--disk-dir") {
      disk_dir = value();
    } else if (arg == "--disk-mib") {
      disk_mib = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--timeout-s") {
      timeout_s = std::atof(value().c_str());
    } else if (arg == "--skip-loopback") {
      do_loopback = false;
    } else if (arg == "--skip-disk") {
      do_disk = false;
    } else if (arg == "-h" || arg == "--help") {
      usage("help");
    } else {
      usage("unknown argument " + arg);
    }
  }

  std::string json = "{\"tool\":\"gregor-netdisk\"";
  char num[256];
  if (do_loopback) {
    std::fprintf(stderr, "gregor-netdisk: loopback TCP, up to %.1f s ...\n", loopback_seconds);
    auto r = measure_loopback(loopback_seconds, loopback_gib);
    double mbps = r.seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.seconds : 0;
    std::fprintf(stderr, "gregor-netdisk: loopback %.0f MB/s (%.2f GB in %.2f s)\n", mbps,
                 static_cast<double>(r.bytes) / 1e9, r.seconds);
    std::snprintf(num, sizeof num,
                  ",\"loopback_mb_per_s\":%.1f,\"loopback_bytes\":%llu,\"loopback_seconds\":%.3f",
                  mbps, static_cast<unsigned long long>(r.bytes), r.seconds);
    json += num;
  }
  if (do_disk) {
    std::fprintf(stderr, "gregor-netdisk: sequential write of %llu MiB to %s + fdatasync ...\n",
                 static_cast<unsigned long long>(disk_mib), disk_dir.c_str());
    auto r = measure_disk(disk_dir, disk_mib, timeout_s);
    double mbps = r.seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.seconds : 0;
    double buffered =
        r.buffered_seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.buffered_seconds : 0;
    std::fprintf(stderr,
                 "gregor-netdisk: disk %.0f MB/s with fdatasync (%.0f MB/s into page cache), "
                 "%.2f GB in %.2f s%s\n",
                 mbps, buffered, static_cast<double>(r.bytes) / 1e9, r.seconds,
                 r.timed_out ? " (stopped by timeout)" : "");
    std::snprintf(num, sizeof num,
                  ",\"disk_write_mb_per_s\":%.1f,\"disk_buffered_mb_per_s\":%.1f,"
                  "\"disk_bytes\":%llu,\"disk_seconds\":%.3f,\"disk_timed_out\":%s",
                  mbps, buffered, static_cast<unsigned long long>(r.bytes), r.seconds,
                  r.timed_out ? "true" : "false");
    json += num;
    json += ",\"disk_dir\":\"";
    for (char c : disk_dir) {
      if (c == '"' || c == '\\') json += '\\';
      json += c;
    }
    json += "\"";
  }
  json += "}";
  std::printf("%s\n", json.c_str());
  return 0;
}
