// The standby side of one slot: the committed tree (the real install paths
// under the host root), the checkpoint being staged, and the redo journal
// that makes Commit atomic across a crash.
//
// Disk layout under <state_dir>/replica (docs/ARCHITECTURE.md):
//   committed   checkpoint id + manifest of the tree (GWMF file, atomic)
//   epoch       highest fencing epoch seen
//   applying    redo intent: "checkpoint digest" while a commit runs
//   staging/, prestage/             the staging area (staging.h), written
//                                   by push sessions (push_session.h)
//   drift.index                     stat index of the last drift check
//   history/                        retained older checkpoints (history.h)
// Recovery (Open): an `applying` intent is finished before anything else;
// a completely staged checkpoint (its manifest written) is kept, because the
// coordinator may already have recorded it consistent; every other staging
// directory is discarded. After a restart the tree equals exactly one
// committed checkpoint and no partial staging file lingers.
//
// Thread-safe: one mutex; one push session at a time.
#ifndef GWMIRROR_NODE_REPLICA_STORE_H_
#define GWMIRROR_NODE_REPLICA_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/chunk_codec.h"
#include "common/delta.h"
#include "common/entropy.h"
#include "common/epoch.h"
#include "common/fd.h"
#include "common/manifest.h"
#include "common/manifest_delta.h"
#include "common/sha256.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/replica.pb.h"
#include "node/replica/committed_log.h"
#include "node/replica/history.h"
#include "node/replica/push_session.h"
#include "node/replica/staging.h"
#include "node/replica/tree_writer.h"
#include "node/scanner.h"

namespace gwmirror {

class ReplicaStore {
 public:
  // Opens (and recovers) the store of `config`. Adopts the tree found under
  // the roots as checkpoint 0 when nothing was ever committed.
  // Every file operation goes through `env`. Without `keeper` no background
  // thread maintains the history (tests call MaintainHistory themselves).
  static absl::StatusOr<std::unique_ptr<ReplicaStore>> Open(
      const gwmirror::v1::NodeConfig& config, Env* env = Env::Default(),
      bool keeper = true);
  ~ReplicaStore();

