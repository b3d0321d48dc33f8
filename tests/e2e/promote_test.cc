// Promote to an older checkpoint, the forced promote with the coordinator
// gone, and the planned failback whose final checkpoint loses nothing, on a
// running one-slot sandbox.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "gtest/gtest.h"
#include "tests/e2e/sandbox_fixture.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class SwitchTest : public ClusterTest {
 protected:
  void SetUp() override { Up(1); }

  gwmirror::v1::PromoteReport Report(const RunResult& r) {
    gwmirror::v1::PromoteReport p;
    EXPECT_TRUE(ParseJson(r.out, "report", &p).ok()) << r.out << r.err;
    return p;
  }
  std::string Steps(const gwmirror::v1::PromoteReport& p) {
    std::vector<std::string> names;
    for (const auto& s : p.steps()) names.push_back(s.name());
    return absl::StrJoin(names, ",");
  }
  // "start"/"stop" lines of a host's vshell log, in order, as "verb what".
  std::vector<std::string> Vshell(const std::string& root) {
    std::vector<std::string> out;
    auto log = ReadFileToString(root + "/var/log/vshell.log");
    if (!log.ok()) return out;
    for (absl::string_view line :
         absl::StrSplit(*log, '\n', absl::SkipEmpty())) {
      out.push_back(std::string(line.substr(line.find(' ') + 1)));
    }
    return out;
  }
};

