// The format of a stored increment (a "GWHO" object, docs/ARCHITECTURE.md
// "Point-in-time history") as a codec that does no I/O, librsync's way:
// the header is built and parsed from bytes, the records are made from
// content pieces and fed back in pieces of any size; what a reader does
// with the decoded bytes (patch them against a basis, hash, write) is its
// own business. So the decoder is fuzzed without a file system.
//
//   "GWHO", version 1, kind (1 whole, 2 delta), u16 LE "below" (the chain
//   depth under it), u64 LE content size, 32-byte basis SHA-256 (zeros for
//   whole); then records [u32 LE raw_size][u32 LE data_len][data] as the
//   chunk codec writes them, whose concatenation is the content or a
//   librsync delta against the basis.
// Thread-compatible.
#ifndef GWMIRROR_NODE_REPLICA_HISTORY_OBJECT_H_
#define GWMIRROR_NODE_REPLICA_HISTORY_OBJECT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/chunk_codec.h"
#include "common/delta.h"

namespace gwmirror {

inline constexpr size_t kHistoryObjectHeaderSize = 4 + 4 + 8 + 32;

struct HistoryObjectHeader {
  bool delta = false;
  // How many delta links lie under this object (0 for a whole copy).
  uint32_t below = 0;
  uint64_t size = 0;
  std::string basis_sha;  // 32 bytes for a delta, empty for a whole copy.
};

std::string EncodeHistoryObjectHeader(const HistoryObjectHeader& h);
// INVALID_ARGUMENT "bad header" unless `bytes` starts with a valid header.
absl::StatusOr<HistoryObjectHeader> ParseHistoryObjectHeader(
    absl::string_view bytes);

// Makes records of content or delta bytes (`level`: zstd level).
class HistoryObjectEncoder {
 public:
  explicit HistoryObjectEncoder(int level) : encoder_(level) {}
  // Appends to `out` the records of what `Add` collected, keeping a tail
  // shorter than a chunk unless `all`.
  void Add(absl::string_view bytes) {
    pending_.append(bytes.data(), bytes.size());
  }
  void Flush(bool all, std::string* out);

 private:
  ChunkEncoder encoder_;
  std::string pending_, data_;
};

// Takes the bytes after the header in pieces of any size and gives the
// decoded bytes, in order, to `sink`.
class HistoryObjectDecoder {
 public:
  // INVALID_ARGUMENT naming what is wrong with a record (its length, its
  // data); whatever `sink` says.
  absl::Status Feed(absl::string_view bytes, const ByteSink& sink);
  // INVALID_ARGUMENT when a record was cut short.
  absl::Status Finish() const;

 private:
  ChunkDecoder decoder_;
  std::string pending_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_HISTORY_OBJECT_H_
