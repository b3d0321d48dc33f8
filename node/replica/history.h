// Point-in-time history of one replica, kept rdiff-backup's way: the newest
// checkpoint is the tree itself; every older retained checkpoint is its
// manifest plus the file versions the tree no longer holds, stored as
// reverse increments (a librsync delta from the newer version back to the
// older one, or a whole zstd copy where a delta does not pay).
//
// Disk layout under <state_dir>/replica/history (docs/ARCHITECTURE.md):
//   points/<N>         one retained checkpoint: manifest object, commit time,
//                      what changed against the checkpoint before it
//   pins               checkpoints the coordinator pinned (one id per line)
//   objects/<sha-hex>  an encoded version (GWHO: whole or delta, below)
//   objects/<sha-hex>.raw    a version exactly as it was (a hard link of the
//                            replaced tree file, or a copy); compacted into
//                            an encoded object in the background
//   objects/<sha-hex>.basis  for a .raw: the newer version to delta against
//                            (a hint, not synced: lost in a crash, the
//                            version is stored whole, not as a delta)
// Manifests are objects too, each a delta against the next newer one.
//
// Encoded object: "GWHO", version 1, kind (1 whole, 2 delta), 2 zero bytes,
// the content size (u64 LE), the basis SHA-256 (32 bytes, zero for whole),
// then records of [u32 raw_size][u32 data_len][data] as ChunkEncoder makes
// them (raw_size 0: stored), whose concatenation is the content (whole) or
// a librsync delta against the basis's content (delta). Every read checks
// the result's SHA-256 against the object's name.
//
// Versions are preserved before a commit touches the tree (Preserve), so a
// reader racing a commit finds the replaced version among the objects.
// Retention keeps every checkpoint for a while, then one per tier bucket,
// never the newest or a pinned one; garbage collection keeps every object a
// retained checkpoint needs and every basis those objects' chains need, so
// expiry never breaks a chain.
//
// Thread-safe.
#ifndef GWMIRROR_NODE_REPLICA_HISTORY_H_
#define GWMIRROR_NODE_REPLICA_HISTORY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "common/manifest.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

// One retained checkpoint.
struct HistoryPoint {
  uint64_t checkpoint = 0;
  std::string manifest_sha;  // Raw SHA-256 of the manifest's encoding.
  int64_t committed_unix_ms = 0;
  uint64_t entries = 0;
  // Against the checkpoint committed before it on this replica.
  uint64_t added = 0, changed = 0, removed = 0;
  uint64_t changed_bytes = 0;  // Content of added and changed files.
};

// Which checkpoints retention expires now. `points` sorted by checkpoint;
// the newest and the pinned are always kept. Pure, for tests.
std::vector<uint64_t> ChooseExpired(const std::vector<HistoryPoint>& points,
                                    const std::set<uint64_t>& pins,
                                    const gwmirror::v1::RetentionConfig& policy,
                                    absl::Time now);

// The default policy: every checkpoint for an hour, hourly for a day, daily
// for a week, at most 500.
gwmirror::v1::RetentionConfig DefaultRetention();

class History {
 public:
  // Opens a file of the committed tree that should hold `sha` (the caller
  // verifies what it reads), or NOT_FOUND.
  using TreeLookup =
      std::function<absl::StatusOr<UniqueFd>(const std::string& sha)>;

  static absl::StatusOr<std::unique_ptr<History>> Open(
      std::string dir, gwmirror::v1::RetentionConfig policy, TreeLookup tree,
      Env* env = Env::Default());

  // Before a commit replaces `old` with `next`: every file version of `old`
  // that `next` no longer holds is kept as a .raw object (hard link of the
  // tree file `open_old` opens, or a copy), with the version `next` has at
  // the same path as its delta basis; synced before returning.
  absl::Status Preserve(
      const Manifest& old, const Manifest& next,
      const std::function<absl::StatusOr<UniqueFd>(const std::string& path)>&
          open_old);

  // After a commit: records checkpoint `n` with `m` (diffed against `prev`)
  // and, unless null, the pins the coordinator sent. Retention and
  // compaction happen in Maintain().
  absl::Status Record(uint64_t n, const Manifest& m, const Manifest* prev,
                      const std::vector<uint64_t>* pins, absl::Time now);
  std::set<uint64_t> pins() const;
  absl::Status SetPins(const std::vector<uint64_t>& pins);
  bool Has(uint64_t n) const;

