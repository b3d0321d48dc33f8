// The replica's committed manifest on disk: a snapshot (`committed`, a GWMF
// manifest file) and a journal of the commits since (`committed.journal`: a
// header naming the snapshot's digest, then one ManifestEdit per commit,
// each after its length as 4 bytes little-endian). A commit appends what
// changed and syncs it: a one-file change among 19,000 writes a few hundred
// bytes, not the 2.6 MB manifest. The journal is folded into a new snapshot
// once it outgrows half the snapshot (or 1024 records), so reading it back at a
// start stays bounded.
#ifndef GWMIRROR_NODE_REPLICA_COMMITTED_LOG_H_
#define GWMIRROR_NODE_REPLICA_COMMITTED_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/env.h"
#include "common/fd.h"
#include "common/manifest.h"
#include "common/manifest_edit.h"

namespace gwmirror {

class CommittedLog {
 public:
  // Reads the snapshot in `dir` and replays its journal into `out`. A torn
  // last record (power lost while it was appended: its commit did not
  // finish) is cut off; damage before the last record is DATA_LOSS, as is
  // a journal whose result differs from its last record's digest. A journal
  // that names another snapshot (a fold cut short) is dropped.
  // NOT_FOUND when there is no snapshot (a first start).
  static absl::StatusOr<std::unique_ptr<CommittedLog>> Open(
      const std::string& dir, Env* env, ManifestFile* out);
  // A new snapshot of checkpoint `n` (a first start, a recorded drift);
  // the journal is emptied after it.
  static absl::StatusOr<std::unique_ptr<CommittedLog>> Create(
      const std::string& dir, Env* env, uint64_t n, const Manifest& m);

  // Records commit `edit` (whose result is `result`) durably; folds the
  // journal into a new snapshot when it has grown too long.
  absl::Status Append(const ManifestEdit& edit, const Manifest& result);
  // Replaces everything with a snapshot of `m` as checkpoint `n`.
  absl::Status Snapshot(uint64_t n, const Manifest& m);

  uint64_t journal_bytes() const { return journal_bytes_; }
  uint64_t journal_records() const { return journal_records_; }

 private:
  CommittedLog(std::string dir, Env* env) : dir_(std::move(dir)), env_(env) {}
  std::string SnapshotPath() const { return dir_ + "/committed"; }
  std::string JournalPath() const { return dir_ + "/committed.journal"; }
  absl::Status OpenJournal();
  // Empties the journal down to its header naming the snapshot.
  absl::Status Reset(const std::string& snapshot_digest);

  const std::string dir_;
  Env* const env_;
  UniqueFd journal_;
  uint64_t journal_bytes_ = 0;
  uint64_t journal_records_ = 0;
  uint64_t snapshot_bytes_ = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_COMMITTED_LOG_H_
