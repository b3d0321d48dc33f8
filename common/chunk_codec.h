// Per-chunk zstd compression for FileChunk and SignatureChunk payloads. A
// chunk is compressed only when that saves at least 1/8 of it. Encoder and
// Decoder each own a zstd context; one thread each.
#ifndef GWMIRROR_COMMON_CHUNK_CODEC_H_
#define GWMIRROR_COMMON_CHUNK_CODEC_H_

#include <zstd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

// Largest raw payload of one chunk on the wire.
inline constexpr size_t kMaxChunk = 1 << 20;
// Most files one Replica.SampleContent or Replica.GetSignature call names.
inline constexpr int kMaxFilesPerCall = 4096;

class ChunkEncoder {
 public:
  // level <= 0 disables compression.
  explicit ChunkEncoder(int level);
  // Sets *data and *raw_size as FileChunk wants them (raw_size 0 = stored).
  void Encode(absl::string_view raw, std::string* data, uint32_t* raw_size);
  // The zstd frame of `raw` in *frame, when it saves at least 1/8 of it;
  // false (and *frame unspecified) when it would not.
  bool Compress(absl::string_view raw, std::string* frame);

 private:
  struct Free {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  int level_;
  std::unique_ptr<ZSTD_CCtx, Free> ctx_;
};

class ChunkDecoder {
 public:
  ChunkDecoder();
  // Returns the raw bytes (a view into `data` or into internal scratch valid
  // until the next call). DATA_LOSS when the frame is corrupt or does not
  // decompress to exactly `raw_size` bytes; INVALID_ARGUMENT when raw_size or
  // the stored size exceeds kMaxChunk.
  absl::StatusOr<absl::string_view> Decode(absl::string_view data,
                                           uint32_t raw_size);

 private:
  struct Free {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  std::unique_ptr<ZSTD_DCtx, Free> ctx_;
  std::string scratch_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_CHUNK_CODEC_H_
