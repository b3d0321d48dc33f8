// The coordinator's durable state: ids never reused, one commit point per
// checkpoint, everything survives a reopen.
#include "coordinator/state_store.h"

#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    auto s = StateStore::Open(dir_ / "state.db", "production");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  testing::TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(StateStoreTest, FreshStoreStartsAtEpochOneWithTheInitialActiveSite) {
  EXPECT_EQ(store_->Epoch(), 1u);
  EXPECT_EQ(store_->ActiveSite(), "production");
  // The initial site is only the first start's: the record wins after.
  store_.reset();
  auto s = StateStore::Open(dir_ / "state.db", "standby");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->ActiveSite(), "production");
}

// A state rebuilt from the nodes survives a reopen, new ids follow the
// recovered checkpoint, and only a store without checkpoints is rebuilt.
TEST_F(StateStoreTest, RecoveredStateHoldsAndNewIdsFollowIt) {
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

TEST_F(StateStoreTest, CheckpointLifecycleSurvivesReopen) {
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

TEST_F(StateStoreTest, IdsAreNeverReusedAndAbortedOnesAreNotCommitted) {
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

TEST_F(StateStoreTest, ACheckpointBecomesConsistentOnlyOnceAndNeverAfterAbort) {
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

TEST_F(StateStoreTest, DamagedDatabaseIsAnErrorNotAFreshStart) {
  store_.reset();
  testing::WriteFile(dir_ / "bad.db", std::string(4096, 'x'));
  auto s = StateStore::Open(dir_ / "bad.db", "production");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("coordinator state"), std::string::npos)
      << s.status();
}

}  // namespace
}  // namespace gwmirror