  gwmirror::v1::ReplicaState State() const ABSL_LOCKS_EXCLUDED(mu_);
  // The committed checkpoint's id and manifest, taken together.
  std::pair<uint64_t, Manifest> CommittedSnapshot() const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens a committed file of the tree for reading (no symlink followed).
  absl::StatusOr<UniqueFd> OpenCommittedFile(const std::string& path) const {
    return writer_.OpenFileForRead(path);
  }
  Manifest CommittedManifest() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<Entry> CommittedEntry(const std::string& path) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses an epoch older than the highest seen (FAILED_PRECONDITION naming
  // both); adopts and persists a newer one that is 1 or comes with its
  // proof (EpochFile::Check), else PERMISSION_DENIED.
  absl::Status CheckEpoch(const gwmirror::v1::Envelope& e)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The epoch file (for verifying a grant against its authority).
  const EpochFile& epoch() const { return *epoch_; }
  const std::string& site() const { return site_; }

  // Starts staging `begin.checkpoint` (or a pre-stage push into the pool).
  // ABORTED when another push (or a roll back) runs or the base is not the
  // committed checkpoint.
  absl::StatusOr<std::unique_ptr<PushSession>> BeginPush(
      const gwmirror::v1::PushBegin& begin) ABSL_LOCKS_EXCLUDED(mu_);

  // Streams the signature of the committed file `path`, which must hold
  // `sha256`.
  absl::Status Signature(const std::string& path, absl::string_view sha256,
                         uint32_t block_len, const ByteSink& sink)
      ABSL_LOCKS_EXCLUDED(mu_);

  // How the first kEntropySample bytes of the committed file `path` look;
  // NOT_FOUND when the committed checkpoint holds no file there with
  // `sha256`.
  absl::StatusOr<ContentLook> SampleContent(const std::string& path,
                                            absl::string_view sha256)
      ABSL_LOCKS_EXCLUDED(mu_);

  // `pinned`: checkpoints retention must keep (from the coordinator).
  absl::Status Commit(uint64_t checkpoint, absl::string_view digest,
                      const std::vector<uint64_t>& pinned = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Abort(uint64_t checkpoint) ABSL_LOCKS_EXCLUDED(mu_);

  // Drift check: scans the standby tree (re-hashing every file when
  // `rehash`, else only files whose stat changed since the last check) and
  // compares it with the committed manifest. Entries that differ (edited,
  // deleted or added by hand on the standby) are recorded as they really
  // are in the committed manifest, so the source's next cut sends exactly
  // what repairs them; `drifted_entries` in State() counts them until a
  // commit. Skipped (returns -1) while a push or commit is under way.
  // With `record` false, only reports (into `paths`, when given).
  absl::StatusOr<int64_t> CheckDrift(bool rehash, bool record = true,
                                     std::vector<std::string>* paths = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Point-in-time history (history.h). The committed checkpoint is always
  // retained.
  const History& history() const { return *history_; }
  History& history() { return *history_; }
  // Retention, compaction and (when due) garbage collection; runs by itself
  // in the background after commits and every minute.
  absl::Status MaintainHistory(bool gc = false);
  // Brings the tree to the retained checkpoint `n` (older than the
  // committed one) through the redo journal, as a commit does: a promote to
  // an older checkpoint.
  absl::Status Rollback(uint64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  // Re-hashes the whole tree against the committed checkpoint and re-reads
  // every stored increment; with `repair`, differing standby entries are
  // recorded as drift (the next cut replaces them from the source) and
  // damaged increments the tree still holds are re-encoded.
  absl::StatusOr<gwmirror::v1::VerifyResult> Verify(bool repair)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens a committed tree file that should hold `sha` (History's lookup).
  absl::StatusOr<UniqueFd> OpenBySha(const std::string& sha) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Roles. A node that can be a source keeps this store over its own live
  // tree; while it is the source (or before it knows), the committed
  // manifest says nothing about that tree, so pushes are refused
  // (UNAVAILABLE) until Readopt() has re-read it: then the new source's
  // first push is a delta against what is really there.
  void MarkStale() ABSL_LOCKS_EXCLUDED(mu_);
  bool stale() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Readopt() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ReplicaStore(const gwmirror::v1::NodeConfig& config, TreeWriter writer,
               Env* env);

  std::string Dir() const { return state_dir_ + "/replica"; }
  std::unique_ptr<PushSession> NewSession(uint64_t checkpoint, bool prestage,
                                          bool manifest_delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Recover() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Apply(uint64_t n, const Manifest& next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FinishCommit(uint64_t n, const Manifest& next,
                            std::string digest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Preserve (history), then Apply.
  absl::Status PreserveAndApply(uint64_t n, const Manifest& next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KeeperLoop();
  void EndSession() ABSL_LOCKS_EXCLUDED(mu_);

  Env* const env_;
  const std::string state_dir_;
  const std::string site_;
  const std::vector<std::string> roots_;
  const std::string host_root_;
  const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>
      root_configs_;
  // Manifest bytes one push may buffer.
  const uint64_t max_manifest_bytes_;
  // Files at least this big are staged, and read as a basis or for a
  // signature, with O_DIRECT.
  const uint64_t direct_min_bytes_;
  const TreeWriter writer_;
  std::unique_ptr<Staging> staging_;  // Set once in Open.
  // The committed manifest on disk (snapshot and journal).
  std::unique_ptr<CommittedLog> log_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex mu_;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;
  Manifest committed_manifest_ ABSL_GUARDED_BY(mu_);
  std::string committed_digest_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<EpochFile> epoch_;  // Set once in Open.
  bool push_active_ ABSL_GUARDED_BY(mu_) = false;
  // A commit failed half way (an I/O error); only retrying it is allowed.
  bool applying_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t drifted_entries_ ABSL_GUARDED_BY(mu_) = 0;
  bool stale_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> pinned_ ABSL_GUARDED_BY(mu_);
  uint64_t scrub_problems_ ABSL_GUARDED_BY(mu_) = 0;
  // For OpenBySha, which History calls with its own lock held, so it must
  // not take mu_: the committed manifest as last published and a map
  // sha -> a path holding it, built on first use. Order: mu_, then sha_mu_.
  void PublishCommitted() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable absl::Mutex sha_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::shared_ptr<const Manifest> sha_source_ ABSL_GUARDED_BY(sha_mu_);
  mutable std::map<std::string, std::string> sha_paths_
      ABSL_GUARDED_BY(sha_mu_);
  mutable bool sha_paths_built_ ABSL_GUARDED_BY(sha_mu_) = false;
  std::unique_ptr<History> history_;  // Set once in Open.
  // The history keeper: Maintain after commits and every minute, scrub.
  const uint32_t scrub_interval_ms_;
  absl::Mutex keeper_mu_;
  bool keeper_kick_ ABSL_GUARDED_BY(keeper_mu_) = false;
  bool keeper_stop_ ABSL_GUARDED_BY(keeper_mu_) = false;
  std::thread keeper_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_STORE_H_
