// The coordinator's durable state in SQLite (WAL journal, synchronous=FULL:
// a transaction that returned is on disk), the default store. Why SQLite:
// one embedded file, atomic multi-row transactions, a crash-safe journal
// maintained by others, and a CLI to inspect it on the worst day
// (`sqlite3 state.db`).
//
// Schema (docs/ARCHITECTURE.md, "Coordinator state"):
//   meta(key PRIMARY KEY, value)           epoch, active_site, fenced_site,
//                                          pins
//   checkpoints(id PRIMARY KEY, epoch, state, cut_ms, consistent_ms,
//               applied_ms, reason)        state:
//               cut|consistent|applied|aborted
//   checkpoint_slots(checkpoint, slot, digest, applied)
//   drills(id PRIMARY KEY, started_ms, report)
//
// Thread-safe (one mutex around the connection).
#ifndef GWMIRROR_COORDINATOR_SQLITE_STATE_STORE_H_
#define GWMIRROR_COORDINATOR_SQLITE_STATE_STORE_H_

#include <sqlite3.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/fd.h"
#include "coordinator/state_store.h"

namespace gwmirror {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

class SqliteStateStore : public StateStore {
 public:
  // Opens or creates `path`; on creation records epoch 1 and `active_site`.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> Open(
      const std::string& path, const std::string& active_site);

  // StateStore:
  uint64_t Epoch() const override ABSL_LOCKS_EXCLUDED(mu_);
  std::string ActiveSite() const override ABSL_LOCKS_EXCLUDED(mu_);
  std::string FencedSite() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> SwitchActive(const std::string& site) override
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status AdoptActive(uint64_t epoch, const std::string& site) override
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status Recover(const Recovered& r) override ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<uint64_t> Pins() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Pin(uint64_t id, bool pin) override ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<uint64_t> BeginCut(uint64_t epoch, int64_t now_ms) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordConsistent(
      uint64_t id, const std::map<std::string, std::string>& digests,
      int64_t now_ms) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordApplied(uint64_t id, const std::vector<std::string>& slots,
                             int64_t now_ms) override ABSL_LOCKS_EXCLUDED(mu_);
  using StateStore::RecordApplied;
  absl::Status RecordAborted(uint64_t id, const std::string& reason) override
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<gwmirror::v1::CheckpointInfo> Get(uint64_t id) const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> List(
      size_t limit, bool committed_only) const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> Unfinished()
      const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> BeginDrill(int64_t now_ms) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordDrill(const gwmirror::v1::DrillReport& report) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::DrillReport>> ListDrills(
      size_t limit) const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::map<std::string, uint64_t>> CountByState() const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<std::string>> UnappliedSlots(
      uint64_t id) const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Contents> Export() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Import(const Contents& contents) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit SqliteStateStore(sqlite3* db) : db_(db) {}
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
  // flock(LOCK_EX) on <path>.lock for as long as the store is open.
  UniqueFd lock_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_SQLITE_STATE_STORE_H_
