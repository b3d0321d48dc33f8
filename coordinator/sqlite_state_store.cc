#include "coordinator/sqlite_state_store.h"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/fault.h"
#include "common/fd.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

// The states as the database spells them (a disk format: words).
gwmirror::v1::CheckpointState StateOfText(const std::string& t) {
  if (t == "cut") return gwmirror::v1::CHECKPOINT_STATE_CUT;
  if (t == "consistent") return gwmirror::v1::CHECKPOINT_STATE_CONSISTENT;
  if (t == "applied") return gwmirror::v1::CHECKPOINT_STATE_APPLIED;
  if (t == "aborted") return gwmirror::v1::CHECKPOINT_STATE_ABORTED;
  return gwmirror::v1::CHECKPOINT_STATE_UNSPECIFIED;
}

// Meta keys counting forgotten records: forgotten_applied, ...
constexpr char kForgotten[] = "forgotten_";

// Checkpoints that reached the commit point.
constexpr char kCommitted[] = "state IN ('consistent', 'applied')";

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("coordinator state: ", what, ": ", sqlite3_errmsg(db)));
}

// One statement, borrowed from the store's prepared ones for as long as it
// lives, and ready to run again (reset, unbound) when it dies.
class Statement {
 public:
  Statement(PreparedStatements& prepared, const std::string& sql)
      : db_(prepared.db()),
        lent_(prepared.Take(sql)),
        rc_(lent_.stmt == nullptr ? SQLITE_ERROR : SQLITE_OK) {}
  ~Statement() { PreparedStatements::Give(lent_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status ok() const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqlError(db_, "prepare");
  }
  Statement& Bind(int i, int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(lent_.stmt, i, v);
    return *this;
  }
  Statement& Bind(int i, const std::string& v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_blob(lent_.stmt, i, v.data(),
                              static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    return *this;
  }
  Statement& BindText(int i, const std::string& v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text(lent_.stmt, i, v.data(),
                              static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    return *this;
  }
  // true: a row is ready; false: done.
  absl::StatusOr<bool> Step() {
    RETURN_IF_ERROR(ok());
    int rc = sqlite3_step(lent_.stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, "step");
  }
  int64_t Int(int col) const { return sqlite3_column_int64(lent_.stmt, col); }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(lent_.stmt, col);
    int n = sqlite3_column_bytes(lent_.stmt, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p), n);
  }
  int Changes() const { return sqlite3_changes(db_); }
  // Ready to run again, with new bindings (one statement for a loop).
  Statement& Reset() {
    sqlite3_reset(lent_.stmt);
    sqlite3_clear_bindings(lent_.stmt);
    return *this;
  }

 private:
  sqlite3* db_;
  const PreparedStatements::Lent lent_;
  int rc_;
};

// A checkpoint's slots column, read.
absl::StatusOr<gwmirror::v1::CheckpointSlots> ParseSlots(
    uint64_t id, const std::string& blob) {
  gwmirror::v1::CheckpointSlots slots;
  if (!slots.ParseFromString(blob)) {
    return absl::DataLossError(absl::StrCat("coordinator state: checkpoint ",
                                            id, ": unreadable slot digests"));
  }
  return slots;
}

absl::Status Run(Statement& st) {
  ASSIGN_OR_RETURN(bool row, st.Step());
  (void)row;
  return absl::OkStatus();
}

}  // namespace

PreparedStatements::~PreparedStatements() {
  for (auto& [sql, p] : kept_) sqlite3_finalize(p.stmt);
}

PreparedStatements::Lent PreparedStatements::Take(const std::string& sql) {
  auto it = kept_.find(sql);
  if (it != kept_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Lent{it->second.stmt, &it->second};
  }
  // The same text in use twice at once (a statement run inside another's
  // loop): the second is prepared for that use alone.
  const bool keep = it == kept_.end();
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1,
                         keep ? SQLITE_PREPARE_PERSISTENT : 0, &stmt,
                         nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Lent{};
  }
  if (!keep) return Lent{stmt, nullptr};
  Kept& k = kept_[sql];
  k = Kept{stmt, true};
  return Lent{stmt, &k};
}

