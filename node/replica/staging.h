// The replica's staging area, under <state_dir>/replica:
//   staging/<N>/objects/<sha-hex>   verified, content-addressed file versions
//   staging/<N>/manifest            the staged manifest, once complete
//   prestage/<sha-hex>              verified file versions pushed between
//                                   cuts (the pre-stage pool)
// It knows which checkpoint is staged, which objects it holds, which files
// must come whole (their delta or pre-staged copy did not fit), and which
// versions the pool holds. Push sessions (push_session.h) write objects
// into it; the store (store.h) commits from it. It never touches the tree.
//
// A checkpoint's staging is complete once its manifest file is written,
// which happens only after every object was synced: a restart keeps a
// complete staging (the coordinator may have recorded it consistent) and
// drops every other one. The pool is a cache: each start empties it under
// a new random id, so sources that think it holds their files are told to
// send them whole.
//
// Thread-safe. Lock order: ReplicaStore::mu_, then this one.
#ifndef GWMIRROR_NODE_REPLICA_STAGING_H_
#define GWMIRROR_NODE_REPLICA_STAGING_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/env.h"
#include "common/manifest.h"

namespace gwmirror {

// Whether `next` needs content that `old` (the committed entry at the same
// path, if any) does not hold.
bool NeedsContent(const Entry& next, const Entry* old);

class Staging {
 public:
  struct Limits {
    // The pre-stage pool's cap, in bytes.
    uint64_t pool_cap = 0;
    // Free space the staging file system keeps (0: 5 % of it, at most
    // 1 GiB).
    uint64_t min_free_bytes = 0;
  };
  // A complete staging: its manifest and that manifest's digest.
  struct Complete {
    uint64_t checkpoint = 0;
    std::shared_ptr<const Manifest> manifest;
    std::string digest;
  };

  // `dir`: <state_dir>/replica. Empties the pool under a new id.
  static absl::StatusOr<std::unique_ptr<Staging>> Open(std::string dir,
                                                       Limits limits, Env* env);
  // At start: keeps a complete staging newer than `committed` (and made
  // against its manifest, `committed_manifest`), drops every other one.
  absl::Status Recover(uint64_t committed, const Manifest& committed_manifest)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Checkpoint `n`'s staged manifest, read back from its edit of
  // `committed` (the manifest it was staged against): DATA_LOSS when the
  // file is damaged, edits another manifest or does not give its digest.
  absl::StatusOr<Manifest> ReadStaged(uint64_t n,
                                      const Manifest& committed) const;

  uint64_t pool_id() const { return pool_id_; }
  // Commits since Open (ReplicaState.prestage_generation).
  uint64_t generation() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    return generation_;
  }
  // The checkpoint being staged (0: none).
  uint64_t checkpoint() const ABSL_LOCKS_EXCLUDED(mu_);
  // The staging once a push completed it.
  std::optional<Complete> complete() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string ObjectPath(uint64_t n, absl::string_view sha) const;
  // The staged manifest, as a ManifestEdit of the committed one.
  std::string ManifestEditPath(uint64_t n) const;
  std::string PoolPath(absl::string_view sha) const;

  // Stages checkpoint `n`: keeps what is staged for `n` already (a push
  // resumed), drops any other staging. The staging is incomplete again
  // until Finish.
  absl::Status Begin(uint64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  // RESOURCE_EXHAUSTED naming `e`'s path and the space it needs unless its
  // size fits: in the pool's cap (`prestage`), and on the file system above
  // its reserve.
  absl::Status CheckSpace(const Entry& e, bool prestage) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Links the pool's copy of `e` into checkpoint `n`'s objects: true when
  // it did; false when the pool does not hold it, and `e` is asked whole.
  absl::StatusOr<bool> TakeFromPool(uint64_t n, const Entry& e)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `e`'s verified object is in place (in the pool when `prestage`).
  void Staged(const Entry& e, bool prestage) ABSL_LOCKS_EXCLUDED(mu_);
  // `path` must come whole (its delta's basis differed).
  void AskWhole(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);
  // Completes checkpoint `n` with manifest `m` (digest `digest`) against the
  // `committed` one: FAILED_PRECONDITION naming a file that has no content
  // here; else the paths to send whole, if any, or, with every byte here,
  // syncs the objects and writes the manifest as its edit of `committed`
  // (then it is complete).
  absl::StatusOr<std::vector<std::string>> Finish(uint64_t n, Manifest m,
                                                  std::string digest,
                                                  const Manifest& committed)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Checkpoint `n` (begun) holds `objects`, written and synced by the
  // caller (a roll back from history): writes its manifest (an edit of
  // `committed`), complete.
  absl::Status Adopt(uint64_t n, std::set<std::string> objects, Manifest m,
                     std::string digest, const Manifest& committed)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the staging (its directory too).
  void Discard() ABSL_LOCKS_EXCLUDED(mu_);
  // After checkpoint `n`'s commit: drops pool versions the commit used
  // (their inodes are in the tree now) or two commits did not use, then
  // the staging.
  absl::Status Committed(uint64_t n) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Staging(std::string dir, Limits limits, Env* env)
      : dir_(std::move(dir)), limits_(limits), env_(env) {}
  std::string StagingDir(uint64_t n) const;
  void DiscardLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const Limits limits_;
  Env* const env_;
  uint64_t pool_id_ = 0;  // Random, set once in Open.

  mutable absl::Mutex mu_;
  uint64_t checkpoint_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> objects_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> resend_whole_ ABSL_GUARDED_BY(mu_);
  std::optional<Complete> complete_ ABSL_GUARDED_BY(mu_);
  // The pool: sha -> (size, commit generation when it last arrived).
  struct PoolObject {
    uint64_t size;
    uint64_t generation;
  };
  std::map<std::string, PoolObject> pool_ ABSL_GUARDED_BY(mu_);
  uint64_t pool_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_STAGING_H_
