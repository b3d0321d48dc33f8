// The checkpoint protocol on simulated nodes and a simulated clock, no
// processes and no sleeps: every phase's failure (a source that cannot
// cut, a replica that staged something else or cannot be reached, a
// commit that fails, a lost node, a held mass deletion, a half-done
// deployment, parity) ends in a checkpoint applied everywhere or aborted
// everywhere, and a coordinator stopped before or after its commit point
// settles the checkpoint on restart exactly once.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/fault.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "tests/coordinator/fake_nodes.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::FakeNodes;

class CheckpointProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override { SetFaultSpec(""); }
  void TearDown() override { SetFaultSpec(""); }

  gwmirror::v1::CoordinatorConfig Config(int slots) {
    gwmirror::v1::CoordinatorConfig c = testing::SimulatedClusterConfig(
        pki_.Issue("coordinator"), dir_ / "state", slots);
    c.add_operator_identities("operator");
    c.set_coherence_retry_ms(1000);
    c.set_coherence_wait_ms(5000);
    c.set_checkpoint_records(records_);
    return c;
  }

  // A coordinator over the test's state directory, fake nodes and clock,
  // every node registered.
  std::unique_ptr<Coordinator> Start(int slots) {
    slots_ = slots;
    CoordinatorOptions o;
    o.clock = &clock_;
    o.nodes = nodes_.Client();
    auto c = Coordinator::Open(Config(slots), std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    absl::Status st = testing::RegisterSimulatedNodes(c->get(), slots);
    EXPECT_TRUE(st.ok()) << st;
    return *std::move(c);
  }

  // Heartbeats from every node but `except`, at the current epoch.
  void Beat(Coordinator* c, const std::string& except = "") {
    for (int i = 1; i <= slots_; ++i) {
      for (const char* site : {"production", "standby"}) {
        const std::string id = absl::StrCat("gw", i, "-", site);
        if (id == except) continue;
        gwmirror::v1::HeartbeatRequest req;
        req.mutable_envelope()->set_epoch(1);
        ASSERT_TRUE(c->Heartbeat(id, req).ok()) << id;
      }
    }
  }

  // Every slot's replica committed exactly `ids`, in order.
  void ExpectCommits(const std::vector<uint64_t>& ids) {
    for (int i = 1; i <= slots_; ++i) {
      const std::string slot = absl::StrCat("gw", i);
      FakeNodes::Replica r = nodes_.replica(slot);
      EXPECT_EQ(r.commits, ids) << slot;
      if (!ids.empty()) {
        EXPECT_EQ(r.committed_digest, FakeNodes::DigestOf(slot, ids.back()));
      }
    }
  }

  testing::TempDir dir_;
  testing::Pki pki_{dir_ / "pki"};
  SimulatedClock clock_;
  FakeNodes nodes_;
  int slots_ = 0;
  uint32_t records_ = 0;  // checkpoint_records (0: the default).
};

TEST_F(CheckpointProtocolTest, EverySlotMovesTogether) {
  auto c = Start(3);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), gwmirror::v1::CHECKPOINT_STATE_APPLIED);
  EXPECT_EQ(r->digests_size(), 3);
  ExpectCommits({1});
  r = c->RunCheckpoint();
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectCommits({1, 2});
}

TEST_F(CheckpointProtocolTest, ASourceThatCannotCutAbortsEverywhere) {
  auto c = Start(3);
  FakeNodes::Faults f;
  f.fail_cuts = 1;
  nodes_.SetFaults("gw2-production", f);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "gw2: ")) << r.status();
  ExpectCommits({});
  for (const char* slot : {"gw1", "gw2", "gw3"}) {
    EXPECT_EQ(nodes_.replica(slot).aborts, (std::vector<uint64_t>{1})) << slot;
  }
  EXPECT_EQ(c->Status().last_attempt().state(),
            gwmirror::v1::CHECKPOINT_STATE_ABORTED);
  // The next one goes through, under a new id.
  r = c->RunCheckpoint();
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectCommits({2});
}