void PreparedStatements::Give(const Lent& lent) {
  if (lent.kept == nullptr) {
    sqlite3_finalize(lent.stmt);
    return;
  }
  sqlite3_reset(lent.stmt);
  sqlite3_clear_bindings(lent.stmt);
  lent.kept->in_use = false;
}

SqliteStateStore::~SqliteStateStore() = default;

absl::StatusOr<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(
    const std::string& path, const std::string& active_site) {
  // One process at a time: a second coordinator (or a migration) on a
  // state in use is refused, not interleaved with it.
  const std::string lock_path = path + ".lock";
  UniqueFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.valid())
    return ErrnoStatus(errno, absl::StrCat("open ", lock_path));
  if (flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the coordinator state ", path,
          " is in use by another process (a running coordinator?); stop it "
          "first"));
    }
    return ErrnoStatus(errno, absl::StrCat("lock ", lock_path));
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
      nullptr);
  std::unique_ptr<SqliteStateStore> s(new SqliteStateStore(raw));
  s->lock_ = std::move(lock);
  absl::MutexLock l(&s->mu_);
  if (rc != SQLITE_OK) return SqlError(raw, absl::StrCat("open ", path));
  sqlite3_busy_timeout(raw, 5000);
  RETURN_IF_ERROR(s->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(s->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(s->Exec(
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT "
      "NULL);"
      "CREATE TABLE IF NOT EXISTS checkpoints(id INTEGER PRIMARY KEY, "
      " epoch INTEGER NOT NULL, state TEXT NOT NULL, cut_ms INTEGER NOT NULL, "
      " consistent_ms INTEGER NOT NULL DEFAULT 0, "
      " applied_ms INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT "
      "'', slots BLOB NOT NULL DEFAULT x'');"
      "CREATE TABLE IF NOT EXISTS drills(id INTEGER PRIMARY KEY, "
      " started_ms INTEGER NOT NULL, report BLOB NOT NULL);"
      // Every checkpoint looks for unfinished ones: a look at those
      // alone, not at every checkpoint ever recorded.
      "CREATE INDEX IF NOT EXISTS checkpoints_unfinished ON checkpoints(id) "
      " WHERE state IN ('cut', 'consistent');"));
  RETURN_IF_ERROR(s->MigrateSlotRows());
  {
    Statement ins(*s->prepared_,
                  "INSERT OR IGNORE INTO meta(key, value) VALUES "
                  "('epoch', '1'), ('active_site', ?1)");
    ins.BindText(1, active_site);
    RETURN_IF_ERROR(Run(ins));
  }
  Statement q(*s->prepared_, "SELECT key, value FROM meta");
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    std::string key = q.Text(0), value = q.Text(1);
    if (key == "epoch" && !absl::SimpleAtoi(value, &s->epoch_)) {
      return absl::DataLossError(
          absl::StrCat(path, ": epoch \"", value, "\" is not a number"));
    }
    if (key == "active_site") s->active_site_ = value;
    if (absl::StartsWith(key, kForgotten) &&
        !absl::SimpleAtoi(value,
                          &s->forgotten_[key.substr(strlen(kForgotten))])) {
      return absl::DataLossError(
          absl::StrCat(path, ": ", key, " \"", value, "\" is not a number"));
    }
    if (key == "fenced_site") s->fenced_site_ = value;
    if (key == "pins") {
      for (absl::string_view v :
           absl::StrSplit(value, ',', absl::SkipEmpty())) {
        uint64_t n = 0;
        if (!absl::SimpleAtoi(v, &n)) {
          return absl::DataLossError(
              absl::StrCat(path, ": pins \"", value, "\" are not numbers"));
        }
        s->pins_.insert(n);
      }
    }
  }
  return s;
}

