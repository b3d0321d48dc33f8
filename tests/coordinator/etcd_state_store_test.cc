// The etcd state store's leadership, against real etcd servers: one
// leader per prefix, a deposed leader fenced off by etcd itself (the
// leader key's create revision in every transaction), a leader cut off
// from etcd stops within its lease, and members dying under it cost
// nothing.
#include "coordinator/etcd_state_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/etcd_cluster.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class EtcdStateStoreTest : public ::testing::Test {
 protected:
  void Start(int members) {
    auto c = testing::EtcdCluster::Start(dir_.path(), members);
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = *std::move(c);
  }
  absl::StatusOr<std::unique_ptr<EtcdStateStore>> Open(const std::string& name,
                                                       absl::Duration wait,
                                                       int ttl_s = 10) {
    gwmirror::v1::EtcdStore config = etcd_->StoreConfig("/gw/");
    config.set_lease_ttl_s(ttl_s);
    EtcdStateStore::Options options;
    options.name = name;
    options.active_site = "production";
    options.wait_for_lead = wait;
    return EtcdStateStore::Open(config, options);
  }
  testing::TempDir dir_;
  std::unique_ptr<testing::EtcdCluster> etcd_;
};

TEST_F(EtcdStateStoreTest, OneLeadsTheOtherWaitsAndTakesOverWhenItStops) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  auto a = Open("coordinator-a", absl::ZeroDuration());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(*(*a)->BeginCut(1, 1000), 1u);
  auto b = Open("coordinator-b", absl::Seconds(1));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(b.status().message(), "\"coordinator-a\""))
      << b.status();
  // A stops (its lease revoked on the way out): B leads at once, on A's
  // state.
  a->reset();
  const absl::Time asked = absl::Now();
  b = Open("coordinator-b", absl::Seconds(5));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_LT(absl::Now() - asked, absl::Seconds(2));
  EXPECT_EQ((*b)->Get(1)->state(), gwmirror::v1::CHECKPOINT_STATE_CUT);
  EXPECT_EQ(*(*b)->BeginCut(1, 2000), 2u);
}

// A coordinator waiting for the lead (a follower) is listed as following,
// reads the state the leader writes, can write none of it, and leads once
// the leader goes; every coordinator sees the members' health.
TEST_F(EtcdStateStoreTest, AFollowerReadsButWritesNothingUntilItLeads) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  auto a = Open("coordinator-a", absl::ZeroDuration());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(*(*a)->BeginCut(1, 1000), 1u);
  gwmirror::v1::EtcdStore config = etcd_->StoreConfig("/gw/");
  EtcdStateStore::Options options;
  options.name = "coordinator-b";
  options.address = "10.0.0.2:7100";
  auto b = EtcdStateStore::Connect(config, options);
  ASSERT_TRUE(b.ok()) << b.status();
  EtcdStateStore& follower = **b;

  auto peers = follower.Coordinators();
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].name(), "coordinator-a");
  EXPECT_EQ(peers[0].state(), "leading");
  EXPECT_EQ(peers[0].fencing_token(), (*a)->FencingToken());
  EXPECT_EQ(peers[1].name(), "coordinator-b");
  EXPECT_EQ(peers[1].state(), "following");
  EXPECT_EQ(peers[1].address(), "10.0.0.2:7100");

  ASSERT_TRUE(follower.Refresh().ok());
  EXPECT_EQ(follower.Epoch(), 1u);
  EXPECT_EQ(follower.Get(1)->state(), gwmirror::v1::CHECKPOINT_STATE_CUT);
  for (absl::Status st :
       {follower.BeginCut(1, 2000).status(),
        follower.SwitchActive("standby").status(), follower.Pin(1, true),
        follower.RecordAborted(1, "a follower's word")}) {
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "does not lead")) << st;
  }
  EXPECT_EQ((*a)->Get(1)->state(), gwmirror::v1::CHECKPOINT_STATE_CUT);
  EXPECT_EQ((*a)->Epoch(), 1u);

  // The members' health, polled in the background: all up, one raft
  // leader; then one killed.
  auto healthy = [&](size_t want_up) {
    for (int i = 0; i < 100; ++i) {
      auto h = follower.StoreHealth();
      size_t up = std::count_if(h.begin(), h.end(),
                                [](const auto& m) { return m.up(); });
      if (h.size() == 3 && up == want_up) return h;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return follower.StoreHealth();
  };
  auto all = healthy(3);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(std::count_if(all.begin(), all.end(),
                          [](const auto& m) { return m.raft_leader(); }),
            1);
  etcd_->Kill(2);
  auto two = healthy(2);
  ASSERT_EQ(two.size(), 3u);
  EXPECT_FALSE(two[2].up());
  EXPECT_FALSE(two[2].error().empty());

  // A stops: B campaigns and leads on A's state.
  a->reset();
  ASSERT_TRUE(follower.Campaign(absl::Seconds(5)).ok());
  EXPECT_EQ(*follower.BeginCut(1, 3000), 2u);
  peers = follower.Coordinators();
  ASSERT_EQ(peers.size(), 1u);  // A's entry went with its lease
  EXPECT_EQ(peers[0].state(), "leading");
  EXPECT_EQ(peers[0].fencing_token(), follower.FencingToken());
}

