// Streaming zstd frames over file descriptors (export and import of
// `.tar.zst` archives), zstd contexts behind RAII.
#ifndef GWMIRROR_COMMON_ZSTD_STREAM_H_
#define GWMIRROR_COMMON_ZSTD_STREAM_H_

#include <zstd.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

// Compresses what is written into one zstd frame on `fd`.
class ZstdWriter {
 public:
  ZstdWriter(int fd, int level);
  absl::Status Write(absl::string_view data);
  // Ends the frame.
  absl::Status Finish();

 private:
  absl::Status Drive(absl::string_view data, ZSTD_EndDirective mode);
  struct Free {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  int fd_;
  std::unique_ptr<ZSTD_CCtx, Free> ctx_;
  std::string out_;
};

// Decompresses zstd frames read from `fd`. DATA_LOSS for corrupt or
// truncated input.
class ZstdReader {
 public:
  explicit ZstdReader(int fd);
  // Up to `n` bytes; 0 at the end of the input.
  absl::StatusOr<size_t> Read(char* buf, size_t n);

 private:
  struct Free {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  int fd_;
  std::unique_ptr<ZSTD_DCtx, Free> ctx_;
  std::string in_;
  size_t in_pos_ = 0;
  bool eof_ = false;
  // Whether the last frame ended (a file cut inside a frame is truncated).
  bool frame_done_ = true;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_ZSTD_STREAM_H_
