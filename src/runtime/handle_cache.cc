// The bounded cache of open file descriptors (see handle_cache.h).
#include "runtime/handle_cache.h"

#include <unistd.h>

namespace gregor::runtime {

handle_cache::~handle_cache() {
  for (auto& [id, s] : slots_)
    if (s.fd >= 0) ::close(s.fd);
}

handle_cache::slot_id handle_cache::add(std::string path, opener open, int fd) {
  std::lock_guard lock(mu_);
  slot_id id = next_++;
  auto& s = slots_[id];
  by_path_.emplace(path, id);
  s.path = std::move(path);
  s.open = std::move(open);
  s.fd = fd;
  if (fd >= 0) {
    lru_.push_front(id);
    s.lru = lru_.begin();
    ++open_;
    evict_over_bound_locked();
  }
  return id;
}

result<int> handle_cache::pin(slot_id id) {
  std::lock_guard lock(mu_);
  auto fd = pin_locked(id);
  if (fd) evict_over_bound_locked();
  return fd;
}

result<int> handle_cache::pin_locked(slot_id id) {
  auto it = slots_.find(id);
  if (it == slots_.end()) return error{"file handle used after it was closed"};
  slot& s = it->second;
  if (s.fd < 0) {
    // Opened under the lock: two users of one slot must not both open it.
    auto fd = s.open(s.path);
    if (!fd) return fd.err();
    s.fd = fd.value();
    lru_.push_front(id);
    s.lru = lru_.begin();
    ++open_;
  } else {
    lru_.splice(lru_.begin(), lru_, s.lru);
  }
  ++s.pins;
  return s.fd;
}

void handle_cache::unpin(slot_id id) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(id);
  if (it == slots_.end() || it->second.pins == 0) return;
  --it->second.pins;
  evict_over_bound_locked();
}

void handle_cache::forget(slot_id id) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return;
  if (it->second.fd >= 0) {
    ::close(it->second.fd);
    lru_.erase(it->second.lru);
    --open_;
  }
  auto [b, e] = by_path_.equal_range(it->second.path);
  for (auto p = b; p != e; ++p)
    if (p->second == id) {
      by_path_.erase(p);
      break;
    }
  slots_.erase(it);
}

result<void> handle_cache::keep_open(slot_id id) {
  std::lock_guard lock(mu_);
  return keep_open_locked(id);
}

result<void> handle_cache::keep_open_locked(slot_id id) {
  auto fd = pin_locked(id);
  if (!fd) return fd.err();
  auto& s = slots_.at(id);
  s.permanent = true;
  --s.pins;
  return ok();
}

std::vector<handle_cache::slot_id> handle_cache::under_locked(const std::string& path) const {
  std::vector<slot_id> out;
  const std::string dir = path + "/";
  for (auto it = by_path_.lower_bound(path); it != by_path_.end(); ++it) {
    if (it->first == path || it->first.compare(0, dir.size(), dir) == 0)
      out.push_back(it->second);
    else if (it->first.compare(0, path.size(), path) != 0)
      break;  // past every path that starts with `path`
  }
  return out;
}

void handle_cache::renamed(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  for (slot_id id : under_locked(from)) {
    slot& s = slots_.at(id);
    auto [b, e] = by_path_.equal_range(s.path);
    for (auto p = b; p != e; ++p)
      if (p->second == id) {
        by_path_.erase(p);
        break;
      }
    s.path = to + s.path.substr(from.size());
    by_path_.emplace(s.path, id);
  }
}

void handle_cache::removing(const std::string& path) {
  std::lock_guard lock(mu_);
  for (slot_id id : under_locked(path)) {
    // Best effort: a file that cannot be opened now could not be later either.
    (void)keep_open_locked(id);
  }
}

void handle_cache::set_capacity(size_t c) {
  std::lock_guard lock(mu_);
  capacity_ = c;
  evict_over_bound_locked();
}

size_t handle_cache::open_count() const {
  std::lock_guard lock(mu_);
  return open_;
}

size_t handle_cache::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

void handle_cache::evict_over_bound_locked() {
  if (capacity_ == 0) return;
  // From the least recently used end, skipping pinned and permanent slots.
  auto it = lru_.end();
  while (open_ > capacity_ && it != lru_.begin()) {
    --it;
    slot& s = slots_.at(*it);
    if (s.pins > 0 || s.permanent) continue;
    ::close(s.fd);
    s.fd = -1;
    it = lru_.erase(it);
    --open_;
    ++evictions_;
  }
}

handle_cache& process_handle_cache() {
  static handle_cache cache(0);
  return cache;
}

}  // namespace gregor::runtime
