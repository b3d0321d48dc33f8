// The coordinator's durable state: ids never reused, one commit point per
// checkpoint, everything survives a reopen. Every test runs against both
// stores: SQLite, and etcd (a real etcd server, one member, TLS).
#include "coordinator/state_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/etcd_state_store.h"
#include "coordinator/sqlite_state_store.h"
#include "gtest/gtest.h"
#include "tests/coordinator/etcd_cluster.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

enum class Backend { kSqlite, kEtcd };

class StateStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  static void SetUpTestSuite() {
    etcd_dir_ = new testing::TempDir();
    auto c = testing::EtcdCluster::Start(etcd_dir_->path(), 1);
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = c->release();
  }
  static void TearDownTestSuite() {
    delete etcd_;
    delete etcd_dir_;
  }
  void SetUp() override {
    static int n = 0;
    prefix_ = absl::StrCat("/test-", ++n, "/");
    Reopen();
  }
  // The store under test; `other`: a second, empty one of the other kind.
  absl::StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& active_site, bool other = false) {
    const bool sqlite = (GetParam() == Backend::kSqlite) != other;
    if (sqlite) {
      ASSIGN_OR_RETURN(
          auto s, SqliteStateStore::Open(
                      dir_ / (other ? "other.db" : "state.db"), active_site));
      return std::unique_ptr<StateStore>(std::move(s));
    }
    EtcdStateStore::Options options;
    options.name = "test";
    options.active_site = active_site;
    ASSIGN_OR_RETURN(
        auto s,
        EtcdStateStore::Open(
            etcd_->StoreConfig(other ? prefix_ + "other/" : prefix_), options));
    return std::unique_ptr<StateStore>(std::move(s));
  }
  void Reopen() {
    store_.reset();
    auto s = Open("production");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  static testing::TempDir* etcd_dir_;
  static testing::EtcdCluster* etcd_;
  testing::TempDir dir_;
  std::string prefix_;
  std::unique_ptr<StateStore> store_;
};

testing::TempDir* StateStoreTest::etcd_dir_ = nullptr;
testing::EtcdCluster* StateStoreTest::etcd_ = nullptr;

INSTANTIATE_TEST_SUITE_P(Stores, StateStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kEtcd),
                         [](const auto& info) {
                           return info.param == Backend::kSqlite ? "Sqlite"
                                                                 : "Etcd";
                         });

TEST_P(StateStoreTest, FreshStoreStartsAtEpochOneWithTheInitialActiveSite) {
  EXPECT_EQ(store_->Epoch(), 1u);
  EXPECT_EQ(store_->ActiveSite(), "production");
  // The initial site is only the first start's: the record wins after.
  store_.reset();
  auto s = Open("standby");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->ActiveSite(), "production");
}

// A state rebuilt from the nodes survives a reopen, new ids follow the
// recovered checkpoint, and only a store without checkpoints is rebuilt.
TEST_P(StateStoreTest, RecoveredStateHoldsAndNewIdsFollowIt) {
  StateStore::Recovered r;
  r.epoch = 3;
  r.active_site = "standby";
  r.fenced_site = "production";
  r.checkpoint = 41;
  r.cut_ms = 5000;
  r.pins = {7, 12};
  ASSERT_TRUE(store_->Recover(r).ok());
  Reopen();
  EXPECT_EQ(store_->Epoch(), 3u);
  EXPECT_EQ(store_->ActiveSite(), "standby");
  EXPECT_EQ(store_->FencedSite(), "production");
  EXPECT_EQ(store_->Pins(), (std::vector<uint64_t>{7, 12}));
  auto last = store_->List(1, true);
  ASSERT_TRUE(last.ok() && last->size() == 1);
  EXPECT_EQ(last->front().id(), 41u);
  EXPECT_EQ(last->front().cut_unix_ms(), 5000);
  auto next = store_->BeginCut(3, 6000);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 42u);
  absl::Status again = store_->Recover(r);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Epoch(), 3u);
}