absl::Status SqliteStateStore::MigrateSlotRows() {
  // A state written before the slots column (a row per slot in a table of
  // their own): moved into the column in one transaction, then the table
  // dropped. Nothing to do for a state made since.
  // (Each look is done with, reset, before the table changes.)
  auto count = [&](const char* sql) -> absl::StatusOr<int64_t> {
    Statement q(*prepared_, sql);
    ASSIGN_OR_RETURN(bool row, q.Step());
    return row ? q.Int(0) : 0;
  };
  ASSIGN_OR_RETURN(int64_t old,
                   count("SELECT COUNT(*) FROM sqlite_master WHERE type = "
                         "'table' AND name = 'checkpoint_slots'"));
  if (old == 0) return absl::OkStatus();
  return Transaction([&]() -> absl::Status {
    ASSIGN_OR_RETURN(int64_t has,
                     count("SELECT COUNT(*) FROM pragma_table_info("
                           "'checkpoints') WHERE name = 'slots'"));
    if (has == 0) {
      Statement add(*prepared_,
                    "ALTER TABLE checkpoints ADD COLUMN slots BLOB NOT NULL "
                    "DEFAULT x''");
      RETURN_IF_ERROR(Run(add));
    }
    Statement rows(*prepared_,
                   "SELECT checkpoint, slot, digest, applied FROM "
                   "checkpoint_slots ORDER BY checkpoint, slot");
    Statement up(*prepared_, "UPDATE checkpoints SET slots = ?2 WHERE id = ?1");
    gwmirror::v1::CheckpointSlots slots;
    int64_t id = 0;
    auto flush = [&]() -> absl::Status {
      if (slots.slots().empty()) return absl::OkStatus();
      up.Reset().Bind(1, id).Bind(2, slots.SerializeAsString());
      RETURN_IF_ERROR(Run(up));
      slots.Clear();
      return absl::OkStatus();
    };
    for (;;) {
      ASSIGN_OR_RETURN(bool more, rows.Step());
      if (!more || rows.Int(0) != id) RETURN_IF_ERROR(flush());
      if (!more) break;
      id = rows.Int(0);
      gwmirror::v1::CheckpointSlots::Slot* s = slots.add_slots();
      s->set_slot(rows.Text(1));
      s->set_digest(rows.Text(2));
      s->set_applied(rows.Int(3) != 0);
    }
    Statement drop(*prepared_, "DROP TABLE checkpoint_slots");
    return Run(drop);
  });
}

absl::Status SqliteStateStore::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) !=
      SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("coordinator state: ", msg));
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::Transaction(
    const std::function<absl::Status()>& body) {
  Statement begin(*prepared_, "BEGIN IMMEDIATE");
  RETURN_IF_ERROR(Run(begin));
  absl::Status st = body();
  if (!st.ok()) {
    Statement rollback(*prepared_, "ROLLBACK");
    (void)Run(rollback);
    return st;
  }
  Statement commit(*prepared_, "COMMIT");
  return Run(commit);
}

uint64_t SqliteStateStore::Epoch() const {
  absl::MutexLock l(&mu_);
  return epoch_;
}

std::string SqliteStateStore::ActiveSite() const {
  absl::MutexLock l(&mu_);
  return active_site_;
}

std::string SqliteStateStore::FencedSite() const {
  absl::MutexLock l(&mu_);
  return fenced_site_;
}

absl::StatusOr<uint64_t> SqliteStateStore::SwitchActive(
    const std::string& site) {
  absl::MutexLock l(&mu_);
  if (site == active_site_) {
    return absl::FailedPreconditionError(
        absl::StrCat("site ", site, " is active already"));
  }
  const uint64_t epoch = epoch_ + 1;
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    Statement up(*prepared_,
                 "INSERT OR REPLACE INTO meta(key, value) VALUES "
                 "('epoch', ?1), ('active_site', ?2), ('fenced_site', ?3)");
    up.BindText(1, absl::StrCat(epoch))
        .BindText(2, site)
        .BindText(3, active_site_);
    return Run(up);
  }));
  fenced_site_ = active_site_;
  active_site_ = site;
  epoch_ = epoch;
  return epoch;
}

