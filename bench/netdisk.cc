// gregor-netdisk: this machine's own limits, the denominators of the benchmark ratios.
//
//  * loopback TCP bandwidth: one sender thread and one receiver thread over 127.0.0.1,
//    1 MiB writes, for --loopback-seconds (default 2.5) or --loopback-gib (default 16),
//    whichever comes first; measured at the receiver.
//  * sequential disk write bandwidth: --disk-mib MiB (default 1024) written in 1 MiB
//    chunks to a fresh file in --disk-dir, then fdatasync; the time includes the sync.
//    The file is removed afterwards.
//  * page-cache append cost: --page-cache-mib MiB (default 512) appended in 16 KiB
//    pwrites to a fresh file in --disk-dir, then the same range written again, each
//    timed in this thread's CPU seconds. The first pass takes a new page-cache page for
//    every 4 KiB, as a broker's appends do; the second overwrites pages already cached.
//    On a VM that hands free guest memory back to its host (free page reporting), each
//    new page faults in the host first, and the first pass is many times slower than
//    the second: that is CPU a broker spends per appended byte, whoever the broker is.
//    --page-cache-reps K (default 1) measures K files of that size; they are removed
//    afterwards.
//
// Prints one JSON line to stdout; progress goes to stderr. MB means 10^6 bytes.
//
//   gregor-netdisk [--loopback-seconds S] [--loopback-gib G] [--disk-dir DIR]
//                  [--disk-mib N] [--page-cache-mib N] [--page-cache-reps K] [--timeout-s T]
//                  [--skip-loopback] [--skip-disk] [--skip-page-cache]

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
               "[--disk-dir DIR] [--disk-mib N] [--page-cache-mib N] [--page-cache-reps K] [--timeout-s T] "
               "[--skip-loopback] [--skip-disk] [--skip-page-cache]\n",
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

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct page_cache_result {
  uint64_t bytes = 0;
  double new_pages_cpu_seconds = 0;     // first pass: every page is a new page-cache page
  double cached_pages_cpu_seconds = 0;  // second pass: the same pages, already cached
};

// One file per rep, all removed only at the end: removing a file frees its pages, and a
// later pass that reused them at once would measure recycled memory, not new pages.
std::vector<page_cache_result> measure_page_cache(const std::string& dir, uint64_t mib, int reps) {
  constexpr size_t write_bytes = 16 << 10;
  std::vector<char> buf(write_bytes, 'g');
  std::vector<std::string> paths;
  auto remove_all = [&] {
    for (auto& p : paths) unlink(p.c_str());
  };
  std::vector<page_cache_result> results;
  for (int rep = 0; rep < reps; ++rep) {
    paths.push_back(dir + "/gregor-netdisk-pc." + std::to_string(getpid()) + "." + std::to_string(rep) + ".tmp");
    const std::string& path = paths.back();
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      remove_all();
      die("open " + path);
    }
    page_cache_result r;
    r.bytes = mib << 20;
    for (int pass = 0; pass < 2; ++pass) {
      double t0 = thread_cpu_seconds();
      for (uint64_t at = 0; at < r.bytes; at += write_bytes) {
        if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(at)) != static_cast<ssize_t>(buf.size())) {
          int saved = errno;
          remove_all();
          errno = saved;
          die("pwrite " + path);
        }
      }
      (pass == 0 ? r.new_pages_cpu_seconds : r.cached_pages_cpu_seconds) = thread_cpu_seconds() - t0;
    }
    close(fd);
    results.push_back(r);
  }
  remove_all();
  return results;
}

}  // namespace

int main(int argc, char** argv) {
  double loopback_seconds = 2.5;
  double loopback_gib = 16;
  std::string disk_dir = ".";
  uint64_t disk_mib = 1024;
  uint64_t page_cache_mib = 512;
  int page_cache_reps = 1;
  double timeout_s = 60;
  bool do_loopback = true;
  bool do_disk = true;
  bool do_page_cache = true;
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
    } else if (arg == "--page-cache-mib") {
      page_cache_mib = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--page-cache-reps") {
      page_cache_reps = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "--timeout-s") {
      timeout_s = std::atof(value().c_str());
    } else if (arg == "--skip-loopback") {
      do_loopback = false;
    } else if (arg == "--skip-disk") {
      do_disk = false;
    } else if (arg == "--skip-page-cache") {
      do_page_cache = false;
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
  if (do_page_cache && page_cache_mib > 0) {
    std::string fresh = ",\"page_cache_new_mb_per_cpu_s\":[";
    std::string cached = ",\"page_cache_cached_mb_per_cpu_s\":[";
    std::fprintf(stderr, "gregor-netdisk: page-cache append of %llu MiB to %s, then overwrite, %d times ...\n",
                 static_cast<unsigned long long>(page_cache_mib), disk_dir.c_str(), page_cache_reps);
    auto results = measure_page_cache(disk_dir, page_cache_mib, page_cache_reps);
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      auto per_cpu_second = [&](double s) { return s > 0 ? static_cast<double>(r.bytes) / 1e6 / s : 0; };
      std::fprintf(stderr,
                   "gregor-netdisk: page cache %.0f MB per CPU second into new pages, %.0f into cached "
                   "pages\n",
                   per_cpu_second(r.new_pages_cpu_seconds), per_cpu_second(r.cached_pages_cpu_seconds));
      std::snprintf(num, sizeof num, "%s%.1f", i ? "," : "", per_cpu_second(r.new_pages_cpu_seconds));
      fresh += num;
      std::snprintf(num, sizeof num, "%s%.1f", i ? "," : "", per_cpu_second(r.cached_pages_cpu_seconds));
      cached += num;
    }
    json += fresh + "]" + cached + "]";
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