// Regression (issue 18, found by the 1,000-kill storm): an Abort is best
// effort, so a replica down at that moment kept the aborted checkpoint's
// complete staging; restarted, it re-reads its tree before taking pushes,
// cannot over a kept staging, and waited for a settlement that never came
// (every later cut aborted: "it takes pushes only as a replica, once it
// has re-read its tree"). Its heartbeats name what it keeps; the answer
// drops an aborted or unknown one, and leaves the rest to the runner.
TEST_F(CheckpointProtocolTest, AStagingKeptForAnAbortedCheckpointIsDropped) {
  auto c = Start(1);
  ASSERT_TRUE(c->RunCheckpoint().ok());  // 1 applied.
  FakeNodes::Faults f;
  f.fail_cuts = 1;
  nodes_.SetFaults("gw1-production", f);
  ASSERT_FALSE(c->RunCheckpoint().ok());  // 2 aborted.
  auto beat = [&](uint64_t staged) {
    gwmirror::v1::HeartbeatRequest req;
    req.mutable_envelope()->set_epoch(1);
    req.set_staged_checkpoint(staged);
    auto r = c->Heartbeat("gw1-standby", req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->discard_staged() : 0;
  };
  EXPECT_EQ(beat(2), 2u) << "aborted";
  EXPECT_EQ(beat(7), 7u) << "never begun here";
  EXPECT_EQ(beat(1), 0u) << "applied: the runner's business";
  EXPECT_EQ(beat(0), 0u);
}

TEST_F(CheckpointProtocolTest, AReplicaHoldingAnotherDigestAborts) {
  auto c = Start(2);
  FakeNodes::Faults f;
  f.stage_other = true;
  nodes_.SetFaults("gw1-standby", f);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "but its source froze"))
      << r.status();
  ExpectCommits({});
}

TEST_F(CheckpointProtocolTest, AnUnreachableReplicaAborts) {
  auto c = Start(2);
  FakeNodes::Faults f;
  f.unreachable = true;
  nodes_.SetFaults("gw2-standby", f);
  auto r = c->RunCheckpoint();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "gw2")) << r.status();
  EXPECT_EQ(nodes_.replica("gw1").commits, std::vector<uint64_t>{});
}

TEST_F(CheckpointProtocolTest, ALostNodeStopsAutomaticCutsAndIsNamed) {
  auto c = Start(2);
  Beat(c.get());
  clock_.Advance(absl::Seconds(3));
  Beat(c.get(), "gw2-standby");
  clock_.Advance(absl::Seconds(3));  // gw2-standby's last beat: 6 s ago.
  auto r = c->RunCheckpoint(/*automatic=*/true);
  ASSERT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(c->Status().last_attempt().id(), 0u)
      << "automatic: nothing recorded";
  r = c->RunCheckpoint();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "gw2-standby lost"))
      << r.status();
  EXPECT_EQ(c->Status().last_attempt().state(),
            gwmirror::v1::CHECKPOINT_STATE_ABORTED);
  Beat(c.get());
  EXPECT_TRUE(c->RunCheckpoint().ok());
  ExpectCommits({2});
}

TEST_F(CheckpointProtocolTest, ACommitThatFailsIsRetriedUntilAppliedOnce) {
  auto c = Start(3);
  FakeNodes::Faults f;
  f.fail_commits = 2;
  nodes_.SetFaults("gw3-standby", f);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "consistent but not"))
      << r.status();
  EXPECT_EQ(nodes_.replica("gw1").commits, (std::vector<uint64_t>{1}));
  EXPECT_TRUE(nodes_.replica("gw3").commits.empty());
  // After the commit point it is never aborted: retried until applied.
  EXPECT_FALSE(c->Resume().ok());
  ASSERT_TRUE(c->Resume().ok());
  ExpectCommits({1});
  // A new cut applies what is consistent first, and nothing twice.
  ASSERT_TRUE(c->RunCheckpoint().ok());
  ExpectCommits({1, 2});
}