absl::Status SqliteStateStore::AdoptActive(uint64_t epoch,
                                           const std::string& site) {
  absl::MutexLock l(&mu_);
  if (epoch <= epoch_) return absl::OkStatus();
  const std::string fenced = site == active_site_ ? fenced_site_ : active_site_;
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    Statement up(*prepared_,
                 "INSERT OR REPLACE INTO meta(key, value) VALUES "
                 "('epoch', ?1), ('active_site', ?2), ('fenced_site', ?3)");
    up.BindText(1, absl::StrCat(epoch)).BindText(2, site).BindText(3, fenced);
    return Run(up);
  }));
  epoch_ = epoch;
  active_site_ = site;
  fenced_site_ = fenced;
  return absl::OkStatus();
}

absl::Status SqliteStateStore::Recover(const Recovered& r) {
  absl::MutexLock l(&mu_);
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    Statement count(*prepared_, "SELECT COUNT(*) FROM checkpoints");
    ASSIGN_OR_RETURN(bool row, count.Step());
    if (row && count.Int(0) != 0) {
      return absl::FailedPreconditionError(
          "the coordinator state already records checkpoints: recover only "
          "rebuilds a lost state (move the old state.db away first)");
    }
    Statement up(*prepared_,
                 "INSERT OR REPLACE INTO meta(key, value) VALUES "
                 "('epoch', ?1), ('active_site', ?2), ('fenced_site', ?3), "
                 "('pins', ?4)");
    up.BindText(1, absl::StrCat(r.epoch))
        .BindText(2, r.active_site)
        .BindText(3, r.fenced_site)
        .BindText(4, absl::StrJoin(r.pins, ","));
    RETURN_IF_ERROR(Run(up));
    if (r.checkpoint == 0) return absl::OkStatus();
    Statement ins(
        *prepared_,
        "INSERT INTO checkpoints(id, epoch, state, cut_ms, "
        "consistent_ms, applied_ms, reason) VALUES "
        "(?1, ?2, 'applied', ?3, ?3, ?3, 'recovered from the nodes')");
    ins.Bind(1, static_cast<int64_t>(r.checkpoint))
        .Bind(2, static_cast<int64_t>(r.epoch))
        .Bind(3, r.cut_ms);
    return Run(ins);
  }));
  epoch_ = r.epoch;
  active_site_ = r.active_site;
  fenced_site_ = r.fenced_site;
  pins_ = {r.pins.begin(), r.pins.end()};
  return absl::OkStatus();
}

std::vector<uint64_t> SqliteStateStore::Pins() const {
  absl::MutexLock l(&mu_);
  return {pins_.begin(), pins_.end()};
}

absl::Status SqliteStateStore::Pin(uint64_t id, bool pin) {
  absl::MutexLock l(&mu_);
  std::set<uint64_t> next = pins_;
  if (pin) {
    next.insert(id);
  } else {
    next.erase(id);
  }
  Statement up(*prepared_,
               "INSERT OR REPLACE INTO meta(key, value) VALUES ('pins', ?1)");
  up.BindText(1, absl::StrJoin(next, ","));
  RETURN_IF_ERROR(Run(up));
  pins_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteStateStore::BeginCut(uint64_t epoch,
                                                    int64_t now_ms) {
  absl::MutexLock l(&mu_);
  Statement st(
      *prepared_,
      "INSERT INTO checkpoints(id, epoch, state, cut_ms) "
      "SELECT COALESCE(MAX(id), 0) + 1, ?1, 'cut', ?2 FROM checkpoints "
      "RETURNING id");
  st.Bind(1, static_cast<int64_t>(epoch)).Bind(2, now_ms);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return SqlError(db_.get(), "insert checkpoint");
  uint64_t id = st.Int(0);
  ASSIGN_OR_RETURN(row, st.Step());
  return id;
}

absl::Status SqliteStateStore::RecordConsistent(
    uint64_t id, const std::map<std::string, std::string>& digests,
    int64_t now_ms) {
  absl::MutexLock l(&mu_);
  return Transaction([&]() -> absl::Status {
    gwmirror::v1::CheckpointSlots slots;
    for (const auto& [slot, digest] : digests) {  // By slot name.
      gwmirror::v1::CheckpointSlots::Slot* s = slots.add_slots();
      s->set_slot(slot);
      s->set_digest(digest);
    }
    Statement up(*prepared_,
                 "UPDATE checkpoints SET state = 'consistent', "
                 "consistent_ms = ?2, slots = ?3 WHERE id = ?1 AND state = "
                 "'cut'");
    up.Bind(1, static_cast<int64_t>(id))
        .Bind(2, now_ms)
        .Bind(3, slots.SerializeAsString());
    RETURN_IF_ERROR(Run(up));
    if (up.Changes() != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", id,
                       " is not an open cut; it cannot become consistent"));
    }
    // A crash here leaves the transaction uncommitted: N stays a cut.
    return FaultPoint("coordinator:commit-point");
  });
}

