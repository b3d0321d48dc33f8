#include "common/zstd_stream.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {

ZstdWriter::ZstdWriter(int fd, int level)
    : fd_(fd), ctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize(), '\0') {
  ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_compressionLevel, level);
}

absl::Status ZstdWriter::Drive(absl::string_view data, ZSTD_EndDirective mode) {
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  for (;;) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    size_t left = ZSTD_compressStream2(ctx_.get(), &out, &in, mode);
    if (ZSTD_isError(left)) {
      return absl::InternalError(
          absl::StrCat("zstd: ", ZSTD_getErrorName(left)));
    }
    RETURN_IF_ERROR(WriteAll(fd_, absl::string_view(out_.data(), out.pos)));
    if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) break;
  }
  return absl::OkStatus();
}

absl::Status ZstdWriter::Write(absl::string_view data) {
  return Drive(data, ZSTD_e_continue);
}

absl::Status ZstdWriter::Finish() { return Drive("", ZSTD_e_end); }

ZstdReader::ZstdReader(int fd) : fd_(fd), ctx_(ZSTD_createDCtx()) {}

absl::StatusOr<size_t> ZstdReader::Read(char* buf, size_t n) {
  for (;;) {
    if (in_pos_ == in_.size() && !eof_) {
      in_.resize(ZSTD_DStreamInSize());
      ssize_t k;
      do {
        k = read(fd_, in_.data(), in_.size());
      } while (k < 0 && errno == EINTR);
      if (k < 0) return ErrnoStatus(errno, "read compressed archive");
      in_.resize(k);
      in_pos_ = 0;
      eof_ = k == 0;
    }
    if (in_pos_ == in_.size() && eof_) {
      if (!frame_done_) {
        return absl::DataLossError("compressed archive is truncated");
      }
      return 0;
    }
    ZSTD_inBuffer in{in_.data(), in_.size(), in_pos_};
    ZSTD_outBuffer out{buf, n, 0};
    size_t r = ZSTD_decompressStream(ctx_.get(), &out, &in);
    if (ZSTD_isError(r)) {
      return absl::DataLossError(absl::StrCat("compressed archive is corrupt: ",
                                              ZSTD_getErrorName(r)));
    }
    in_pos_ = in.pos;
    frame_done_ = r == 0;
    if (out.pos > 0) return out.pos;
  }
}

}  // namespace gwmirror
