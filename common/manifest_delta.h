// A manifest on the wire, in one place: how a source sends the difference
// between the replica's committed manifest and the one it froze
// (EncodeManifestDelta), how a replica rebuilds the whole manifest from
// those parts (ManifestDeltaDecoder), and how a whole manifest streamed in
// batches is taken in (ManifestAssembler, the source reading GetManifest).
// Decoders check what arrives as it arrives and bound what they hold by
// bytes, whatever the peer sends. No I/O; thread-compatible.
#ifndef GWMIRROR_COMMON_MANIFEST_DELTA_H_
#define GWMIRROR_COMMON_MANIFEST_DELTA_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/manifest.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

// Memory one buffered entry holds (what the bounds count).
uint64_t EntryBytes(const Entry& e);

// The parts that turn `base` into `next`: new and changed entries, and the
// paths `next` removed, at most `per_part` items a part, each handed to
// `emit` (which may fail: the encoding stops there).
absl::Status EncodeManifestDelta(
    const Manifest& base, const Manifest& next, size_t per_part,
    const std::function<absl::Status(gwmirror::v1::ManifestPart)>& emit);

class ManifestDeltaDecoder {
 public:
  // `admit` (may be empty) is asked about every entry as it arrives (the
  // replica's mirror set); `max_bytes` bounds what the parts may hold.
  // `delta`: parts carry changes against a base; otherwise the whole
  // manifest (no removed paths).
  ManifestDeltaDecoder(bool delta, uint64_t max_bytes,
                       std::function<absl::Status(const Entry&)> admit);

  // INVALID_ARGUMENT for a bad entry or path, what `admit` says, or
  // RESOURCE_EXHAUSTED past the bound; nothing of a refused part is kept.
  absl::Status Add(const gwmirror::v1::ManifestPart& part);
  // The whole manifest: `base` with the parts applied (or the parts alone
  // for a whole manifest), its digest checked against `digest` (DATA_LOSS
  // when it differs). Call once.
  absl::StatusOr<Manifest> Finish(const Manifest& base,
                                  absl::string_view digest);
  uint64_t bytes() const { return bytes_; }

 private:
  const bool delta_;
  const uint64_t max_bytes_;
  const std::function<absl::Status(const Entry&)> admit_;
  std::vector<Entry> entries_;
  std::vector<std::string> removed_;
  uint64_t bytes_ = 0;
};

class ManifestAssembler {
 public:
  explicit ManifestAssembler(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  // Takes one batch (validated entries); RESOURCE_EXHAUSTED past the bound.
  absl::Status Add(gwmirror::v1::ManifestBatch batch);
  // The manifest; ABORTED when its digest is not `digest` (it changed
  // while it was read).
  absl::StatusOr<Manifest> Finish(absl::string_view digest);

 private:
  const uint64_t max_bytes_;
  std::vector<Entry> entries_;
  uint64_t bytes_ = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_MANIFEST_DELTA_H_
