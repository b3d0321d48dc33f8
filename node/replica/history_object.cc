#include "node/replica/history_object.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr char kMagic[4] = {'G', 'W', 'H', 'O'};
constexpr uint8_t kWhole = 1, kDelta = 2;

void PutLE(std::string* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

std::string EncodeHistoryObjectHeader(const HistoryObjectHeader& h) {
  std::string out(kMagic, 4);
  out.push_back(1);
  out.push_back(h.delta ? kDelta : kWhole);
  PutLE(&out, std::min<uint32_t>(h.below, 0xffff), 2);
  PutLE(&out, h.size, 8);
  out.append(h.delta ? h.basis_sha : std::string(32, '\0'));
  return out;
}

absl::StatusOr<HistoryObjectHeader> ParseHistoryObjectHeader(
    absl::string_view b) {
  if (b.size() < kHistoryObjectHeaderSize || memcmp(b.data(), kMagic, 4) != 0 ||
      b[4] != 1 || (b[5] != kWhole && b[5] != kDelta)) {
    return absl::InvalidArgumentError("bad header");
  }
  HistoryObjectHeader h;
  h.delta = b[5] == kDelta;
  h.below = GetLE(b.data() + 6, 2);
  h.size = GetLE(b.data() + 8, 8);
  if (h.delta) h.basis_sha = std::string(b.substr(16, 32));
  return h;
}

void HistoryObjectEncoder::Flush(bool all, std::string* out) {
  size_t pos = 0;
  while (pending_.size() - pos >= kMaxChunk || (all && pos < pending_.size())) {
    const size_t take = std::min(pending_.size() - pos, kMaxChunk);
    uint32_t raw_size = 0;
    encoder_.Encode(absl::string_view(pending_.data() + pos, take), &data_,
                    &raw_size);
    PutLE(out, raw_size, 4);
    PutLE(out, data_.size(), 4);
    out->append(data_);
    pos += take;
  }
  pending_.erase(0, pos);
}

absl::Status HistoryObjectDecoder::Feed(absl::string_view bytes,
                                        const ByteSink& sink) {
  pending_.append(bytes.data(), bytes.size());
  size_t pos = 0;
  while (pending_.size() - pos >= 8) {
    const uint32_t raw_size = GetLE(pending_.data() + pos, 4);
    const uint32_t len = GetLE(pending_.data() + pos + 4, 4);
    if (len > ZSTD_compressBound(kMaxChunk)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad record: ", len, " bytes of data"));
    }
    if (pending_.size() - pos - 8 < len) break;
    auto piece = decoder_.Decode(
        absl::string_view(pending_.data() + pos + 8, len), raw_size);
    if (!piece.ok()) {
      return absl::InvalidArgumentError(piece.status().message());
    }
    RETURN_IF_ERROR(sink(*piece));
    pos += 8 + len;
  }
  pending_.erase(0, pos);
  return absl::OkStatus();
}

absl::Status HistoryObjectDecoder::Finish() const {
  if (!pending_.empty()) return absl::InvalidArgumentError("truncated record");
  return absl::OkStatus();
}

}  // namespace gwmirror