TEST_P(StateStoreTest, CheckpointLifecycleSurvivesReopen) {
  auto n = store_->BeginCut(1, 1000);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  ASSERT_TRUE(
      store_->RecordConsistent(1, {{"gw1", "d1"}, {"gw2", "d2"}}, 2000).ok());
  ASSERT_TRUE(store_->RecordApplied(1, "gw1", 3000).ok());
  Reopen();
  auto c = store_->Get(1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(
      c->state(),
      gwmirror::v1::CHECKPOINT_STATE_CONSISTENT);  // gw2 has not applied yet.
  auto pending = store_->UnappliedSlots(1);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, std::vector<std::string>{"gw2"});
  auto open = store_->Unfinished();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ(open->front().digests().at("gw2"), "6432");  // hex of "d2"
  ASSERT_TRUE(store_->RecordApplied(1, "gw2", 4000).ok());
  c = store_->Get(1);
  EXPECT_EQ(c->state(), gwmirror::v1::CHECKPOINT_STATE_APPLIED);
  EXPECT_EQ(c->applied_unix_ms(), 4000);
  EXPECT_TRUE(store_->Unfinished()->empty());
}

TEST_P(StateStoreTest, IdsAreNeverReusedAndAbortedOnesAreNotCommitted) {
  ASSERT_EQ(*store_->BeginCut(1, 1), 1u);
  ASSERT_TRUE(store_->RecordAborted(1, "replica gw2 lost").ok());
  Reopen();
  ASSERT_EQ(*store_->BeginCut(1, 2), 2u);
  ASSERT_TRUE(store_->RecordConsistent(2, {{"gw1", "x"}}, 3).ok());
  auto committed = store_->List(10, true);
  ASSERT_TRUE(committed.ok());
  ASSERT_EQ(committed->size(), 1u);
  EXPECT_EQ(committed->front().id(), 2u);
  auto all = store_->List(10, false);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->back().reason(), "replica gw2 lost");
}

TEST_P(StateStoreTest, ACheckpointBecomesConsistentOnlyOnceAndNeverAfterAbort) {
  ASSERT_EQ(*store_->BeginCut(1, 1), 1u);
  ASSERT_TRUE(store_->RecordConsistent(1, {{"gw1", "x"}}, 2).ok());
  absl::Status again = store_->RecordConsistent(1, {{"gw1", "y"}}, 3);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_EQ(store_->RecordAborted(1, "late").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Get(1)->digests().at("gw1"), "78");  // Still "x".
  ASSERT_EQ(*store_->BeginCut(1, 4), 2u);
  ASSERT_TRUE(store_->RecordAborted(2, "timeout").ok());
  EXPECT_EQ(store_->RecordConsistent(2, {{"gw1", "z"}}, 5).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->RecordApplied(2, "gw1", 6).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StateStoreTest, DamagedDatabaseIsAnErrorNotAFreshStart) {
  store_.reset();
  absl::StatusOr<std::unique_ptr<StateStore>> s;
  if (GetParam() == Backend::kSqlite) {
    testing::WriteFile(dir_ / "bad.db", std::string(4096, 'x'));
    s = SqliteStateStore::Open(dir_ / "bad.db", "production");
  } else {
    ASSERT_TRUE(etcd_->Put(prefix_ + "meta", std::string(64, 'x')).ok());
    s = Open("production");
  }
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(GetParam() == Backend::kSqlite
                                          ? "coordinator state"
                                          : "not a gwmirror state record"),
            std::string::npos)
      << s.status();
}