absl::Status SqliteStateStore::RecordApplied(
    uint64_t id, const std::vector<std::string>& slots, int64_t now_ms) {
  absl::MutexLock l(&mu_);
  return Transaction([&]() -> absl::Status {
    ASSIGN_OR_RETURN(gwmirror::v1::CheckpointSlots all, SlotsOf(id));
    for (const std::string& slot : slots) {
      auto it = std::lower_bound(all.mutable_slots()->begin(),
                                 all.mutable_slots()->end(), slot,
                                 [](const auto& s, const std::string& name) {
                                   return s.slot() < name;
                                 });
      if (it == all.mutable_slots()->end() || it->slot() != slot) {
        return absl::FailedPreconditionError(
            absl::StrCat("checkpoint ", id, " has no slot \"", slot, "\""));
      }
      it->set_applied(true);
    }
    const bool everywhere =
        std::all_of(all.slots().begin(), all.slots().end(),
                    [](const auto& s) { return s.applied(); });
    if (everywhere) {
      // N becomes applied with its last slot (only from consistent); its
      // state says every slot applied it, so the column stays as it was.
      Statement up(*prepared_,
                   "UPDATE checkpoints SET state = 'applied', applied_ms = ?2 "
                   "WHERE id = ?1 AND state = 'consistent'");
      up.Bind(1, static_cast<int64_t>(id)).Bind(2, now_ms);
      return Run(up);
    }
    Statement up(*prepared_, "UPDATE checkpoints SET slots = ?2 WHERE id = ?1");
    up.Bind(1, static_cast<int64_t>(id)).Bind(2, all.SerializeAsString());
    return Run(up);
  });
}

absl::StatusOr<gwmirror::v1::CheckpointSlots> SqliteStateStore::SlotsOf(
    uint64_t id) const {
  Statement q(*prepared_, "SELECT slots, state FROM checkpoints WHERE id = ?1");
  q.Bind(1, static_cast<int64_t>(id));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no checkpoint ", id));
  ASSIGN_OR_RETURN(gwmirror::v1::CheckpointSlots slots,
                   ParseSlots(id, q.Text(0)));
  // An applied checkpoint was applied by every slot, whatever the marks.
  if (q.Text(1) == "applied") {
    for (auto& s : *slots.mutable_slots()) s.set_applied(true);
  }
  return slots;
}

