#include "coordinator/sqlite_state_store.h"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("coordinator state: ", what, ": ", sqlite3_errmsg(db)));
}

// One prepared statement, finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status ok() const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqlError(db_, "prepare");
  }
  Statement& Bind(int i, int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, const std::string& v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()),
                              SQLITE_TRANSIENT);
    }
    return *this;
  }
  Statement& BindText(int i, const std::string& v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()),
                              SQLITE_TRANSIENT);
    }
    return *this;
  }
  // true: a row is ready; false: done.
  absl::StatusOr<bool> Step() {
    RETURN_IF_ERROR(ok());
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, "step");
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p), n);
  }
  int Changes() const { return sqlite3_changes(db_); }
  // Ready to run again, with new bindings (a statement prepared once for
  // a loop: parsing it per row was a good part of a 200-slot checkpoint).
  Statement& Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return *this;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status Run(Statement& st) {
  ASSIGN_OR_RETURN(bool row, st.Step());
  (void)row;
  return absl::OkStatus();
}

}  // namespace

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
      "'');"
      "CREATE TABLE IF NOT EXISTS checkpoint_slots(checkpoint INTEGER NOT "
      "NULL, "
      " slot TEXT NOT NULL, digest BLOB NOT NULL, "
      " applied INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(checkpoint, slot));"
      "CREATE TABLE IF NOT EXISTS drills(id INTEGER PRIMARY KEY, "
      " started_ms INTEGER NOT NULL, report BLOB NOT NULL);"));
  {
    Statement ins(raw,
                  "INSERT OR IGNORE INTO meta(key, value) VALUES "
                  "('epoch', '1'), ('active_site', ?1)");
    ins.BindText(1, active_site);
    RETURN_IF_ERROR(Run(ins));
  }
  Statement q(raw, "SELECT key, value FROM meta");
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    std::string key = q.Text(0), value = q.Text(1);
    if (key == "epoch" && !absl::SimpleAtoi(value, &s->epoch_)) {
      return absl::DataLossError(
          absl::StrCat(path, ": epoch \"", value, "\" is not a number"));
    }
    if (key == "active_site") s->active_site_ = value;
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
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status st = body();
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
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
    Statement up(db_.get(),
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
    Statement up(db_.get(),
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
    Statement count(db_.get(), "SELECT COUNT(*) FROM checkpoints");
    ASSIGN_OR_RETURN(bool row, count.Step());
    if (row && count.Int(0) != 0) {
      return absl::FailedPreconditionError(
          "the coordinator state already records checkpoints: recover only "
          "rebuilds a lost state (move the old state.db away first)");
    }
    Statement up(db_.get(),
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
        db_.get(),
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
  Statement up(db_.get(),
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
      db_.get(),
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
    Statement up(
        db_.get(),
        "UPDATE checkpoints SET state = 'consistent', consistent_ms = ?2 "
        "WHERE id = ?1 AND state = 'cut'");
    up.Bind(1, static_cast<int64_t>(id)).Bind(2, now_ms);
    RETURN_IF_ERROR(Run(up));
    if (up.Changes() != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", id,
                       " is not an open cut; it cannot become consistent"));
    }
    Statement ins(db_.get(),
                  "INSERT INTO checkpoint_slots(checkpoint, slot, digest) "
                  "VALUES (?1, ?2, ?3)");
    for (const auto& [slot, digest] : digests) {
      ins.Reset()
          .Bind(1, static_cast<int64_t>(id))
          .BindText(2, slot)
          .Bind(3, digest);
      RETURN_IF_ERROR(Run(ins));
    }
    // A crash here leaves the transaction uncommitted: N stays a cut.
    return FaultPoint("coordinator:commit-point");
  });
}

absl::Status SqliteStateStore::RecordApplied(
    uint64_t id, const std::vector<std::string>& slots, int64_t now_ms) {
  absl::MutexLock l(&mu_);
  return Transaction([&]() -> absl::Status {
    Statement up(db_.get(),
                 "UPDATE checkpoint_slots SET applied = 1 "
                 "WHERE checkpoint = ?1 AND slot = ?2");
    for (const std::string& slot : slots) {
      up.Reset().Bind(1, static_cast<int64_t>(id)).BindText(2, slot);
      RETURN_IF_ERROR(Run(up));
      if (up.Changes() != 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("checkpoint ", id, " has no slot \"", slot, "\""));
      }
    }
    Statement done(db_.get(),
                   "UPDATE checkpoints SET state = 'applied', applied_ms = ?2 "
                   "WHERE id = ?1 AND state = 'consistent' AND NOT EXISTS ("
                   " SELECT 1 FROM checkpoint_slots WHERE checkpoint = ?1 "
                   " AND applied = 0)");
    done.Bind(1, static_cast<int64_t>(id)).Bind(2, now_ms);
    return Run(done);
  });
}

absl::Status SqliteStateStore::RecordAborted(uint64_t id,
                                             const std::string& reason) {
  absl::MutexLock l(&mu_);
  Statement up(db_.get(),
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
                        bool newest_first) const {
  std::vector<gwmirror::v1::CheckpointInfo> out;
  Statement q(db_.get(),
              absl::StrCat("SELECT id, epoch, state, cut_ms, consistent_ms, "
                           "applied_ms, reason FROM checkpoints WHERE ",
                           where, " ORDER BY id ",
                           newest_first ? "DESC" : "ASC", " LIMIT ", limit));
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
    out.push_back(std::move(c));
  }
  for (auto& c : out) {
    Statement s(
        db_.get(),
        "SELECT slot, digest FROM checkpoint_slots WHERE checkpoint = ?1");
    s.Bind(1, static_cast<int64_t>(c.id()));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      (*c.mutable_digests())[s.Text(0)] = absl::BytesToHexString(s.Text(1));
    }
  }
  return out;
}