// The case fencing exists for: A still believes it leads (its lease was
// revoked behind its back, as an expiry during a long pause would), B
// leads; nothing A writes lands, and A knows it no longer leads.
TEST_F(EtcdStateStoreTest, ADeposedLeaderCanNeitherCommitNorRaiseTheEpoch) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  auto a = Open("coordinator-a", absl::ZeroDuration());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(*(*a)->BeginCut(1, 1000), 1u);
  const int64_t a_token = (*a)->FencingToken();
  ASSERT_TRUE(etcd_->RevokeLeaseOf("/gw/leader").ok());
  auto b = Open("coordinator-b", absl::Seconds(5));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GT((*b)->FencingToken(), a_token);

  absl::Status commit = (*a)->RecordConsistent(1, {{"gw1", "d"}}, 2000);
  EXPECT_EQ(commit.code(), absl::StatusCode::kFailedPrecondition) << commit;
  EXPECT_TRUE(absl::StrContains(commit.message(), "no longer leads")) << commit;
  EXPECT_FALSE((*a)->Lead().ok());
  EXPECT_FALSE((*a)->SwitchActive("standby").ok());
  EXPECT_FALSE((*a)->BeginCut(1, 3000).ok());

  EXPECT_TRUE((*b)->Lead().ok());
  EXPECT_EQ((*b)->Get(1)->state(), gwmirror::v1::CHECKPOINT_STATE_CUT);
  EXPECT_EQ((*b)->Epoch(), 1u);
  EXPECT_EQ((*b)->ActiveSite(), "production");
  EXPECT_EQ(*(*b)->BeginCut(1, 4000), 2u);
  ASSERT_TRUE((*b)->RecordAborted(1, "the coordinator changed").ok());
}

// Cut off from every etcd member (SIGSTOP), the leader stops leading when
// its lease runs out by its own clock, without etcd telling it; once etcd
// is back, another takes over and the old one stays stopped.
TEST_F(EtcdStateStoreTest, ALeaderCutOffFromEtcdStopsWithinItsLease) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  auto a = Open("coordinator-a", absl::ZeroDuration(), /*ttl_s=*/3);
  ASSERT_TRUE(a.ok()) << a.status();
  etcd_->Stop(0);
  const absl::Time cut_off = absl::Now();
  while ((*a)->Lead().ok() && absl::Now() - cut_off < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Duration stopped_after = absl::Now() - cut_off;
  etcd_->Continue(0);
  EXPECT_FALSE((*a)->Lead().ok());
  // By its own clock: at most the TTL after the last renewal it sent,
  // which etcd cannot have expired earlier (this loop looks every 50 ms).
  EXPECT_LE(stopped_after, absl::Seconds(3) + absl::Milliseconds(100))
      << stopped_after;
  std::printf("leader stopped leading %.2f s after etcd went silent (ttl 3)\n",
              absl::ToDoubleSeconds(stopped_after));
  auto b = Open("coordinator-b", absl::Seconds(15), /*ttl_s=*/3);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE((*a)->BeginCut(1, 1).ok());
  EXPECT_EQ(*(*b)->BeginCut(1, 2), 1u);
}

// Three members: the one the store talks to dies; reads and writes go on
// through the others, nothing lost.
TEST_F(EtcdStateStoreTest, WritesGoOnWhenTheMemberInUseDies) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  auto a = Open("coordinator-a", absl::ZeroDuration());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(*(*a)->BeginCut(1, 1000), 1u);
  etcd_->Kill(0);
  absl::Status st = (*a)->RecordConsistent(1, {{"gw1", "d"}}, 2000);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE((*a)->Lead().ok());
  EXPECT_EQ((*a)->Get(1)->state(), gwmirror::v1::CHECKPOINT_STATE_CONSISTENT);
  ASSERT_TRUE(etcd_->Restart(0).ok());
  a->reset();
  // a resigns its lead on the way out; if that call meets the member just
  // restarted and fails (seen once under a loaded machine), b waits out
  // a's lease (10 s) instead.
  auto b = Open("coordinator-b", absl::Seconds(15));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->Get(1)->state(), gwmirror::v1::CHECKPOINT_STATE_CONSISTENT);
  EXPECT_EQ((*b)->Unfinished()->size(), 1u);
}

}  // namespace
}  // namespace gwmirror
