#include "common/direct_io.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>
#include <utility>

#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {

bool SetDirectIo(Env* env, int fd, bool on) {
  const int flags = env->GetFileFlags(fd);
  if (flags < 0) return false;
  const int want = on ? flags | O_DIRECT : flags & ~O_DIRECT;
  return want == flags || env->SetFileFlags(fd, want) == 0;
}

AlignedPiece::AlignedPiece()
    : data_(new (std::align_val_t(kDirectAlign)) char[kDirectPiece]) {}

void AlignedPiece::Free::operator()(char* p) const {
  operator delete[](p, std::align_val_t(kDirectAlign));
}

std::unique_ptr<DirectWriter> DirectWriter::Start(Env* env, int fd) {
  if (!SetDirectIo(env, fd, true)) return nullptr;
  return std::unique_ptr<DirectWriter>(new DirectWriter(env, fd));
}

DirectWriter::DirectWriter(Env* env, int fd) : env_(env), fd_(fd) {}

absl::Status DirectWriter::Wait() {
  if (writing_.valid()) status_.Update(writing_.get());
  return status_;
}

absl::Status DirectWriter::Append(absl::string_view data) {
  RETURN_IF_ERROR(status_);
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kDirectPiece - held_);
    memcpy(pieces_[filling_].data() + held_, data.data(), n);
    held_ += n;
    data.remove_prefix(n);
    if (held_ < kDirectPiece) break;
    // Full: written on a worker while the other piece fills.
    RETURN_IF_ERROR(Wait());
    writing_ = std::async(
        std::launch::async, [this, piece = pieces_[filling_].data()] {
          return WriteAt(absl::string_view(piece, kDirectPiece));
        });
    filling_ = 1 - filling_;
    held_ = 0;
  }
  return absl::OkStatus();
}

absl::Status DirectWriter::Finish() {
  RETURN_IF_ERROR(Wait());
  char* piece = pieces_[filling_].data();
  const size_t blocks = held_ / kDirectAlign * kDirectAlign;
  status_.Update(WriteAt(absl::string_view(piece, blocks)));
  if (status_.ok() && blocks < held_) {
    // The tail, shorter than a block: through the page cache.
    status_.Update(StopDirect());
    if (status_.ok()) {
      status_.Update(
          WriteAt(absl::string_view(piece + blocks, held_ - blocks)));
    }
  }
  held_ = 0;
  return status_;
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
  if (!SetDirectIo(env_, fd_, false)) {
    return ErrnoStatus(errno, "clear O_DIRECT");
  }
  direct_ = false;
  return absl::OkStatus();
}

DirectReader::DirectReader(Env* env, int fd)
    : env_(env), fd_(fd), direct_(SetDirectIo(env, fd, true)) {}

absl::StatusOr<size_t> DirectReader::Fill(char* buf, uint64_t start) {
  size_t got = 0;
  // A direct read is short only at the file's end (a read after a short
  // one would start off a block); a read through the cache fills on.
  while (got < kDirectPiece && (!direct_ || got % kDirectAlign == 0)) {
    ssize_t n = env_->PRead(fd_, buf + got, kDirectPiece - got, start + got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && direct_) {
      if (!SetDirectIo(env_, fd_, false)) {
        return ErrnoStatus(errno, "clear O_DIRECT");
      }
      direct_ = false;
      continue;
    }
    if (n < 0) return ErrnoStatus(errno, "read");
    if (n == 0) break;
    got += n;
  }
  return got;
}

absl::StatusOr<absl::string_view> DirectReader::ReadAt(uint64_t pos,
                                                       size_t max) {
  if (pos < window_at_ || pos >= window_at_ + window_len_) {
    // Nothing reads while the window moves.
    std::optional<absl::StatusOr<size_t>> ahead;
    if (ahead_.valid()) ahead = ahead_.get();
    if (ahead && ahead->ok() && pos >= ahead_at_ && pos < ahead_at_ + **ahead) {
      current_ = 1 - current_;
      window_at_ = ahead_at_;
      window_len_ = **ahead;
    } else {
      const uint64_t start = pos / kDirectAlign * kDirectAlign;
      window_len_ = 0;  // A failed fill leaves no window.
      ASSIGN_OR_RETURN(window_len_, Fill(windows_[current_].data(), start));
      window_at_ = start;
      if (pos >= window_at_ + window_len_) return absl::string_view();
    }
    if (window_len_ == kDirectPiece) {
      ahead_at_ = window_at_ + kDirectPiece;
      ahead_ = std::async(std::launch::async,
                          [this, buf = windows_[1 - current_].data(),
                           start = ahead_at_] { return Fill(buf, start); });
    }
  }
  const size_t off = pos - window_at_;
  return absl::string_view(windows_[current_].data() + off,
                           std::min(max, window_len_ - off));
}

}  // namespace gwmirror
