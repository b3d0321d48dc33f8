// The coordinator's durable state, in SQLite (WAL journal, synchronous=FULL:
// a transaction that returned is on disk). Why SQLite: one embedded file,
// atomic multi-row transactions, a crash-safe journal maintained by others,
// and a CLI to inspect it on the worst day (`sqlite3 state.db`).
//
// Schema (docs/ARCHITECTURE.md, "Coordinator state"):
//   meta(key PRIMARY KEY, value)           epoch, active_site
//   checkpoints(id PRIMARY KEY, epoch, state, cut_ms, consistent_ms,
//               applied_ms, reason)        state:
//               cut|consistent|applied|aborted
//   checkpoint_slots(checkpoint, slot, digest, applied)
// Checkpoint ids only grow (max(id)+1, aborted ones included), so no id is
// ever used twice. A checkpoint becomes consistent only from "cut" (the
// commit point, in one transaction with its per-slot digests), so it cannot
// be committed twice; nothing ever deletes a consistent one.
//
// Thread-safe (one mutex around the connection).
#ifndef GWMIRROR_COORDINATOR_STATE_STORE_H_
#define GWMIRROR_COORDINATOR_STATE_STORE_H_

#include <sqlite3.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gwmirror/v1/coordinator.pb.h"

namespace gwmirror {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

class StateStore {
 public:
  // Opens or creates `path`; on creation records epoch 1 and `active_site`.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& path, const std::string& active_site);

  uint64_t Epoch() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string ActiveSite() const ABSL_LOCKS_EXCLUDED(mu_);
  // The site a promote took the active role from ("" until one did).
  std::string FencedSite() const ABSL_LOCKS_EXCLUDED(mu_);
  // Promote: in one transaction, the epoch goes up by one, `site` becomes
  // active and the former active site fenced. The new epoch.
  absl::StatusOr<uint64_t> SwitchActive(const std::string& site)
      ABSL_LOCKS_EXCLUDED(mu_);

  // A forced promote (without the coordinator) made `site` active at
  // `epoch`, higher than ours: adopt both; the former active site is fenced.
  absl::Status AdoptActive(uint64_t epoch, const std::string& site)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Rebuilds a lost state from what the nodes hold (`gwmirror-coordinator
  // recover`): the epoch, the active and fenced sites, the newest committed
  // checkpoint (recorded as applied, so new ids follow it and the RPO
  // counts from its cut) and the pins. Only into a store that has recorded
  // no checkpoint yet.
  struct Recovered {
    uint64_t epoch = 1;
    std::string active_site, fenced_site;
    uint64_t checkpoint = 0;
    int64_t cut_ms = 0;
    std::vector<uint64_t> pins;
  };
  absl::Status Recover(const Recovered& r) ABSL_LOCKS_EXCLUDED(mu_);

  // Checkpoints the operators pinned (retention on the replicas keeps
  // them); Pin adds or removes one.
  std::vector<uint64_t> Pins() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Pin(uint64_t id, bool pin) ABSL_LOCKS_EXCLUDED(mu_);

  // Records "cut N" with the next id; returns N.
  absl::StatusOr<uint64_t> BeginCut(uint64_t epoch, int64_t now_ms)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The commit point: N (which must be "cut") becomes consistent with these
  // per-slot digests (raw bytes).
  absl::Status RecordConsistent(
      uint64_t id, const std::map<std::string, std::string>& digests,
      int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);
  // `slots` applied consistent N, in one transaction; N becomes "applied"
  // with its last slot.
  absl::Status RecordApplied(uint64_t id, const std::vector<std::string>& slots,
                             int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordApplied(uint64_t id, const std::string& slot,
                             int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_) {
    return RecordApplied(id, std::vector<std::string>{slot}, now_ms);
  }
  // N (which must be "cut") is aborted for `reason`.
  absl::Status RecordAborted(uint64_t id, const std::string& reason)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<gwmirror::v1::CheckpointInfo> Get(uint64_t id) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Newest first; `committed_only`: consistent and applied ones.
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> List(
      size_t limit, bool committed_only) const ABSL_LOCKS_EXCLUDED(mu_);
  // Checkpoints in state "cut" or "consistent" (unfinished), oldest first.
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> Unfinished() const
      ABSL_LOCKS_EXCLUDED(mu_);
  // How many checkpoints are in each state.
  // Drills: an id for one starting now, its report once done, the history.
  absl::StatusOr<uint64_t> BeginDrill(int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordDrill(const gwmirror::v1::DrillReport& report)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::DrillReport>> ListDrills(
      size_t limit) const ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::map<std::string, uint64_t>> CountByState() const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Slots that have not applied consistent checkpoint `id`.
  absl::StatusOr<std::vector<std::string>> UnappliedSlots(uint64_t id) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // BEGIN IMMEDIATE, `body`, then COMMIT, or ROLLBACK when it fails.
  absl::Status Transaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> Query(
      const std::string& where, size_t limit, bool newest_first) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<sqlite3, SqliteCloser> db_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::string active_site_ ABSL_GUARDED_BY(mu_);
  std::string fenced_site_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> pins_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_STATE_STORE_H_