// Drills: ids grow, a finished one keeps its report, one the coordinator
// did not live to finish says so.
TEST_P(StateStoreTest, DrillsKeepTheirReportsAndSayWhenUnfinished) {
  auto one = store_->BeginDrill(1000);
  ASSERT_TRUE(one.ok()) << one.status();
  auto two = store_->BeginDrill(2000);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, *one + 1);
  gwmirror::v1::DrillReport r;
  r.set_id(*one);
  r.set_started_unix_ms(1000);
  r.set_ok(true);
  r.set_rto_ms(42);
  ASSERT_TRUE(store_->RecordDrill(r).ok());
  Reopen();
  auto list = store_->ListDrills(10);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id(), *two);  // Newest first.
  EXPECT_FALSE((*list)[0].ok());
  EXPECT_EQ((*list)[0].started_unix_ms(), 2000);
  EXPECT_NE((*list)[0].error().find("unfinished"), std::string::npos);
  EXPECT_TRUE((*list)[1].ok());
  EXPECT_EQ((*list)[1].rto_ms(), 42);
}

// Counts by state, pins and a promote's epoch survive a reopen.
TEST_P(StateStoreTest, CountsPinsAndPromotesSurviveReopen) {
  ASSERT_EQ(*store_->BeginCut(1, 1), 1u);
  ASSERT_TRUE(store_->RecordAborted(1, "x").ok());
  ASSERT_EQ(*store_->BeginCut(1, 2), 2u);
  ASSERT_TRUE(store_->RecordConsistent(2, {{"gw1", "a"}}, 3).ok());
  ASSERT_TRUE(store_->RecordApplied(2, "gw1", 4).ok());
  ASSERT_EQ(*store_->BeginCut(1, 5), 3u);
  ASSERT_TRUE(store_->Pin(2, true).ok());
  ASSERT_TRUE(store_->Pin(1, true).ok());
  ASSERT_TRUE(store_->Pin(1, false).ok());
  auto epoch = store_->SwitchActive("standby");
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  EXPECT_EQ(*epoch, 2u);
  EXPECT_EQ(store_->SwitchActive("standby").status().code(),
            absl::StatusCode::kFailedPrecondition);
  Reopen();
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<std::string, uint64_t>{
                         {"aborted", 1}, {"applied", 1}, {"cut", 1}}));
  EXPECT_EQ(store_->Pins(), std::vector<uint64_t>{2});
  EXPECT_EQ(store_->Epoch(), 2u);
  EXPECT_EQ(store_->ActiveSite(), "standby");
  EXPECT_EQ(store_->FencedSite(), "production");
  ASSERT_TRUE(store_->AdoptActive(5, "production").ok());
  ASSERT_TRUE(store_->AdoptActive(4, "standby").ok());  // Older: ignored.
  Reopen();
  EXPECT_EQ(store_->Epoch(), 5u);
  EXPECT_EQ(store_->ActiveSite(), "production");
  EXPECT_EQ(store_->FencedSite(), "standby");
  auto open = store_->Unfinished();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ(open->front().id(), 3u);
}

