#pragma once
// A bounded cache of open file descriptors. A broker with 100,000 partitions
// has about 400,000 segment files (log, offset index, time index, txn index);
// kept open they would need far more than the usual open-files limit. Files
// register here and hold their descriptor only while in the cache: the least
// recently used unpinned descriptor is closed when the cache is full, and
// reopened on the next use.
//
// A use pins the descriptor (pin ... unpin), so a read or a queued sendfile
// never sees its descriptor closed (and its number reused) under it. When
// every cached descriptor is pinned the cache goes over its bound rather than
// fail the use: the bound holds again as pins are released.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"

namespace gregor::runtime {

class handle_cache {
 public:
  using slot_id = uint64_t;
  // Opens the file behind a slot, by its current path; returns its descriptor.
  using opener = std::function<result<int>(const std::string& path)>;

  // capacity 0: unbounded (descriptors stay open until forgotten).
  explicit handle_cache(size_t capacity) : capacity_(capacity) {}
  ~handle_cache();
  handle_cache(const handle_cache&) = delete;
  handle_cache& operator=(const handle_cache&) = delete;

  // A new slot for the file at path, with its already-open descriptor.
  slot_id add(std::string path, opener open, int fd);
  // Returns the slot's descriptor, open and pinned until unpin().
  result<int> pin(slot_id s);
  void unpin(slot_id s);
  // Closes the slot's descriptor (if open) and drops the slot.
  void forget(slot_id s);
  // Keeps the slot's descriptor open for good (e.g. a file about to be
  // removed or renamed, which could not be reopened by its path).
  result<void> keep_open(slot_id s);

  // The filesystem tells the cache of renames and removals, so that a closed
  // descriptor is reopened at the file's new path, and a file removed while
  // still in use keeps its descriptor (as it would without the cache).
  // Both cover the files under a directory path too.
  void renamed(const std::string& from, const std::string& to);
  void removing(const std::string& path);

  size_t capacity() const { return capacity_; }
  void set_capacity(size_t c);
  size_t open_count() const;
  size_t evictions() const;

 private:
  struct slot {
    std::string path;
    opener open;
    int fd = -1;
    uint32_t pins = 0;
    bool permanent = false;
    std::list<slot_id>::iterator lru;  // valid while fd >= 0
  };
  void evict_over_bound_locked();
  result<int> pin_locked(slot_id s);
  result<void> keep_open_locked(slot_id s);
  // The slots at path or under it as a directory.
  std::vector<slot_id> under_locked(const std::string& path) const;

  mutable std::mutex mu_;
  size_t capacity_;
  size_t open_ = 0;
  size_t evictions_ = 0;
  slot_id next_ = 1;
  std::unordered_map<slot_id, slot> slots_;
  std::multimap<std::string, slot_id> by_path_;
  std::list<slot_id> lru_;  // front: most recently used; only open descriptors
};

// The process's cache, used by the POSIX filesystem (capacity 0 until the
// broker sets log.max.open.files).
handle_cache& process_handle_cache();

}  // namespace gregor::runtime