  // Retention, compaction of .raw objects into increments, and (when
  // something expired, or `gc`) garbage collection. Returns how many
  // checkpoints expired.
  absl::StatusOr<int> Maintain(absl::Time now, bool gc = false);

  std::vector<HistoryPoint> Points() const;
  // Bytes on disk of the objects only `n` (and older) need: what dropping
  // every checkpoint up to `n` would free, by newest-first attribution.
  std::vector<std::pair<uint64_t, uint64_t>> BytesByPoint() const;
  uint64_t TotalBytes() const;
  absl::StatusOr<Manifest> LoadManifest(uint64_t n) const;
  // Writes the version with SHA-256 `sha` to `fd` (truncated first) and
  // verifies it: from the tree when a tree file holds it, else from the
  // objects. NOT_FOUND when nothing holds it, DATA_LOSS when what holds it
  // does not verify (the message names the object or tree file).
  absl::Status ReadTo(const std::string& sha, int fd) const;

  // Re-reads every retained checkpoint's manifest and every version they
  // need; each problem is one line naming the object, the checkpoints and a
  // path that need it. With `repair`, a damaged object whose content the
  // tree still holds is re-encoded from it (listed in *repaired); one it
  // does not is also listed in *unrepairable (may be null).
  absl::Status Verify(bool repair, std::vector<std::string>* problems,
                      std::vector<std::string>* repaired,
                      uint64_t* versions_checked,
                      std::vector<std::string>* unrepairable = nullptr);

 private:
  struct ObjectInfo {
    enum Kind { kNone, kRaw, kWhole, kDelta } kind = kNone;
    std::string basis;  // kDelta.
    uint64_t size = 0;
    // Encoded: the longest chain of older deltas hanging below it when it
    // was written (they all exist by then: a version is preserved before
    // the one that replaced it).
    int below = 0;
  };
  History(std::string dir, gwmirror::v1::RetentionConfig policy,
          TreeLookup tree, Env* env);
  std::string ObjectPath(const std::string& sha) const;
  std::string PointPath(uint64_t n) const;
  ObjectInfo Info(const std::string& sha) const;
  absl::Status ReadToDepth(const std::string& sha, int fd, int depth) const;
  absl::Status ReadObject(const std::string& sha, int fd, int depth) const;
  absl::StatusOr<std::string> ReadBytes(const std::string& sha) const;
  absl::Status PutRaw(const std::string& sha, absl::string_view content,
                      const std::string& basis);
  // Encodes the .raw object `sha` (delta against its basis when that pays
  // and the chain through it stays short).
  absl::Status Compact(const std::string& sha)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(maintain_mu_);
  absl::Status WriteEncoded(const std::string& sha, int content_fd,
                            bool whole_only, const std::string& basis,
                            int below = 0);
  // below_ from every encoded object's header.
  absl::Status ScanChains() ABSL_EXCLUSIVE_LOCKS_REQUIRED(maintain_mu_);
  absl::Status CollectGarbage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(gc_mu_);
  absl::StatusOr<std::set<std::string>> Needed(
      std::map<std::string, std::vector<std::string>>* users) const;

  const std::string dir_;
  const gwmirror::v1::RetentionConfig policy_;
  const TreeLookup tree_;
  Env* const env_;

  // One Maintain or Verify at a time.
  absl::Mutex maintain_mu_;
  // sha -> the longest chain of deltas below it (see ObjectInfo::below);
  // built by the first Maintain, kept by compaction, rebuilt after GC.
  std::map<std::string, int> below_ ABSL_GUARDED_BY(maintain_mu_);
  bool below_known_ ABSL_GUARDED_BY(maintain_mu_) = false;
  // Readers of versions hold it shared; garbage collection exclusively.
  mutable absl::Mutex gc_mu_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, HistoryPoint> points_ ABSL_GUARDED_BY(mu_);
  // The last version read as bytes (a manifest), verified.
  mutable absl::Mutex cache_mu_;
  mutable std::string cached_sha_ ABSL_GUARDED_BY(cache_mu_);
  mutable std::string cached_ ABSL_GUARDED_BY(cache_mu_);
  std::set<uint64_t> pins_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_HISTORY_H_