TEST_F(CheckpointProtocolTest, AHeldMassDeletionWaitsForItsRelease) {
  auto c = Start(2);
  FakeNodes::Faults f;
  f.held = "mass deletion held: r would lose 100 % of its entries";
  nodes_.SetFaults("gw1-production", f);
  auto r = c->RunCheckpoint();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(c->Status().slots(0).held(), "mass deletion"))
      << c->Status().ShortDebugString();
  // Automatic cuts do not pile up the same refusal.
  EXPECT_TRUE(absl::IsFailedPrecondition(c->RunCheckpoint(true).status()));
  ASSERT_TRUE(c->Release("gw1").ok());
  r = c->RunCheckpoint(true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(c->Status().slots(0).held(), "");
}

TEST_F(CheckpointProtocolTest, AHalfDoneDeploymentIsRetriedThenNamed) {
  auto c = Start(2);
  gwmirror::v1::GatewayTopology t;
  auto* g = t.add_groups();
  g->set_id("group-2");
  g->set_name("QuickStart Group");
  for (const char* id : {"instance-1", "instance-2"}) {
    auto* s = g->add_services();
    s->set_id(id);
    s->set_type("gateway");
  }
  FakeNodes::Faults a, b;
  a.topology = b.topology = t;
  a.deployments["instance-1"] = "archive-new";
  b.deployments["instance-2"] = "archive-old";
  nodes_.SetFaults("gw1-production", a);
  nodes_.SetFaults("gw2-production", b);
  // The nodes keep beating while the coordinator waits between tries.
  clock_.SetAfterSleep([&] { Beat(c.get()); });
  const absl::Time start = clock_.Now();
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(),
                                "group \"QuickStart Group\" runs different"))
      << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "still so after 5s"))
      << r.status();
  // Retried every coherence_retry_ms for coherence_wait_ms, on the clock.
  EXPECT_GE(clock_.Now() - start, absl::Seconds(5));
  ExpectCommits({});
  // The deployment finishes: the next cut commits.
  b.deployments["instance-2"] = "archive-new";
  nodes_.SetFaults("gw2-production", b);
  ASSERT_TRUE(c->RunCheckpoint().ok());
  clock_.SetAfterSleep(nullptr);
}

TEST_F(CheckpointProtocolTest, ParityFailingUnderTheStrictPolicyAborts) {
  auto c = Start(1);
  // The standby host runs another product version than production's.
  gwmirror::v1::HeartbeatRequest hb;
  hb.mutable_envelope()->set_epoch(1);
  hb.mutable_topology()->set_installed_version("7.7.20220530");
  ASSERT_TRUE(c->Heartbeat("gw1-standby", hb).ok());
  FakeNodes::Faults f;
  f.installed_version = "7.7.20221130";
  nodes_.SetFaults("gw1-production", f);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "topology parity fails"))
      << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "7.7.20220530"))
      << r.status();
  ExpectCommits({});
  EXPECT_EQ(nodes_.replica("gw1").aborts, (std::vector<uint64_t>{1}));
}

// A source's cut report counts for the slot the coordinator cut, whatever
// slot it names: a node cannot move itself, or hide a slot, in the parity
// verdict by what it reports.
TEST_F(CheckpointProtocolTest, ACutReportCountsForTheSlotCutNotTheOneItNames) {
  auto c = Start(2);
  FakeNodes::Faults f;
  f.report_slot = "gw2";
  nodes_.SetFaults("gw1-production", f);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectCommits({1});
  // A real difference in that report is still found, at the slot cut.
  f.installed_version = "7.7.20221130";
  nodes_.SetFaults("gw1-production", f);
  gwmirror::v1::HeartbeatRequest hb;
  hb.mutable_envelope()->set_epoch(1);
  hb.mutable_topology()->set_installed_version("7.7.20220530");
  ASSERT_TRUE(c->Heartbeat("gw1-standby", hb).ok());
  r = c->RunCheckpoint();
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(),
                                "standby gw1 has 7.7.20220530 installed"))
      << r.status();
  ExpectCommits({1});
}

