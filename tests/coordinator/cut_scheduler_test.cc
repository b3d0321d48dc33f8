// The cut scheduler on the real clock over simulated nodes: an operator's
// request cuts at once, a source's change is cut once, and changes within
// a paced gap are cut together as soon as the gap ends. Bounded: each wait
// gives up after 5 s.
#include "coordinator/cut_scheduler.h"

#include "absl/strings/str_cat.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "tests/coordinator/fake_nodes.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::FakeNodes;

class CutSchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Coordinator> Start(bool follow_changes) {
    gwmirror::v1::CoordinatorConfig c = testing::SimulatedClusterConfig(
        pki_.Issue("coordinator"), dir_ / "state", 2);
    c.set_follow_changes(follow_changes);
    c.set_change_cut_interval_ms(200);
    CoordinatorOptions o;
    o.nodes = nodes_.Client();
    auto coordinator = Coordinator::Open(c, std::move(o));
    EXPECT_TRUE(coordinator.ok()) << coordinator.status();
    if (!coordinator.ok()) return nullptr;
    absl::Status st = testing::RegisterSimulatedNodes(coordinator->get(), 2);
    EXPECT_TRUE(st.ok()) << st;
    (*coordinator)->StartBackground();
    return *std::move(coordinator);
  }

  // gw1's source reports a change pending since `since`.
  void ReportChange(Coordinator* c, absl::Time since) {
    gwmirror::v1::HeartbeatRequest req;
    req.mutable_envelope()->set_epoch(1);
    req.set_pending_since_unix_ms(absl::ToUnixMillis(since));
    req.set_pending_files(1);
    ASSERT_TRUE(c->Heartbeat("gw1-production", req).ok());
  }

  // Waits until gw1's replica has committed `n` checkpoints; false after 5 s.
  bool WaitForCommits(size_t n) {
    for (absl::Time until = absl::Now() + absl::Seconds(5); absl::Now() < until;
         absl::SleepFor(absl::Milliseconds(10))) {
      if (nodes_.replica("gw1").commits.size() >= n) return true;
    }
    return false;
  }

  testing::TempDir dir_;
  testing::Pki pki_{dir_ / "pki"};
  FakeNodes nodes_;
};

TEST_F(CutSchedulerTest, AnOperatorsRequestCutsAtOnce) {
  auto c = Start(/*follow_changes=*/false);
  ASSERT_NE(c, nullptr);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(nodes_.replica("gw1").commits.empty()) << "no interval set";
  const absl::Time asked = absl::Now();
  c->RequestCheckpoint();
  ASSERT_TRUE(WaitForCommits(1));
  EXPECT_LT(absl::Now() - asked, absl::Seconds(2));
  EXPECT_EQ(nodes_.replica("gw2").commits, std::vector<uint64_t>{1});
}

TEST_F(CutSchedulerTest, AChangeIsCutOnce) {
  auto c = Start(/*follow_changes=*/true);
  ASSERT_NE(c, nullptr);
  ReportChange(c.get(), absl::Now());
  ASSERT_TRUE(WaitForCommits(1));
  // Heartbeats with nothing pending are not news.
  gwmirror::v1::HeartbeatRequest quiet;
  quiet.mutable_envelope()->set_epoch(1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c->Heartbeat("gw1-production", quiet).ok());
  }
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(nodes_.replica("gw1").commits.size(), 1u);
  // A new one is cut.
  ReportChange(c.get(), absl::Now());
  ASSERT_TRUE(WaitForCommits(2));
  EXPECT_EQ(nodes_.replica("gw1").commits, (std::vector<uint64_t>{1, 2}));
}

TEST_F(CutSchedulerTest, ChangesDuringAPacedGapAreCutTogether) {
  auto c = Start(/*follow_changes=*/true);
  ASSERT_NE(c, nullptr);
  ReportChange(c.get(), absl::Now());
  ASSERT_TRUE(WaitForCommits(1));
  const absl::Time first = absl::Now();
  // Three changes inside one gap of 200 ms: one cut takes them all, as
  // soon as the gap allows (a change noted while the scheduler waits must
  // not wait for its next periodic look, a second away).
  for (int i = 0; i < 3; ++i) ReportChange(c.get(), absl::Now());
  ASSERT_TRUE(WaitForCommits(2));
  const absl::Duration took = absl::Now() - first;
  EXPECT_GE(took, absl::Milliseconds(100));
  EXPECT_LT(took, absl::Milliseconds(800));
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(nodes_.replica("gw1").commits.size(), 2u);
}

}  // namespace
}  // namespace gwmirror
