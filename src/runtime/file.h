#pragma once
// Files and directories. Storage does its I/O through these, synchronously on
// the shard that owns the partition: appends land in the page cache, and
// fsync happens only where durability policy asks for it. Each backend
// brings its filesystem: POSIX in production, an in-memory disk that can
// lose unsynced writes and fail in a simulation.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/iobuf.h"
#include "base/result.h"

namespace gregor::runtime {

class file : public region_source, public std::enable_shared_from_this<file> {
 public:
  enum class mode { read_only, read_write_create };
  // Opens through the calling thread's backend.
  static result<std::shared_ptr<file>> open(const std::string& path, mode m);
  ~file() override = default;

  virtual result<void> pwrite(uint64_t position, bytes_view data) = 0;
  // Writes at the end of the file and returns the position written at.
  result<uint64_t> append(bytes_view data);
  // Reads up to n bytes at position; returns how many were read (0 at EOF).
  virtual result<size_t> pread(uint64_t position, uint8_t* dst, size_t n) const = 0;
  result<bytes> read_all() const;
  virtual result<void> truncate(uint64_t size) = 0;
  virtual result<void> sync() = 0;  // fdatasync
  // Asks for [position, position + length) to be written back to disk soon
  // and returns at once: no durability promise, but dirty pages do not pile
  // up, so the page cache can reclaim them without stalling.
  virtual void start_writeback(uint64_t position, uint64_t length) = 0;
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // A region of this file for zero-copy sends; keeps the file open until sent.
  virtual file_region region(uint64_t position, uint32_t size) const;

  result<void> read_exact_at(uint64_t position, uint8_t* dst, size_t n) const override;

 protected:
  file(std::string path, uint64_t size) : path_(std::move(path)), size_(size) {}
  std::string path_;
  uint64_t size_;
};

// Reads the bytes of a file region (e.g. log data read back for replay).
result<bytes> read_region(const file_region& r);

// A backend's files and directories.
class filesystem {
 public:
  virtual ~filesystem() = default;
  virtual result<std::shared_ptr<file>> open(const std::string& path, file::mode m) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual result<void> create_directories(const std::string& path) = 0;
  virtual result<std::vector<std::string>> list_dir(const std::string& path) = 0;
  virtual result<void> rename(const std::string& from, const std::string& to) = 0;
  virtual result<void> remove(const std::string& path) = 0;
  virtual result<void> remove_all(const std::string& path) = 0;
  virtual result<void> sync_dir(const std::string& path) = 0;
  virtual result<void> lock_exclusive(const std::string& path) = 0;
};

// Bounds the descriptors that the production filesystem's files keep open
// (log.max.open.files; 0: no bound). Files opened after the call are in the
// bounded cache of runtime/handle_cache.h: idle ones are closed and reopened
// on their next use. Files opened before keep their descriptors.
void set_max_open_files(size_t n);
// Descriptors held open by files in that cache (for tests and metrics).
size_t cached_open_files();

namespace fs {
bool exists(const std::string& path);
result<void> create_directories(const std::string& path);
// Names (not paths) of the entries of a directory.
result<std::vector<std::string>> list_dir(const std::string& path);
result<void> rename(const std::string& from, const std::string& to);
result<void> remove(const std::string& path);
result<void> remove_all(const std::string& path);
result<std::string> read_file(const std::string& path);
// Writes through a temporary file, fsyncs it, renames it over `path` and
// fsyncs the directory: readers see the old or the new content, never a mix.
result<void> write_file_atomic(const std::string& path, std::string_view content);
result<void> sync_dir(const std::string& path);
// Takes an exclusive lock on `path` (created if missing) for the life of the
// process, so two brokers cannot share a data directory.
result<void> lock_exclusive(const std::string& path);
}  // namespace fs

}  // namespace gregor::runtime