absl::Status SqliteStateStore::RecordAborted(uint64_t id,
                                             const std::string& reason) {
  absl::MutexLock l(&mu_);
  Statement up(*prepared_,
               "UPDATE checkpoints SET state = 'aborted', reason = ?2 "
               "WHERE id = ?1 AND state = 'cut'");
  up.Bind(1, static_cast<int64_t>(id)).BindText(2, reason);
  RETURN_IF_ERROR(Run(up));
  if (up.Changes() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", id, " is not an open cut; cannot abort it"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>>
SqliteStateStore::Query(const std::string& where, size_t limit,
                        bool newest_first, int64_t arg, bool digests) const {
  std::vector<gwmirror::v1::CheckpointInfo> out;
  Statement q(*prepared_,
              absl::StrCat("SELECT id, epoch, state, cut_ms, consistent_ms, "
                           "applied_ms, reason, ",
                           digests ? "slots" : "x''",
                           " FROM checkpoints WHERE ", where, " ORDER BY id ",
                           newest_first ? "DESC" : "ASC", " LIMIT ?1"));
  q.Bind(1, static_cast<int64_t>(
                std::min<size_t>(limit, std::numeric_limits<int64_t>::max())));
  if (where.find("?2") != std::string::npos) q.Bind(2, arg);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    gwmirror::v1::CheckpointInfo c;
    c.set_id(q.Int(0));
    c.set_epoch(q.Int(1));
    c.set_state(StateOfText(q.Text(2)));
    c.set_cut_unix_ms(q.Int(3));
    c.set_consistent_unix_ms(q.Int(4));
    c.set_applied_unix_ms(q.Int(5));
    c.set_reason(q.Text(6));
    ASSIGN_OR_RETURN(gwmirror::v1::CheckpointSlots slots,
                     ParseSlots(c.id(), q.Text(7)));
    for (const auto& slot : slots.slots()) {
      (*c.mutable_digests())[slot.slot()] =
          absl::BytesToHexString(slot.digest());
    }
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<gwmirror::v1::CheckpointInfo> SqliteStateStore::Get(
    uint64_t id) const {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto v, Query("id = ?2", 1, true, static_cast<int64_t>(id)));
  if (v.empty()) return absl::NotFoundError(absl::StrCat("no checkpoint ", id));
  return std::move(v.front());
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>>
SqliteStateStore::List(size_t limit, bool committed_only) const {
  absl::MutexLock l(&mu_);
  return Query(committed_only ? kCommitted : "1", limit, true);
}

absl::StatusOr<gwmirror::v1::CheckpointInfo> SqliteStateStore::Newest(
    bool committed_only) const {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto v,
                   Query(committed_only ? kCommitted : "1", 1, true, 0, false));
  if (v.empty()) return absl::NotFoundError("no checkpoint yet");
  return std::move(v.front());
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>>
SqliteStateStore::Unfinished() const {
  absl::MutexLock l(&mu_);
  return Query("state IN ('cut', 'consistent')", 1000000, false);
}

absl::StatusOr<std::map<std::string, uint64_t>> SqliteStateStore::CountByState()
    const {
  absl::MutexLock l(&mu_);
  std::map<std::string, uint64_t> out = forgotten_;
  Statement s(*prepared_,
              "SELECT state, COUNT(*) FROM checkpoints GROUP BY state");
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[s.Text(0)] += s.Int(1);
  }
  return out;
}

absl::StatusOr<uint64_t> SqliteStateStore::Forget(
    uint64_t below, const std::set<uint64_t>& keep) {
  absl::MutexLock l(&mu_);
  std::set<uint64_t> kept = keep;
  kept.insert(pins_.begin(), pins_.end());
  std::map<std::string, uint64_t> forgotten = forgotten_;
  uint64_t n = 0;
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    // The newest record stays whatever is asked: the next id follows it.
    Statement newest(*prepared_, "SELECT MAX(id) FROM checkpoints");
    ASSIGN_OR_RETURN(bool row, newest.Step());
    if (row) kept.insert(newest.Int(0));
    Statement del(*prepared_,
                  "DELETE FROM checkpoints WHERE id >= ?1 AND id < ?2 AND "
                  "state IN ('applied', 'aborted') RETURNING state");
    for (const auto& [from, to] : ForgettableRanges(below, kept)) {
      del.Reset()
          .Bind(1, static_cast<int64_t>(from))
          .Bind(2, static_cast<int64_t>(to));
      for (;;) {
        ASSIGN_OR_RETURN(bool row, del.Step());
        if (!row) break;
        ++forgotten[del.Text(0)];
        ++n;
      }
    }
    return WriteForgotten(forgotten);
  }));
  forgotten_ = std::move(forgotten);
  return n;
}