TEST_F(SwitchTest, PromoteToAnOlderCheckpointRestoresItsFiles) {
  const std::string props = Gw(Prod(1), "conf/envSettings.props");
  testing::WriteFile(Gw(Prod(1), "conf/before.props"), "a=1\n", 0600);
  auto a = Checkpoint();
  ASSERT_TRUE(a.ok()) << a.status();
  const Manifest tree_a = Tree(Prod(1));
  // The bad deployment, faithfully mirrored.
  testing::WriteFile(props, "broken\n");
  ASSERT_EQ(unlink(Gw(Prod(1), "conf/before.props").c_str()), 0);
  testing::WriteFile(Gw(Prod(1), "conf/bad.props"), "bad\n");
  ASSERT_TRUE(Checkpoint().ok());
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), "conf/envSettings.props")),
            "broken\n");

  RunResult dry =
      Cli({"promote", "--checkpoint", absl::StrCat(*a), "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_TRUE(absl::StrContains(dry.out, "back to checkpoint")) << dry.out;
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), "conf/envSettings.props")),
            "broken\n");
  RunResult r =
      Cli({"promote", "--checkpoint", absl::StrCat(*a), "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gwmirror::v1::PromoteReport p = Report(r);
  EXPECT_EQ(p.checkpoint(), *a);
  EXPECT_EQ(Steps(p),
            "check standby trees,raise epoch,bring trees to checkpoint,"
            "restore databases,apply site overrides,start node managers,"
            "start instances");
  // The standby tree is A's, to the byte, mode and owner.
  EXPECT_EQ(testing::Diff(tree_a, Tree(Standby(1))), "");
  EXPECT_EQ(Status().active_site(), "standby");
  // A checkpoint that is not retained is refused before anything changes.
  RunResult bad = Cli({"promote", "--checkpoint", "999", "--dry-run"});
  EXPECT_NE(bad.exit_code, 0);
}

TEST_F(SwitchTest, ForcedPromoteWithTheCoordinatorKilled) {
  testing::WriteFile(Gw(Prod(1), "conf/forced.props"), "f=1\n");
  auto cp = Checkpoint();
  ASSERT_TRUE(cp.ok()) << cp.status();
  Kill(sb_.coordinator_process());
  Kill(sb_.slots(0).production());  // The production site is gone too.
  const gwmirror::v1::SandboxProcess& sb = sb_.slots(0).standby();
  const std::string node = absl::StrCat("gw1-standby@", sb.address());
  // Without the coordinator, the ordinary promote cannot run.
  EXPECT_NE(Cli({"promote", "--yes"}).exit_code, 0);
  RunResult bad =
      Cli({"promote", "--force", "--standby-node", "gw1-standby", "--yes"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  bad = Cli({"promote", "--force", "--standby-node", node, "--checkpoint",
             "999", "--yes"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.err, "does not retain checkpoint 999"))
      << bad.err;
  RunResult dry = Cli(
      {"promote", "--force", "--standby-node", node, "--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_TRUE(Vshell(Standby(1)).empty());

  RunResult r =
      Cli({"promote", "--force", "--standby-node", node, "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gwmirror::v1::PromoteReport p = Report(r);
  EXPECT_EQ(p.checkpoint(), *cp);
  EXPECT_EQ(p.epoch(), 2u);
  EXPECT_GT(p.rto_ms(), 0);
  std::vector<std::string> ran = Vshell(Standby(1));
  ASSERT_FALSE(ran.empty());
  EXPECT_TRUE(absl::StartsWith(ran.front(), "start node-manager")) << ran[0];
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), "conf/forced.props")), "f=1\n");
  // The old production comes back: its pushes are refused at the old epoch.
  gwmirror::v1::NodeConfig nc;
  const std::string prod_config = sb_.slots(0).production().config();
  ASSERT_TRUE(ParseJson(testing::ReadFile(prod_config), prod_config, &nc).ok());
  nc.mutable_source()->set_replica_address(sb.address());
  nc.mutable_source()->set_replica_identity("gw1-standby");
  nc.set_state_dir(tmp_ / "fenced-state");  // Whether or not it runs.
  testing::WriteFile(tmp_ / "fenced.json", ToJson(nc), 0600);
  RunResult push = testing::Run({Bin("gwmirror-node"), "push", "--config",
                                 tmp_ / "fenced.json", "--checkpoint", "99",
                                 "--epoch", "1", "--commit"});
  EXPECT_NE(push.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(push.err, "stale epoch")) << push.err;
  // The coordinator comes back and adopts the forced promote.
  Restart(sb_.coordinator_process());
  Restart(sb_.slots(0).production());
  gwmirror::v1::ClusterStatus s =
      WaitFor([](const auto& s) { return s.active_site() == "standby"; },
              "the coordinator adopting the forced promote");
  EXPECT_EQ(s.epoch(), 2u);
  EXPECT_EQ(s.fenced_site(), "production");
  WaitHealthy();
  s = Status();
  EXPECT_EQ(s.slots(0).source().identity(), "gw1-standby");
  // And mirrors the new active site to the old one.
  testing::WriteFile(Gw(Standby(1), "conf/after-forced.props"), "x\n");
  // The old production re-reads its tree as a replica first (the cut says
  // so while it does).
  absl::StatusOr<uint64_t> after;
  for (int i = 0; i < 40; ++i) {
    after = Checkpoint();
    if (after.ok()) break;
    usleep(250000);
  }
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(testing::ReadFile(Gw(Prod(1), "conf/after-forced.props")), "x\n");
}

// A promote shows how far it is while it runs: status names the step under
// way, and the command's own progress events carry it (a traffic switch
// that takes 3 s, so a poll sees it).
TEST_F(SwitchTest, APromoteShowsItsStepWhileItRuns) {
  ASSERT_TRUE(Checkpoint().ok());
  // The traffic switch lasts until this test has seen its step in status
  // (and 2 s more, for the command's own progress line), at most 60 s: a
  // loaded machine's slow status calls cannot miss it.
  const std::string seen = Dir() + "/switch-seen";
  ReconfigureCoordinator([&](gwmirror::v1::CoordinatorConfig* c) {
    c->clear_traffic_switch();
    for (const std::string& arg :
         {std::string("/bin/sh"), std::string("-c"),
          absl::StrCat("for i in $(seq 600); do test -e ", seen,
                       " && exit 0; sleep 0.1; done; exit 1")}) {
      c->add_traffic_switch(arg);
    }
  });
  EXPECT_EQ(Status().operation(), "");
  RunResult r;
  std::atomic<bool> done{false};
  std::thread promote([&] {
    r = Cli({"promote", "--yes", "--json"});
    done = true;
  });
  std::set<std::string> operations;
  const absl::Time limit = absl::Now() + absl::Minutes(2);
  bool saw_switch = false;
  while (!done && absl::Now() < limit) {
    const std::string op = Status().operation();
    operations.insert(op);
    if (!saw_switch && absl::StartsWith(op, "promote: step ") &&
        absl::StrContains(op, ", traffic switch, ")) {
      saw_switch = true;
      absl::SleepFor(absl::Seconds(2));
      testing::WriteFile(seen, "");
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  promote.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(saw_switch) << absl::StrJoin(operations, " | ");
  EXPECT_TRUE(absl::StrContains(r.err, "traffic switch")) << r.err;
  EXPECT_EQ(Status().operation(), "");
}

TEST_F(SwitchTest, FailbackTakesAFinalCheckpointAndLosesNothing) {
  ASSERT_TRUE(Checkpoint().ok());
  RunResult r = Cli({"promote", "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  WaitFor(
      [](const auto& s) {
        return AllHealthy(s) && s.slots(0).source().identity() == "gw1-standby";
      },
      "the roles switched");
  // Written on the promoted site just before the failback, never
  // checkpointed by anything else.
  testing::WriteFile(Gw(Standby(1), "conf/last-minute.props"), "late=1\n");
  RunResult dry = Cli({"failback", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(Cli({"failback"}).exit_code, 2);  // Not a terminal, no --yes.
  r = Cli({"failback", "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gwmirror::v1::PromoteReport p = Report(r);
  EXPECT_EQ(p.active_site(), "production");
  EXPECT_EQ(p.epoch(), 3u);
  EXPECT_TRUE(absl::StartsWith(
      Steps(p), "stop instances,stop node managers,final checkpoint,"))
      << Steps(p);
  EXPECT_EQ(testing::ReadFile(Gw(Prod(1), "conf/last-minute.props")),
            "late=1\n");
  // The promoted site stopped its gateway, the production site started.
  std::vector<std::string> standby_ran = Vshell(Standby(1));
  ASSERT_FALSE(standby_ran.empty());
  EXPECT_TRUE(absl::StartsWith(standby_ran.back(), "stop node-manager"))
      << standby_ran.back();
  std::vector<std::string> prod_ran = Vshell(Prod(1));
  ASSERT_FALSE(prod_ran.empty());
  EXPECT_TRUE(absl::StartsWith(prod_ran.back(), "start instance"))
      << prod_ran.back();
  gwmirror::v1::ClusterStatus s = WaitFor(
      [](const auto& s) {
        return AllHealthy(s) &&
               s.slots(0).source().identity() == "gw1-production";
      },
      "production active again");
  EXPECT_EQ(s.fenced_site(), "standby");
  // Replication runs production -> standby again, by delta.
  testing::WriteFile(Gw(Prod(1), "conf/after-failback.props"), "y\n");
  auto after = Checkpoint();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), "conf/after-failback.props")),
            "y\n");
}

// The coordinator's state is lost after a promote (epoch 2, the standby
// active, a pinned checkpoint): `gwmirror-coordinator recover` rebuilds it
// from the nodes, and the restarted coordinator goes on where the cluster
// was instead of starting over at epoch 1 (which every node would refuse).
TEST_F(SwitchTest, LostCoordinatorStateIsRecoveredFromTheNodes) {
  auto a = Checkpoint();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(Cli({"pin", "--checkpoint", absl::StrCat(*a)}).exit_code, 0);
  testing::WriteFile(Gw(Prod(1), "conf/b.props"), "b\n");
  ASSERT_TRUE(Checkpoint().ok());
  RunResult promoted = Cli({"promote", "--yes"});
  ASSERT_EQ(promoted.exit_code, 0) << promoted.err;
  WaitHealthy();
  testing::WriteFile(Gw(Standby(1), "conf/c.props"), "c\n");
  absl::StatusOr<uint64_t> c;
  for (int i = 0; i < 40 && !(c = Checkpoint()).ok(); ++i) usleep(250000);
  ASSERT_TRUE(c.ok()) << c.status();

  Kill(sb_.coordinator_process());
  const std::string state = Dir() + "/coordinator/state";
  ASSERT_EQ(rename(state.c_str(), (state + ".lost").c_str()), 0);
  const std::string config = sb_.coordinator_process().config();
  const std::string nodes =
      absl::StrCat("gw1-production@", sb_.slots(0).production().address(),
                   ",gw1-standby@", sb_.slots(0).standby().address());
  auto recover = [&](const std::string& node_list) {
    return testing::Run({Bin("gwmirror-coordinator"), "recover", "--config",
                         config, "--active-site", "standby", "--node",
                         node_list});
  };
  RunResult partial =
      recover(absl::StrCat("gw1-standby@", sb_.slots(0).standby().address()));
  EXPECT_EQ(partial.exit_code, 2) << partial.err;
  EXPECT_TRUE(absl::StrContains(partial.err, "missing: gw1-production"))
      << partial.err;
  RunResult r = recover(nodes);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("recovered: epoch 2, standby active, production "
                          "fenced, last checkpoint ",
                          *c, ", pins: ", *a)))
      << r.out;
  r = recover(nodes);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "already records checkpoints")) << r.err;

  Restart(sb_.coordinator_process());
  WaitHealthy();
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.epoch(), 2u);
  EXPECT_EQ(s.active_site(), "standby");
  EXPECT_EQ(s.last_consistent().id(), *c);
  testing::WriteFile(Gw(Standby(1), "conf/d.props"), "d\n");
  auto d = Checkpoint();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_GT(*d, *c);
  EXPECT_EQ(testing::ReadFile(Gw(Prod(1), "conf/d.props")), "d\n");
  // The pin came back with the state (from the history gw1-standby kept
  // from its replica days): the coordinator's pins are A and the new one.
  RunResult pin = Cli({"pin", "--checkpoint", absl::StrCat(*d)});
  ASSERT_EQ(pin.exit_code, 0) << pin.err;
  EXPECT_TRUE(absl::StrContains(pin.out, absl::StrCat(*a, ", ", *d)))
      << pin.out;
}

}  // namespace
}  // namespace gwmirror
