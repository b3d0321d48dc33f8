// File-descriptor ownership and errno helpers. UniqueFd closes on
// destruction; it is movable and not thread-safe (like the fd it owns).
#ifndef GWMIRROR_COMMON_FD_H_
#define GWMIRROR_COMMON_FD_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/env.h"

namespace gwmirror {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// An absl::Status for errno `err`, code chosen by what the caller can do:
// ENOENT -> NOT_FOUND, ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED, EACCES/EPERM ->
// PERMISSION_DENIED, ELOOP/ENOTDIR/EEXIST -> FAILED_PRECONDITION, others
// INTERNAL. The message is "<what>: <strerror>".
absl::Status ErrnoStatus(int err, absl::string_view what);

// The helpers below do their I/O through `env` (the real file system by
// default).
absl::Status WriteAll(int fd, absl::string_view data,
                      Env* env = Env::Default());
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             Env* env = Env::Default());
// A regular file (a symlink to one is followed) of at most `max_bytes`,
// read whole: a FIFO, a device or a directory is FAILED_PRECONDITION
// (never blocked on), a larger file INVALID_ARGUMENT (not read).
absl::StatusOr<std::string> ReadRegularFile(const std::string& path,
                                            uint64_t max_bytes,
                                            Env* env = Env::Default());
// How much a write must survive.
enum class Durability {
  // fsync the file before the rename and the directory after: survives a
  // power loss (journals, committed state, keys).
  kSynced,
  // rename only: atomic against a crash of the process, may be lost with
  // the machine (caches that are rebuilt when missing or damaged).
  kCache,
};

// Writes `data` to `path` atomically (temp file, rename), fsyncing as
// `durability` says.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data,
                             int mode = 0600,
                             Durability durability = Durability::kSynced,
                             Env* env = Env::Default());
absl::Status FsyncPath(const std::string& path, Env* env = Env::Default());
// mkdir -p with `mode` for directories it creates.
absl::Status MakeDirs(const std::string& path, int mode = 0755,
                      Env* env = Env::Default());
// rm -rf; a missing path is not an error.
absl::Status RemoveTree(const std::string& path, Env* env = Env::Default());
// Removes the entry `name` in directory `dirfd` whatever it is (recursively
// for a directory, never following symlinks). Missing is not an error.
absl::Status RemoveAt(int dirfd, const std::string& name,
                      Env* env = Env::Default());
// Closes every descriptor from `first` on (close_range, or one by one up to
// the descriptor limit where the kernel lacks it). For a child between fork
// and exec: no allocation.
void CloseFdsFrom(int first);
// Names in directory `dir`, sorted, without "." and ".."; a missing
// directory has none; a listing that fails part-way is an error.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir,
                                                 Env* env = Env::Default());

// A regular file mapped read-only, unmapped on destruction. Its pages are
// the page cache's: they count in the process's resident memory only once
// touched, and Release gives them back (a later read faults them in
// again). The file must not shrink while mapped (a read past its new end
// is SIGBUS): map only files that are replaced by rename, never truncated
// in place. Movable; const methods are thread-safe.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  absl::string_view view() const {
    return absl::string_view(static_cast<const char*>(data_), size_);
  }
  // Drops the whole pages inside [p, p + len) from this process's resident
  // memory; a hint, the bytes stay readable.
  void Release(const void* p, size_t len) const;

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;  // Null for an empty file.
  size_t size_ = 0;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, closed),
// for servers that cannot bind port 0 themselves (database and etcd
// servers the sandbox and tests start).
absl::StatusOr<int> FreeLoopbackPort();

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_FD_H_
