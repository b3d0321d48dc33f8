#include "common/chunk_codec.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gwmirror {

ChunkEncoder::ChunkEncoder(int level)
    : level_(level), ctx_(level > 0 ? ZSTD_createCCtx() : nullptr) {
  if (level > 0 && !ctx_) std::abort();
}

void ChunkEncoder::Encode(absl::string_view raw, std::string* data,
                          uint32_t* raw_size) {
  if (Compress(raw, data)) {
    *raw_size = static_cast<uint32_t>(raw.size());
  } else {
    *raw_size = 0;
    data->assign(raw.data(), raw.size());
  }
}

bool ChunkEncoder::Compress(absl::string_view raw, std::string* frame) {
  if (!ctx_ || raw.size() < 256) return false;
  frame->resize(ZSTD_compressBound(raw.size()));
  size_t n = ZSTD_compressCCtx(ctx_.get(), frame->data(), frame->size(),
                               raw.data(), raw.size(), level_);
  if (ZSTD_isError(n) || n >= raw.size() - raw.size() / 8) return false;
  frame->resize(n);
  return true;
}

ChunkDecoder::ChunkDecoder() : ctx_(ZSTD_createDCtx()) {
  if (!ctx_) std::abort();
}

absl::StatusOr<absl::string_view> ChunkDecoder::Decode(absl::string_view data,
                                                       uint32_t raw_size) {
  if (raw_size == 0) {
    if (data.size() > kMaxChunk) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk of ", data.size(), " bytes exceeds the limit of ", kMaxChunk));
    }
    return data;
  }
  if (raw_size > kMaxChunk) {
    return absl::InvalidArgumentError(absl::StrCat(
        "compressed chunk claims ", raw_size, " bytes, limit ", kMaxChunk));
  }
  unsigned long long declared =
      ZSTD_getFrameContentSize(data.data(), data.size());
  if (declared != raw_size) {
    return absl::DataLossError(absl::StrCat(
        "compressed chunk: frame size does not match raw_size ", raw_size));
  }
  scratch_.resize(raw_size);
  size_t n = ZSTD_decompressDCtx(ctx_.get(), scratch_.data(), scratch_.size(),
                                 data.data(), data.size());
  if (ZSTD_isError(n) || n != raw_size) {
    return absl::DataLossError(
        absl::StrCat("compressed chunk is corrupt: ",
                     ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output"));
  }
  return absl::string_view(scratch_.data(), n);
}

}  // namespace gwmirror