// `gwmirror-coordinator migrate`: everything a store records, exported and
// imported into the other kind of store, reads back the same and goes on
// from where it was; a store that already records anything is refused.
TEST_P(StateStoreTest, MigratesWholeIntoTheOtherKindOfStore) {
  ASSERT_EQ(*store_->BeginCut(1, 10), 1u);
  ASSERT_TRUE(store_->RecordAborted(1, "a node was down").ok());
  ASSERT_EQ(*store_->BeginCut(1, 20), 2u);
  ASSERT_TRUE(
      store_->RecordConsistent(2, {{"gw1", "\x01\x02"}, {"gw2", "\xff"}}, 21)
          .ok());
  ASSERT_TRUE(store_->RecordApplied(2, "gw1", 22).ok());  // gw2 not yet
  ASSERT_EQ(*store_->BeginCut(1, 30), 3u);
  ASSERT_TRUE(
      store_->RecordConsistent(3, {{"gw1", "c"}, {"gw2", "d"}}, 31).ok());
  ASSERT_TRUE(
      store_->RecordApplied(3, std::vector<std::string>{"gw1", "gw2"}, 32)
          .ok());
  ASSERT_EQ(*store_->BeginCut(1, 40), 4u);  // left open
  ASSERT_TRUE(store_->Pin(3, true).ok());
  ASSERT_TRUE(store_->SwitchActive("standby").ok());
  auto d1 = store_->BeginDrill(100);
  ASSERT_TRUE(d1.ok());
  gwmirror::v1::DrillReport r;
  r.set_id(*d1);
  r.set_ok(true);
  r.set_checkpoint(3);
  r.set_started_unix_ms(100);
  ASSERT_TRUE(store_->RecordDrill(r).ok());
  ASSERT_TRUE(store_->BeginDrill(200).ok());  // never finished

  auto contents = store_->Export();
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->checkpoints.size(), 4u);
  EXPECT_EQ(contents->drills.size(), 2u);
  auto other = Open("production", /*other=*/true);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->Import(*contents).ok());

  StateStore& to = **other;
  EXPECT_EQ(to.Epoch(), 2u);
  EXPECT_EQ(to.ActiveSite(), "standby");
  EXPECT_EQ(to.FencedSite(), "production");
  EXPECT_EQ(to.Pins(), std::vector<uint64_t>{3});
  EXPECT_EQ(*to.CountByState(), *store_->CountByState());
  EXPECT_EQ(*to.UnappliedSlots(2), std::vector<std::string>{"gw2"});
  for (uint64_t id = 1; id <= 4; ++id) {
    auto a = store_->Get(id), b = to.Get(id);
    ASSERT_TRUE(a.ok() && b.ok()) << id;
    EXPECT_EQ(a->DebugString(), b->DebugString()) << id;
  }
  auto unfinished = to.Unfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 2u);  // 2 consistent, 4 a cut
  EXPECT_EQ((*unfinished)[0].id(), 2u);
  EXPECT_EQ((*unfinished)[1].id(), 4u);
  auto drills = to.ListDrills(10);
  ASSERT_TRUE(drills.ok());
  ASSERT_EQ(drills->size(), 2u);
  EXPECT_NE((*drills)[0].error().find("unfinished"), std::string::npos);
  EXPECT_EQ((*drills)[0].started_unix_ms(), 200);
  EXPECT_TRUE((*drills)[1].ok());
  // It goes on from there: the next ids follow, the commit point still
  // holds once.
  EXPECT_EQ(*to.BeginCut(2, 50), 5u);
  EXPECT_EQ(*to.BeginDrill(300), 3u);
  EXPECT_EQ(to.RecordConsistent(3, {{"gw1", "x"}}, 51).code(),
            absl::StatusCode::kFailedPrecondition);
  // Into a store that records anything: refused, nothing changed.
  EXPECT_EQ(to.Import(*contents).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*to.BeginCut(2, 60), 6u);
}

TEST_P(StateStoreTest, ImportRefusesContentsNoStoreCouldHold) {
  StateStore::Contents c;
  c.meta.set_epoch(1);
  c.meta.set_active_site("production");
  c.checkpoints.resize(2);
  c.checkpoints[0].mutable_info()->set_id(2);
  c.checkpoints[0].mutable_info()->set_state(
      gwmirror::v1::CHECKPOINT_STATE_APPLIED);
  c.checkpoints[1].mutable_info()->set_id(1);
  c.checkpoints[1].mutable_info()->set_state(
      gwmirror::v1::CHECKPOINT_STATE_APPLIED);
  absl::Status st = store_->Import(c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("ids must grow"), std::string::npos) << st;
  c.checkpoints.pop_back();
  c.checkpoints[0].add_applied_slots("gw9");
  st = store_->Import(c);
  EXPECT_NE(st.message().find("gw9"), std::string::npos) << st;
  c.meta.clear_active_site();
  EXPECT_EQ(store_->Import(c).code(), absl::StatusCode::kInvalidArgument);
  // Nothing was written.
  EXPECT_EQ(*store_->BeginCut(1, 1), 1u);
}

