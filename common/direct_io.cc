#include "common/direct_io.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {

bool SetDirectIo(int fd, bool on) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  const int want = on ? flags | O_DIRECT : flags & ~O_DIRECT;
  return want == flags || fcntl(fd, F_SETFL, want) == 0;
}

AlignedPiece::AlignedPiece()
    : data_(new (std::align_val_t(kDirectAlign)) char[kDirectPiece]) {}

void AlignedPiece::Free::operator()(char* p) const {
  operator delete[](p, std::align_val_t(kDirectAlign));
}

std::unique_ptr<DirectWriter> DirectWriter::Start(Env* env, int fd) {
  if (!SetDirectIo(fd, true)) return nullptr;
  return std::unique_ptr<DirectWriter>(
      new DirectWriter(env, fd, AlignedPiece()));
}

DirectWriter::DirectWriter(Env* env, int fd, AlignedPiece piece)
    : env_(env), fd_(fd), piece_(std::move(piece)) {}

absl::Status DirectWriter::Append(absl::string_view data) {
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kDirectPiece - held_);
    memcpy(piece_.data() + held_, data.data(), n);
    held_ += n;
    data.remove_prefix(n);
    if (held_ == kDirectPiece) RETURN_IF_ERROR(Flush(/*all=*/false));
  }
  return absl::OkStatus();
}

absl::Status DirectWriter::Finish() { return Flush(/*all=*/true); }

absl::Status DirectWriter::Flush(bool all) {
  const size_t blocks = held_ / kDirectAlign * kDirectAlign;
  RETURN_IF_ERROR(WriteAt(absl::string_view(piece_.data(), blocks)));
  held_ -= blocks;
  memmove(piece_.data(), piece_.data() + blocks, held_);
  if (!all || held_ == 0) return absl::OkStatus();
  // The tail, shorter than a block: through the page cache.
  RETURN_IF_ERROR(StopDirect());
  RETURN_IF_ERROR(WriteAt(absl::string_view(piece_.data(), held_)));
  held_ = 0;
  return absl::OkStatus();
}

absl::Status DirectWriter::WriteAt(absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = env_->PWrite(fd_, data.data(), data.size(), at_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && direct_) {
      // Opened with O_DIRECT but this write refused (the file system's
      // blocks larger than ours, or after a short write): the page cache
      // from here on.
      RETURN_IF_ERROR(StopDirect());
      continue;
    }
    if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, "write");
    wrote_direct_ |= direct_;
    data.remove_prefix(n);
    at_ += n;
  }
  return absl::OkStatus();
}

absl::Status DirectWriter::StopDirect() {
  if (!direct_) return absl::OkStatus();
  if (!SetDirectIo(fd_, false)) return ErrnoStatus(errno, "clear O_DIRECT");
  direct_ = false;
  return absl::OkStatus();
}

DirectReader::DirectReader(Env* env, int fd)
    : env_(env), fd_(fd), direct_(SetDirectIo(fd, true)) {}

absl::StatusOr<absl::string_view> DirectReader::ReadAt(uint64_t pos,
                                                       size_t max) {
  if (pos < window_at_ || pos >= window_at_ + window_len_) {
    const uint64_t start = pos / kDirectAlign * kDirectAlign;
    size_t got = 0;
    // A direct read is short only at the file's end (a read after a short
    // one would start off a block); a read through the cache fills on.
    while (got < kDirectPiece && (!direct_ || got % kDirectAlign == 0)) {
      ssize_t n = env_->PRead(fd_, window_.data() + got, kDirectPiece - got,
                              start + got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EINVAL && direct_) {
        if (!SetDirectIo(fd_, false)) {
          return ErrnoStatus(errno, "clear O_DIRECT");
        }
        direct_ = false;
        continue;
      }
      if (n < 0) return ErrnoStatus(errno, "read");
      if (n == 0) break;
      got += n;
    }
    window_at_ = start;
    window_len_ = got;
    if (pos >= window_at_ + window_len_) return absl::string_view();
  }
  const size_t off = pos - window_at_;
  return absl::string_view(window_.data() + off,
                           std::min(max, window_len_ - off));
}

}  // namespace gwmirror