// A coordinator that stops (here: fails at a fault point, then is opened
// again over the same state) before its commit point aborts the checkpoint
// at restart; one that stops after it applies it, on every replica, once.
TEST_F(CheckpointProtocolTest, RestartSettlesBeforeAndAfterTheCommitPoint) {
  auto c = Start(2);
  ASSERT_TRUE(c->RunCheckpoint().ok());
  for (const char* point :
       {"coordinator:cut", "coordinator:staged", "coordinator:consistent",
        "coordinator:applied-slot"}) {
    SCOPED_TRACE(point);
    SetFaultSpec(absl::StrCat("enospc:", point, ":1"));
    auto r = c->RunCheckpoint();
    ASSERT_FALSE(r.ok());
    SetFaultSpec("");
    const uint64_t id = c->Status().last_attempt().id();
    c.reset();
    c = Start(2);
    ASSERT_TRUE(c->Resume().ok());
    gwmirror::v1::CheckpointInfo info = c->Status().last_attempt();
    ASSERT_EQ(info.id(), id);
    const bool after = absl::StrContains(point, "consistent") ||
                       absl::StrContains(point, "applied");
    EXPECT_EQ(info.state(), after ? gwmirror::v1::CHECKPOINT_STATE_APPLIED
                                  : gwmirror::v1::CHECKPOINT_STATE_ABORTED);
    for (const char* slot : {"gw1", "gw2"}) {
      std::vector<uint64_t> commits = nodes_.replica(slot).commits;
      EXPECT_EQ(commits.back(), after ? id : id - 1) << slot;
      // Never twice.
      EXPECT_EQ(std::set<uint64_t>(commits.begin(), commits.end()).size(),
                commits.size())
          << slot;
    }
    ASSERT_TRUE(c->RunCheckpoint().ok());
  }
}

// The protocol over many slots (the scale simulation's short version):
// 200 slots commit together in one checkpoint.
TEST_F(CheckpointProtocolTest, OldRecordsAreForgottenUnlessANodeKeepsThem) {
  records_ = 4;  // Looked at after every checkpoint from the fifth.
  FakeNodes::Faults keeps;
  keeps.history = {2};
  nodes_.SetFaults("gw1-standby", keeps);
  FakeNodes::Faults silent;
  silent.fail_history = true;
  nodes_.SetFaults("gw2-production", silent);
  FakeNodes::Faults source_only;  // Has no history: holds nothing off.
  source_only.no_replica_store = true;
  nodes_.SetFaults("gw1-production", source_only);
  auto c = Start(2);
  auto ids = [&] {
    std::vector<uint64_t> out;
    auto list = c->List(100);
    EXPECT_TRUE(list.ok()) << list.status();
    for (const auto& cp : list->checkpoints()) out.push_back(cp.id());
    return out;
  };
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(c->RunCheckpoint().ok());
  // A node that does not list its history holds it off.
  EXPECT_EQ(ids(), (std::vector<uint64_t>{6, 5, 4, 3, 2, 1}));
  nodes_.SetFaults("gw2-production", FakeNodes::Faults());
  ASSERT_TRUE(c->RunCheckpoint().ok());
  EXPECT_EQ(ids(), (std::vector<uint64_t>{7, 6, 5, 4, 2}));
  auto next = c->RunCheckpoint();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->id(), 8u);
  EXPECT_EQ(ids(), (std::vector<uint64_t>{8, 7, 6, 5, 2}));
  ExpectCommits({1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_F(CheckpointProtocolTest, TwoHundredSlotsCommitTogether) {
  auto c = Start(200);
  auto r = c->RunCheckpoint();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->digests_size(), 200);
  ExpectCommits({1});
}

}  // namespace
}  // namespace gwmirror
