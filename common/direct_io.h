// A large file's bytes past the page cache (O_DIRECT): what a standby
// receives or patches it writes once and reads once, as the next delta's
// basis, and has no use for its pages in between. Filling fresh pages can
// cost more than the disk itself: on a virtual machine whose host takes
// free memory back, writing 1 GiB through the page cache took 3.0 s here,
// with O_DIRECT 0.74 s (docs/BENCHMARKS.md). Both ends fall back to the
// page cache, with the same bytes, where the file system refuses O_DIRECT
// (tmpfs on older kernels) or a direct transfer (EINVAL).
// Thread-compatible.
#ifndef GWMIRROR_COMMON_DIRECT_IO_H_
#define GWMIRROR_COMMON_DIRECT_IO_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/env.h"

namespace gwmirror {

// Direct transfers move whole pieces of kDirectPiece bytes (the last of a
// file may be shorter), between the file and a buffer aligned to
// kDirectAlign, at offsets aligned to it (every block size Linux has).
inline constexpr size_t kDirectPiece = 4 << 20;
inline constexpr size_t kDirectAlign = 4096;

// Sets or clears O_DIRECT on `fd`; false (errno set) where refused.
bool SetDirectIo(Env* env, int fd, bool on);

// kDirectPiece bytes aligned to kDirectAlign.
class AlignedPiece {
 public:
  AlignedPiece();
  char* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(char* p) const;
  };
  std::unique_ptr<char, Free> data_;
};

// Writes a file from its start, in order: whole blocks with O_DIRECT from
// two aligned pieces, one filled while the other is written on a worker
// thread (the disk writes while the next bytes arrive), the tail (shorter
// than a block) through the page cache at Finish. A write refused with
// EINVAL goes through the page cache from then on. The first error ends
// the writer: every later call returns it. `fd` must outlive the writer
// (its destructor waits for a write in flight) and keeps O_DIRECT as the
// writer leaves it.
class DirectWriter {
 public:
  // Null when `fd` (empty, opened for writing) refuses O_DIRECT; the
  // caller then writes it as usual.
  static std::unique_ptr<DirectWriter> Start(Env* env, int fd);

  absl::Status Append(absl::string_view data);
  // Writes the rest; the writer is done.
  absl::Status Finish();
  // Some of the file went to the disk directly.
  bool wrote_direct() const { return wrote_direct_; }

 private:
  DirectWriter(Env* env, int fd);
  // Waits for the piece being written, if any.
  absl::Status Wait();
  // Writes all of `data` at at_ (on the worker thread for a full piece;
  // never two at once).
  absl::Status WriteAt(absl::string_view data);
  absl::Status StopDirect();

  Env* const env_;
  const int fd_;
  AlignedPiece pieces_[2];
  int filling_ = 0;  // The piece Append fills.
  size_t held_ = 0;  // Bytes in it.
  uint64_t at_ = 0;  // Bytes of the file written.
  bool direct_ = true;
  bool wrote_direct_ = false;
  absl::Status status_;  // The first error.
  // The other piece's write; destroyed (waited for) before the pieces.
  std::future<absl::Status> writing_;
};

// Reads a file at any offsets through an aligned window of kDirectPiece
// bytes, with O_DIRECT where `fd` takes it (else through the page cache
// into the same window). The window after a full one is read ahead on a
// worker thread, so a reader going through the file in order rarely waits
// for the disk. `fd` must outlive the reader (its destructor waits for a
// read ahead) and keeps O_DIRECT set.
class DirectReader {
 public:
  // Sets O_DIRECT on `fd` (opened for reading; left so) where allowed.
  DirectReader(Env* env, int fd);
  // Up to `max` bytes at `pos`: a view into the window, valid until the
  // next call; shorter at the window's end, empty at the file's end.
  absl::StatusOr<absl::string_view> ReadAt(uint64_t pos, size_t max);
  // The reads so far went past the page cache.
  bool direct() const { return direct_; }

 private:
  // Reads the window at `start` (aligned) into `buf`: its length.
  absl::StatusOr<size_t> Fill(char* buf, uint64_t start);

  Env* const env_;
  const int fd_;
  std::atomic<bool> direct_;
  AlignedPiece windows_[2];
  int current_ = 0;
  uint64_t window_at_ = 0;  // File offset of the current window.
  size_t window_len_ = 0;
  // The other window, read ahead at ahead_at_; destroyed (waited for)
  // before the windows.
  uint64_t ahead_at_ = 0;
  std::future<absl::StatusOr<size_t>> ahead_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_DIRECT_IO_H_
