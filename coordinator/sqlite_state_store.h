// The coordinator's durable state in SQLite (WAL journal, synchronous=FULL:
// a transaction that returned is on disk), the default store. Why SQLite:
// one embedded file, atomic multi-row transactions, a crash-safe journal
// maintained by others, and a CLI to inspect it on the worst day
// (`sqlite3 state.db`).
//
// Schema (docs/ARCHITECTURE.md, "Coordinator state"):
//   meta(key PRIMARY KEY, value)           epoch, active_site, fenced_site,
//                                          pins, forgotten_<state>
//   checkpoints(id PRIMARY KEY, epoch, state, cut_ms, consistent_ms,
//               applied_ms, reason, slots) state:
//               cut|consistent|applied|aborted; slots: a CheckpointSlots
//               (gwmirror/v1/state.proto), each slot's digest and
//               whether it applied the checkpoint (all did, once it is
//               applied: the marks are not rewritten then)
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
#include "gwmirror/v1/state.pb.h"

namespace gwmirror {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

// The statements a connection ran, prepared once per text and kept for
// its life (parsing one per call was an eighth of a 200-slot checkpoint's
// time). Used under the store's lock.
class PreparedStatements {
 public:
  // A statement lent out: `kept` is null for one prepared for a single use.
  struct Kept {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  struct Lent {
    sqlite3_stmt* stmt = nullptr;  // Null: `sql` did not compile.
    Kept* kept = nullptr;
  };
  explicit PreparedStatements(sqlite3* db) : db_(db) {}
  ~PreparedStatements();
  PreparedStatements(const PreparedStatements&) = delete;
  PreparedStatements& operator=(const PreparedStatements&) = delete;

  sqlite3* db() const { return db_; }
  // The statement for `sql` (its text fixed, values bound), until Give.
  Lent Take(const std::string& sql);
  // Back, reset and unbound (or finalized, if prepared for one use).
  static void Give(const Lent& lent);

 private:
  sqlite3* const db_;
  std::map<std::string, Kept> kept_;
};

class SqliteStateStore : public StateStore {
 public:
  // Opens or creates `path`; on creation records epoch 1 and `active_site`.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> Open(
      const std::string& path, const std::string& active_site);
  ~SqliteStateStore() override;

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
  absl::StatusOr<gwmirror::v1::CheckpointInfo> Newest(
      bool committed_only) const override ABSL_LOCKS_EXCLUDED(mu_);
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
  absl::StatusOr<uint64_t> Forget(uint64_t below,
                                  const std::set<uint64_t>& keep) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<std::string>> UnappliedSlots(
      uint64_t id) const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Contents> Export() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Import(const Contents& contents) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit SqliteStateStore(sqlite3* db)
      : db_(db), prepared_(std::make_unique<PreparedStatements>(db)) {}
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves a state of an earlier layout (a checkpoint_slots table, a row
  // per slot) into the slots column.
  absl::Status MigrateSlotRows() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the forgotten_<state> meta keys.
  absl::Status WriteForgotten(const std::map<std::string, uint64_t>& forgotten)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checkpoint `id`'s slots, each marked applied if the checkpoint is;
  // NOT_FOUND for no such checkpoint.
  absl::StatusOr<gwmirror::v1::CheckpointSlots> SlotsOf(uint64_t id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // BEGIN IMMEDIATE, `body`, then COMMIT, or ROLLBACK when it fails.
  absl::Status Transaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checkpoints matching `where` (fixed text; ?2 in it is `arg`), with
  // their per-slot digests if `digests`.
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> Query(
      const std::string& where, size_t limit, bool newest_first,
      int64_t arg = 0, bool digests = true) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<sqlite3, SqliteCloser> db_ ABSL_GUARDED_BY(mu_);
  // Declared after `db_`: finalized before it closes.
  const std::unique_ptr<PreparedStatements> prepared_ ABSL_PT_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::string active_site_ ABSL_GUARDED_BY(mu_);
  std::string fenced_site_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> pins_ ABSL_GUARDED_BY(mu_);
  // Forgotten records by state (meta keys forgotten_<state>).
  std::map<std::string, uint64_t> forgotten_ ABSL_GUARDED_BY(mu_);
  // flock(LOCK_EX) on <path>.lock for as long as the store is open.
  UniqueFd lock_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_SQLITE_STATE_STORE_H_
