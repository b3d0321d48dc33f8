// A manifest written as an edit of the one before it: the replica's staged
// manifest and each record of its committed journal (docs/ARCHITECTURE.md,
// "Replica state on disk"), so a checkpoint that changed one file of 19,000
// writes one entry, not the whole manifest.
#ifndef GWMIRROR_COMMON_MANIFEST_EDIT_H_
#define GWMIRROR_COMMON_MANIFEST_EDIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/manifest.h"

namespace gwmirror {

struct ManifestEdit {
  uint64_t checkpoint = 0;
  std::string base_digest;           // 32 bytes: the manifest edited.
  std::string digest;                // 32 bytes: the manifest it makes.
  std::vector<Entry> set;            // Sorted by path, unique, each checked.
  std::vector<std::string> removed;  // Sorted, unique.
};

// What turns `base` into `next` (one merge pass; entries the two share by
// an edit are told apart by address, without comparing them).
ManifestEdit DiffManifests(const Manifest& base, const Manifest& next,
                           uint64_t checkpoint);

// "GWME", checkpoint, base digest, digest, removed paths, the set entries
// in the manifest encoding, SHA-256 of all before it.
std::string EncodeManifestEdit(const ManifestEdit& e);
// DATA_LOSS naming what is wrong for a damaged or hostile input; every
// entry and path is checked.
absl::StatusOr<ManifestEdit> DecodeManifestEdit(absl::string_view data);

// `base` edited: FAILED_PRECONDITION when a removed path is not in `base`
// or is also set. The digests are the caller's to check.
absl::StatusOr<Manifest> ApplyManifestEdit(const Manifest& base,
                                           const ManifestEdit& e);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_MANIFEST_EDIT_H_