TEST_P(StateStoreTest, AppliedSlotsAreNamedAndTheNewestComesWithoutDigests) {
  EXPECT_TRUE(absl::IsNotFound(store_->Newest(true).status()));
  ASSERT_EQ(*store_->BeginCut(1, 1), 1u);
  ASSERT_TRUE(
      store_->RecordConsistent(1, {{"gw2", "b"}, {"gw1", "a"}}, 2).ok());
  // A slot the checkpoint never had: refused, and nothing recorded.
  absl::Status st =
      store_->RecordApplied(1, std::vector<std::string>{"gw1", "gw9"}, 3);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("gw9"), std::string::npos) << st;
  EXPECT_EQ(*store_->UnappliedSlots(1),
            (std::vector<std::string>{"gw1", "gw2"}));
  ASSERT_TRUE(
      store_->RecordApplied(1, std::vector<std::string>{"gw2", "gw1"}, 4).ok());
  EXPECT_TRUE(store_->UnappliedSlots(1)->empty());
  ASSERT_EQ(*store_->BeginCut(1, 5), 2u);
  auto newest = store_->Newest(/*committed_only=*/true);
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->id(), 1u);
  EXPECT_EQ(newest->applied_unix_ms(), 4);
  EXPECT_TRUE(newest->digests().empty());
  EXPECT_EQ(store_->Newest(false)->id(), 2u);
  EXPECT_EQ(store_->Get(1)->digests().at("gw1"), "61");  // hex of "a"
}

// Old finished records go; unfinished, pinned and kept ones stay, the
// counts and the next id are as if nothing went, also after a migration.
TEST_P(StateStoreTest, ForgetsOldFinishedRecordsButNotTheirCounts) {
  auto applied = [&](uint64_t id) {
    ASSERT_EQ(*store_->BeginCut(1, id * 10), id);
    ASSERT_TRUE(store_->RecordConsistent(id, {{"gw1", "a"}}, id * 10).ok());
    ASSERT_TRUE(store_->RecordApplied(id, "gw1", id * 10).ok());
  };
  applied(1);
  ASSERT_EQ(*store_->BeginCut(1, 20), 2u);
  ASSERT_TRUE(store_->RecordAborted(2, "x").ok());
  ASSERT_EQ(*store_->BeginCut(1, 30), 3u);
  ASSERT_TRUE(store_->RecordConsistent(3, {{"gw1", "b"}}, 30).ok());
  for (uint64_t id = 4; id <= 7; ++id) applied(id);
  ASSERT_TRUE(store_->Pin(4, true).ok());
  const auto counts = *store_->CountByState();
  auto forgot = store_->Forget(7, {5});
  ASSERT_TRUE(forgot.ok()) << forgot.status();
  EXPECT_EQ(*forgot, 3u);  // 1, 2 and 6.
  auto ids = [&](StateStore& s) {
    std::vector<uint64_t> out;
    auto list = s.List(100, false);
    EXPECT_TRUE(list.ok()) << list.status();
    for (const auto& c : *list) out.push_back(c.id());
    return out;
  };
  EXPECT_EQ(ids(*store_), (std::vector<uint64_t>{7, 5, 4, 3}));
  EXPECT_TRUE(absl::IsNotFound(store_->Get(1).status()));
  EXPECT_EQ(*store_->CountByState(), counts);
  // Whatever is asked, the newest stays: ids are never reused.
  ASSERT_TRUE(store_->Forget(100, {}).ok());
  EXPECT_EQ(ids(*store_), (std::vector<uint64_t>{7, 4, 3}));
  Reopen();
  EXPECT_EQ(*store_->CountByState(), counts);
  EXPECT_EQ(*store_->BeginCut(1, 80), 8u);
  auto contents = store_->Export();
  ASSERT_TRUE(contents.ok()) << contents.status();
  auto other = Open("production", /*other=*/true);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->Import(*contents).ok());
  EXPECT_EQ(*(*other)->CountByState(), *store_->CountByState());
  EXPECT_EQ(*(*other)->BeginCut(1, 90), 9u);
}