absl::StatusOr<gwmirror::v1::CheckpointInfo> SqliteStateStore::Get(
    uint64_t id) const {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto v, Query(absl::StrCat("id = ", id), 1, true));
  if (v.empty()) return absl::NotFoundError(absl::StrCat("no checkpoint ", id));
  return v.front();
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>>
SqliteStateStore::List(size_t limit, bool committed_only) const {
  absl::MutexLock l(&mu_);
  return Query(committed_only ? "state IN ('consistent', 'applied')" : "1",
               limit, true);
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>>
SqliteStateStore::Unfinished() const {
  absl::MutexLock l(&mu_);
  return Query("state IN ('cut', 'consistent')", 1000000, false);
}

absl::StatusOr<std::map<std::string, uint64_t>> SqliteStateStore::CountByState()
    const {
  absl::MutexLock l(&mu_);
  std::map<std::string, uint64_t> out;
  Statement s(db_.get(),
              "SELECT state, COUNT(*) FROM checkpoints GROUP BY state");
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[s.Text(0)] = s.Int(1);
  }
  return out;
}

absl::StatusOr<uint64_t> SqliteStateStore::BeginDrill(int64_t now_ms) {
  absl::MutexLock l(&mu_);
  Statement st(db_.get(),
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
  Statement st(db_.get(), "UPDATE drills SET report = ?2 WHERE id = ?1");
  st.Bind(1, static_cast<int64_t>(report.id()))
      .Bind(2, report.SerializeAsString());
  return Run(st);
}

absl::StatusOr<std::vector<gwmirror::v1::DrillReport>>
SqliteStateStore::ListDrills(size_t limit) const {
  absl::MutexLock l(&mu_);
  std::vector<gwmirror::v1::DrillReport> out;
  Statement s(db_.get(),
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
  Statement s(db_.get(),
              "SELECT slot FROM checkpoint_slots WHERE checkpoint = ?1 "
              "AND applied = 0 ORDER BY slot");
  s.Bind(1, static_cast<int64_t>(id));
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(s.Text(0));
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
  ASSIGN_OR_RETURN(std::vector<gwmirror::v1::CheckpointInfo> all,
                   Query("1", std::numeric_limits<int32_t>::max(), false));
  for (gwmirror::v1::CheckpointInfo& info : all) {
    gwmirror::v1::StoredCheckpoint c;
    Statement s(db_.get(),
                "SELECT slot FROM checkpoint_slots WHERE checkpoint = ?1 "
                "AND applied = 1 ORDER BY slot");
    s.Bind(1, static_cast<int64_t>(info.id()));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      c.add_applied_slots(s.Text(0));
    }
    out.meta.set_last_checkpoint(info.id());
    *c.mutable_info() = std::move(info);
    out.checkpoints.push_back(std::move(c));
  }
  Statement d(db_.get(),
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
  RETURN_IF_ERROR(Transaction([&]() -> absl::Status {
    Statement any(db_.get(),
                  "SELECT (SELECT COUNT(*) FROM checkpoints) + "
                  "(SELECT COUNT(*) FROM drills)");
    ASSIGN_OR_RETURN(bool row, any.Step());
    if (row && any.Int(0) != 0) {
      return absl::FailedPreconditionError(
          "the target state already records checkpoints or drills: a "
          "migration only fills an empty state");
    }
    Statement up(db_.get(),
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
      Statement ins(db_.get(),
                    "INSERT INTO checkpoints(id, epoch, state, cut_ms, "
                    "consistent_ms, applied_ms, reason) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      ins.Bind(1, static_cast<int64_t>(i.id()))
          .Bind(2, static_cast<int64_t>(i.epoch()))
          .BindText(3, StateName(i.state()))
          .Bind(4, i.cut_unix_ms())
          .Bind(5, i.consistent_unix_ms())
          .Bind(6, i.applied_unix_ms())
          .BindText(7, i.reason());
      RETURN_IF_ERROR(Run(ins));
      std::set<std::string> applied(c.applied_slots().begin(),
                                    c.applied_slots().end());
      for (const auto& [slot, hex] : i.digests()) {
        if (hex.size() % 2 != 0 ||
            !std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "checkpoint ", i.id(), " slot ", slot, ": digest not hex"));
        }
        const std::string digest = absl::HexStringToBytes(hex);
        Statement s(db_.get(),
                    "INSERT INTO checkpoint_slots(checkpoint, slot, digest, "
                    "applied) VALUES (?1, ?2, ?3, ?4)");
        s.Bind(1, static_cast<int64_t>(i.id()))
            .BindText(2, slot)
            .Bind(3, digest)
            .Bind(4, applied.contains(slot) ? 1 : 0);
        RETURN_IF_ERROR(Run(s));
      }
    }
    for (const auto& [id, report] : contents.drills) {
      Statement ins(db_.get(),
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
  return absl::OkStatus();
}

}  // namespace gwmirror
