// Manifests: the entries of one slot at one checkpoint, their canonical
// binary encoding (docs/ARCHITECTURE.md, "Manifest format"), its digest,
// and the structural checks a replica applies to a manifest from the
// network. Value types; thread-compatible.
#ifndef GWMIRROR_COMMON_MANIFEST_H_
#define GWMIRROR_COMMON_MANIFEST_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fd.h"
#include "common/sha256.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

using Entry = gwmirror::v1::Entry;

// Entries sorted by path (bytewise), unique paths. Immutable once built:
// copies share one body (a copy costs a reference count, not the tree), and
// the digest is computed once per body.
class Manifest {
 public:
  Manifest() = default;
  // Sorts; fails with INVALID_ARGUMENT on a duplicate path or a bad entry.
  static absl::StatusOr<Manifest> FromEntries(std::vector<Entry> entries);

  const std::vector<Entry>& entries() const;
  // Binary search by path.
  const Entry* Find(absl::string_view path) const;
  size_t size() const { return entries().size(); }

  // Canonical encoding (the digest covers exactly these bytes).
  std::string Encode() const;
  Digest ComputeDigest() const;
  // Decodes Encode()'s output; every entry is validated.
  static absl::StatusOr<Manifest> Decode(absl::string_view data);

  // Structure against the replica's roots: every entry lies strictly below
  // one of `roots`, and its parent is a root or a DIRECTORY entry.
  absl::Status CheckStructure(const std::vector<std::string>& roots) const;

 private:
  struct Body {
    std::vector<Entry> entries;
    mutable absl::once_flag digest_once;
    mutable Digest digest;
  };
  std::shared_ptr<const Body> body_;
};

// Walks two manifests side by side in path order (one pass, no lookups):
// `fn(old, now)` for every path of either, `old` null when only `next` has
// it, `now` null when only `base` has it.
template <typename Fn>
void ForEachPath(const Manifest& base, const Manifest& next, Fn fn) {
  const std::vector<Entry>& a = base.entries();
  const std::vector<Entry>& b = next.entries();
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    int c = i == a.size()   ? 1
            : j == b.size() ? -1
                            : a[i].path().compare(b[j].path());
    if (c < 0) {
      fn(&a[i++], static_cast<const Entry*>(nullptr));
    } else if (c > 0) {
      fn(static_cast<const Entry*>(nullptr), &b[j++]);
    } else {
      fn(&a[i++], &b[j++]);
    }
  }
}

// Field checks of one entry from an untrusted peer.
absl::Status ValidateEntry(const Entry& e);

// True when two entries describe the same object (type, content, metadata).
bool SameEntry(const Entry& a, const Entry& b);
// True when content is equal (file digest, link target, or both dirs).
bool SameContent(const Entry& a, const Entry& b);

// On-disk form: "GWMF", checkpoint id (u64 LE), canonical encoding, and a
// SHA-256 of everything before it; written atomically (temp, fsync, rename).
// Reading checks the trailing digest.
struct ManifestFile {
  uint64_t checkpoint = 0;
  Manifest manifest;
};
absl::Status WriteManifestFile(const std::string& path, uint64_t checkpoint,
                               const Manifest& m,
                               Durability durability = Durability::kSynced,
                               Env* env = Env::Default());
absl::StatusOr<ManifestFile> ReadManifestFile(const std::string& path,
                                              Env* env = Env::Default());

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_MANIFEST_H_