absl::Status SqliteStateStore::WriteForgotten(
    const std::map<std::string, uint64_t>& forgotten) {
  Statement up(*prepared_,
               "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)");
  for (const auto& [state, count] : forgotten) {
    up.Reset()
        .BindText(1, absl::StrCat(kForgotten, state))
        .BindText(2, absl::StrCat(count));
    RETURN_IF_ERROR(Run(up));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteStateStore::BeginDrill(int64_t now_ms) {
  absl::MutexLock l(&mu_);
  Statement st(*prepared_,
               "INSERT INTO drills(id, started_ms, report) "
               "SELECT COALESCE(MAX(id), 0) + 1, ?1, x'' FROM drills "
               "RETURNING id");
  st.Bind(1, now_ms);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return SqlError(db_.get(), "insert drill");
  uint64_t id = st.Int(0);
  ASSIGN_OR_RETURN(row, st.Step());
  return id;
}

absl::Status SqliteStateStore::RecordDrill(
    const gwmirror::v1::DrillReport& report) {
  absl::MutexLock l(&mu_);
  Statement st(*prepared_, "UPDATE drills SET report = ?2 WHERE id = ?1");
  st.Bind(1, static_cast<int64_t>(report.id()))
      .Bind(2, report.SerializeAsString());
  return Run(st);
}

absl::StatusOr<std::vector<gwmirror::v1::DrillReport>>
SqliteStateStore::ListDrills(size_t limit) const {
  absl::MutexLock l(&mu_);
  std::vector<gwmirror::v1::DrillReport> out;
  Statement s(*prepared_,
              "SELECT id, started_ms, report FROM drills ORDER BY id DESC "
              "LIMIT ?1");
  s.Bind(1, static_cast<int64_t>(limit));
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    gwmirror::v1::DrillReport r;
    if (!r.ParseFromString(s.Text(2))) {
      return absl::DataLossError(
          absl::StrCat("drill ", s.Int(0), ": unreadable record"));
    }
    // A drill the coordinator did not live to finish.
    if (r.id() == 0) {
      r.set_id(s.Int(0));
      r.set_started_unix_ms(s.Int(1));
      r.set_error("unfinished (the coordinator stopped during the drill)");
    }
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteStateStore::UnappliedSlots(
    uint64_t id) const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  absl::StatusOr<gwmirror::v1::CheckpointSlots> slots = SlotsOf(id);
  if (absl::IsNotFound(slots.status())) return out;
  RETURN_IF_ERROR(slots.status());
  for (const auto& s : slots->slots()) {
    if (!s.applied()) out.push_back(s.slot());
  }
  return out;
}

}  // namespace gwmirror

namespace gwmirror {

absl::StatusOr<StateStore::Contents> SqliteStateStore::Export() const {
  absl::MutexLock l(&mu_);
  Contents out;
  out.meta.set_epoch(epoch_);
  out.meta.set_active_site(active_site_);
  out.meta.set_fenced_site(fenced_site_);
  for (uint64_t p : pins_) out.meta.add_pins(p);
  out.meta.mutable_forgotten()->insert(forgotten_.begin(), forgotten_.end());
  ASSIGN_OR_RETURN(std::vector<gwmirror::v1::CheckpointInfo> all,
                   Query("1", std::numeric_limits<int32_t>::max(), false));
  for (gwmirror::v1::CheckpointInfo& info : all) {
    gwmirror::v1::StoredCheckpoint c;
    ASSIGN_OR_RETURN(gwmirror::v1::CheckpointSlots slots, SlotsOf(info.id()));
    for (const auto& s : slots.slots()) {
      if (s.applied()) c.add_applied_slots(s.slot());
    }
    out.meta.set_last_checkpoint(info.id());
    *c.mutable_info() = std::move(info);
    out.checkpoints.push_back(std::move(c));
  }
  Statement d(*prepared_,
              "SELECT id, started_ms, report FROM drills ORDER BY id ASC");
  for (;;) {
    ASSIGN_OR_RETURN(bool row, d.Step());
    if (!row) break;
    gwmirror::v1::DrillReport r;
    if (!r.ParseFromString(d.Text(2))) {
      return absl::DataLossError(
          absl::StrCat("drill ", d.Int(0), ": unreadable record"));
    }
    if (r.id() == 0) r.set_started_unix_ms(d.Int(1));
    out.meta.set_last_drill(d.Int(0));
    out.drills.emplace_back(d.Int(0), std::move(r));
  }
  return out;
}

absl::Status SqliteStateStore::Import(const Contents& contents) {
  RETURN_IF_ERROR(ValidateContents(contents));
  absl::MutexLock l(&mu_);
  std::set<uint64_t> pins(contents.meta.pins().begin(),
                          contents.meta.pins().end());
  const std::map<std::string, uint64_t> forgotten(
      contents.meta.forgotten().begin(), contents.meta.forgotten().end());
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(WriteForgotten(forgotten));
    Statement any(*prepared_,
                  "SELECT (SELECT COUNT(*) FROM checkpoints) + "
                  "(SELECT COUNT(*) FROM drills)");
    ASSIGN_OR_RETURN(bool row, any.Step());
    if (row && any.Int(0) != 0) {
      return absl::FailedPreconditionError(
          "the target state already records checkpoints or drills: a "
          "migration only fills an empty state");
    }
    Statement up(*prepared_,
                 "INSERT OR REPLACE INTO meta(key, value) VALUES "
                 "('epoch', ?1), ('active_site', ?2), ('fenced_site', ?3), "
                 "('pins', ?4)");
    up.BindText(1, absl::StrCat(contents.meta.epoch()))
        .BindText(2, contents.meta.active_site())
        .BindText(3, contents.meta.fenced_site())
        .BindText(4, absl::StrJoin(pins, ","));
    RETURN_IF_ERROR(Run(up));
    for (const gwmirror::v1::StoredCheckpoint& c : contents.checkpoints) {
      const gwmirror::v1::CheckpointInfo& i = c.info();
      std::set<std::string> applied(c.applied_slots().begin(),
                                    c.applied_slots().end());
      std::map<std::string, std::string> digests;  // By slot name.
      for (const auto& [slot, hex] : i.digests()) {
        if (hex.size() % 2 != 0 ||
            !std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "checkpoint ", i.id(), " slot ", slot, ": digest not hex"));
        }
        digests[slot] = absl::HexStringToBytes(hex);
      }
      gwmirror::v1::CheckpointSlots slots;
      for (const auto& [slot, digest] : digests) {
        gwmirror::v1::CheckpointSlots::Slot* s = slots.add_slots();
        s->set_slot(slot);
        s->set_digest(digest);
        s->set_applied(applied.contains(slot));
      }
      Statement ins(*prepared_,
                    "INSERT INTO checkpoints(id, epoch, state, cut_ms, "
                    "consistent_ms, applied_ms, reason, slots) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
      ins.Bind(1, static_cast<int64_t>(i.id()))
          .Bind(2, static_cast<int64_t>(i.epoch()))
          .BindText(3, StateName(i.state()))
          .Bind(4, i.cut_unix_ms())
          .Bind(5, i.consistent_unix_ms())
          .Bind(6, i.applied_unix_ms())
          .BindText(7, i.reason())
          .Bind(8, slots.SerializeAsString());
      RETURN_IF_ERROR(Run(ins));
    }
    for (const auto& [id, report] : contents.drills) {
      Statement ins(*prepared_,
                    "INSERT INTO drills(id, started_ms, report) "
                    "VALUES (?1, ?2, ?3)");
      ins.Bind(1, static_cast<int64_t>(id))
          .Bind(2, report.started_unix_ms())
          .Bind(3,
                report.id() == 0 ? std::string() : report.SerializeAsString());
      RETURN_IF_ERROR(Run(ins));
    }
    return absl::OkStatus();
  }));
  epoch_ = contents.meta.epoch();
  active_site_ = contents.meta.active_site();
  fenced_site_ = contents.meta.fenced_site();
  pins_ = std::move(pins);
  forgotten_ = forgotten;
  return absl::OkStatus();
}

}  // namespace gwmirror
