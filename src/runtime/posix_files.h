#pragma once
// Private to runtime: the production filesystem (POSIX calls), and the
// thread that starts writeback of log pages off the shards' event loops.
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/file.h"

namespace gregor::runtime {

// Starts writeback on a thread of its own, off the shards' event loops.
// sync_file_range(WRITE) does not wait for the disk, but it submits the I/O
// itself: it allocates blocks and queues requests, and that took 1-5 ms now and
// then (measured at 100 MB/s of appends). On a shard every request queued
// behind such a call waits as long, which showed as produce latency spikes.
// Owned by a posix_filesystem; the thread starts with the first request and
// is joined when the filesystem goes.
class writeback_worker {
 public:
  ~writeback_worker();
  // keep_open holds the descriptor open (and pinned) until the call is made.
  void submit(std::shared_ptr<const region_source> keep_open, int fd, uint64_t position, uint64_t length);

 private:
  struct job {
    std::shared_ptr<const region_source> keep_open;  // the fd stays valid until the call is made
    int fd;
    uint64_t position, length;
  };
  static constexpr size_t kMaxQueued = 256;
  void run();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

class posix_filesystem final : public filesystem {
 public:
  result<std::shared_ptr<file>> open(const std::string& path, file::mode m) override;
  bool exists(const std::string& path) override;
  result<void> create_directories(const std::string& path) override;
  result<std::vector<std::string>> list_dir(const std::string& path) override;
  result<void> rename(const std::string& from, const std::string& to) override;
  result<void> remove(const std::string& path) override;
  result<void> remove_all(const std::string& path) override;
  result<void> sync_dir(const std::string& path) override;
  result<void> lock_exclusive(const std::string& path) override;

 private:
  // Declared last: its thread may still hold files (and so this
  // filesystem's jobs) until it is joined, first thing in destruction.
  std::shared_ptr<writeback_worker> writeback_ = std::make_shared<writeback_worker>();
};

}  // namespace gregor::runtime