// A state written with a row per slot (the layout before the slots
// column) opens with every digest and applied mark in place.
TEST(SqliteStateStoreTest, MovesARowPerSlotStateIntoTheSlotsColumn) {
  testing::TempDir dir;
  const std::string path = dir / "state.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(
        db,
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('epoch', '3'), ('active_site', 'standby');"
        "CREATE TABLE checkpoints(id INTEGER PRIMARY KEY, epoch INTEGER NOT "
        "NULL, state TEXT NOT NULL, cut_ms INTEGER NOT NULL, consistent_ms "
        "INTEGER NOT NULL DEFAULT 0, applied_ms INTEGER NOT NULL DEFAULT 0, "
        "reason TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE checkpoint_slots(checkpoint INTEGER NOT NULL, slot TEXT "
        "NOT NULL, digest BLOB NOT NULL, applied INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY(checkpoint, slot));"
        "INSERT INTO checkpoints VALUES (1, 3, 'applied', 10, 11, 12, ''),"
        " (2, 3, 'aborted', 20, 0, 0, 'replica lost'),"
        " (3, 3, 'consistent', 30, 31, 0, '');"
        "INSERT INTO checkpoint_slots VALUES (1, 'gw2', x'02', 1),"
        " (1, 'gw1', x'01', 1), (3, 'gw1', x'31', 1), (3, 'gw2', x'32', 0);",
        nullptr, nullptr, &err);
    ASSERT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_close(db);
  }
  for (int open = 0; open < 2; ++open) {  // The second finds nothing to do.
    auto store = SqliteStateStore::Open(path, "production");
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->Epoch(), 3u);
    auto one = (*store)->Get(1);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ(one->digests().size(), 2u);
    EXPECT_EQ(one->digests().at("gw2"), "02");
    EXPECT_EQ((*store)->Get(3)->digests().at("gw1"), "31");
    EXPECT_TRUE((*store)->Get(2)->digests().empty());
    if (open == 0) {
      EXPECT_EQ(*(*store)->UnappliedSlots(3), std::vector<std::string>{"gw2"});
      ASSERT_TRUE((*store)->RecordApplied(3, "gw2", 40).ok());
    }
    EXPECT_TRUE((*store)->UnappliedSlots(3)->empty());
    EXPECT_EQ((*store)->Get(3)->state(),
              gwmirror::v1::CHECKPOINT_STATE_APPLIED);
    EXPECT_EQ(*(*store)->BeginCut(3, 50), 4u + open);
  }
}

TEST(SqliteStateStoreTest, TheSameStatementInUseTwiceIsPreparedTwice) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  {
    PreparedStatements prepared(db);
    PreparedStatements::Lent a = prepared.Take("SELECT 1");
    PreparedStatements::Lent b = prepared.Take("SELECT 1");
    ASSERT_NE(a.stmt, nullptr);
    ASSERT_NE(b.stmt, nullptr);
    EXPECT_NE(a.stmt, b.stmt);
    EXPECT_NE(a.kept, nullptr);
    EXPECT_EQ(b.kept, nullptr);  // Finalized when given back.
    PreparedStatements::Give(b);
    PreparedStatements::Give(a);
    PreparedStatements::Lent again = prepared.Take("SELECT 1");
    EXPECT_EQ(again.stmt, a.stmt);  // Kept, and free again.
    PreparedStatements::Give(again);
    EXPECT_EQ(prepared.Take("SELECT FROM nowhere").stmt, nullptr);
    EXPECT_NE(std::string(sqlite3_errmsg(db)).find("syntax"),
              std::string::npos);
  }
  EXPECT_EQ(sqlite3_close(db), SQLITE_OK);  // Nothing left unfinalized.
}

}  // namespace
}  // namespace gwmirror
