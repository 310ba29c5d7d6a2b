#pragma once
// A simulated node's disk: files in memory, each with what was last synced
// and the writes made since, so that a crash can keep a random prefix of
// them (the last one possibly torn). Faults come from the node's world.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/file.h"
#include "runtime/sim/world.h"

namespace gregor::runtime::sim {

class disk final : public filesystem {
 public:
  explicit disk(node& owner) : owner_(owner) {}

  result<std::shared_ptr<file>> open(const std::string& path, file::mode m) override;
  bool exists(const std::string& path) override;
  result<void> create_directories(const std::string& path) override;
  result<std::vector<std::string>> list_dir(const std::string& path) override;
  result<void> rename(const std::string& from, const std::string& to) override;
  result<void> remove(const std::string& path) override;
  result<void> remove_all(const std::string& path) override;
  result<void> sync_dir(const std::string& path) override;
  result<void> lock_exclusive(const std::string& path) override;

  // The power went: every file keeps its synced content plus what the crash
  // model lets survive of the writes since.
  void crash();
  uint64_t used_bytes() const;
  disk_faults faults;

  // One file's content. Open handles share it; remove() unlinks the name only.
  struct inode {
    bytes data;     // what reads see now
    bytes durable;  // what survives a crash for sure
    struct write_op {
      bool is_truncate = false;
      uint64_t position = 0;  // or the new size, for a truncate
      bytes data;
    };
    std::vector<write_op> unsynced;  // since the last sync, in order
  };

  // For sim_file: the node, and whether an I/O fault strikes now.
  node& owner() { return owner_; }
  bool fails(double probability);

 private:
  static std::string normalize(const std::string& path);
  static std::string parent_of(const std::string& path);
  bool is_dir(const std::string& path) const { return dirs_.count(path) > 0; }

  node& owner_;
  std::map<std::string, std::shared_ptr<inode>> files_;
  std::set<std::string> dirs_{"/"};
};

}  // namespace gregor::runtime::sim
