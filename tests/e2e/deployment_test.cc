// Real deployments through a running two-host sandbox, made with
// `gwmirror sample deploy` the way the gateway makes them (a new
// conf/<uuid>/ folder, then the instances switched): what a redeployment
// costs on the wire beside what rdiff needs for its changed stores, and a
// deployment left half done for two minutes, which must cost no more than
// the deployment itself, spend next to no checkpoint ids, say HELD with the
// group and its archives, and commit within 2 s of its last switch.
#include "node/sample/deployment.h"

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/sandbox_fixture.h"

namespace gwmirror {
namespace {

class DeploymentTest : public ClusterTest {
 protected:
  // `gwmirror sample deploy` on host i's production root: the new id.
  std::string Deploy(int i, uint64_t seed, int switch_count = -1) {
    std::vector<std::string> argv = {
        Bin("gwmirror"),    "sample", "deploy",
        "--host-root",      Prod(i),  "--group",
        "QuickStart Group", "--seed", absl::StrCat(seed)};
    if (switch_count >= 0) {
      argv.push_back("--switch");
      argv.push_back(absl::StrCat(switch_count));
    }
    RunResult r = testing::Run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    const size_t at = r.out.find("\"id\": \"") + 7;
    return r.out.substr(at, r.out.find('"', at) - at);
  }

  DeployOptions Options(int i) {
    DeployOptions o;
    o.host_root = Prod(i);
    o.group = "QuickStart Group";
    return o;
  }

  // Push bytes the standby nodes received (both hosts).
  double Received() {
    double sum = 0;
    for (const auto& slot : sb_.slots()) {
      sum += Sample(Scrape(MetricsAddress(slot.standby())),
                    "gwmirror_replica_received_bytes_total");
    }
    return sum;
  }

  // What rdiff (librsync's own tool, defaults) sends for the stores that
  // changed from `from` to `to`: the delta's size, per host.
  uint64_t RdiffBytes(const Deployment& from, const Deployment& to) {
    uint64_t sum = 0;
    for (const auto& [name, content] : to.files) {
      auto old = from.files.find(name);
      if (old != from.files.end() && old->second == content) continue;
      const std::string a = tmp_ / "rdiff.old", b = tmp_ / "rdiff.new";
      testing::WriteFile(a, old != from.files.end() ? old->second : "");
      testing::WriteFile(b, content);
      EXPECT_EQ(testing::Run({"/usr/bin/rdiff", "--force", "signature", a,
                              tmp_ / "rdiff.sig"})
                    .exit_code,
                0);
      EXPECT_EQ(testing::Run({"/usr/bin/rdiff", "--force", "delta",
                              tmp_ / "rdiff.sig", b, tmp_ / "rdiff.delta"})
                    .exit_code,
                0);
      sum += testing::ReadFile(tmp_ / "rdiff.delta").size();
    }
    return sum;
  }
};

TEST_F(DeploymentTest, ARedeploymentCostsAboutWhatRdiffNeedsForItsChanges) {
  Up(2);
  auto before = CurrentDeployment(Options(1));
  ASSERT_TRUE(before.ok()) << before.status();
  const double from = Received();
  const std::string id = Deploy(1, 5);
  ASSERT_EQ(Deploy(2, 5), id);  // The same deployment on both hosts.
  ASSERT_TRUE(Checkpoint().ok());
  const double wire = Received() - from;
  auto after = CurrentDeployment(Options(1));
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->id, id);
  uint64_t content = 0, identical = 0;
  for (const auto& [name, bytes] : after->files) {
    content += bytes.size();
    auto old = before->files.find(name);
    identical += old != before->files.end() && old->second == bytes;
  }
  const uint64_t rdiff = 2 * RdiffBytes(*before, *after);
  std::printf(
      "redeployment on 2 hosts: %.0f bytes on the wire, %llu content bytes, "
      "rdiff needs %llu for the changed stores (%llu of %zu files "
      "identical): %.2fx rdiff\n",
      wire, static_cast<unsigned long long>(2 * content),
      static_cast<unsigned long long>(rdiff),
      static_cast<unsigned long long>(identical), after->files.size(),
      wire / rdiff);
  EXPECT_GE(identical, 10u);
  EXPECT_LE(wire, 1.3 * rdiff);
  for (int i = 1; i <= 2; ++i) {
    EXPECT_TRUE(absl::StrContains(
        testing::ReadFile(Gw(Standby(i), "groups/deployments.json")), id));
  }
}

TEST_F(DeploymentTest, AHalfDoneDeploymentHeldTwoMinutesCostsItsDeltaOnce) {
  Up(2, /*follow=*/true);
  WaitHealthy();
  auto before = CurrentDeployment(Options(1));
  ASSERT_TRUE(before.ok()) << before.status();
  const uint64_t first_attempt = Status().last_attempt().id();
  const double from = Received();
  // gw1's instance switches; gw2's stays on the old one for two minutes.
  const std::string id = Deploy(1, 9);
  ASSERT_EQ(Deploy(2, 9, /*switch_count=*/0), id);
  gwmirror::v1::ClusterStatus s =
      WaitFor([](const auto& s) { return s.state() == "HELD"; }, "the hold");
  EXPECT_TRUE(absl::StrContains(s.state_reason(), "QuickStart Group"))
      << s.state_reason();
  EXPECT_TRUE(absl::StrContains(s.state_reason(), id)) << s.state_reason();
  EXPECT_TRUE(absl::StrContains(s.state_reason(), before->id))
      << s.state_reason();
  absl::SleepFor(absl::Minutes(2));
  s = Status();
  EXPECT_EQ(s.state(), "HELD") << s.state_reason();
  const double held_wire = Received() - from;
  // The last instance switches: committed within 2 s.
  const absl::Time switched = absl::Now();
  testing::WriteFile(
      Gw(Prod(2), "groups/deployments.json"),
      absl::StrReplaceAll(
          testing::ReadFile(Gw(Prod(2), "groups/deployments.json")),
          {{before->id, id}}));
  const std::string standby2 = Gw(Standby(2), "groups/deployments.json");
  while (!absl::StrContains(testing::ReadFile(standby2), id) &&
         absl::Now() < switched + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const double commit_s = absl::ToDoubleSeconds(absl::Now() - switched);
  ASSERT_TRUE(absl::StrContains(testing::ReadFile(standby2), id));
  s = WaitFor([](const auto& s) { return s.state() == "OK"; }, "OK again");
  const double wire = Received() - from;
  auto after = CurrentDeployment(Options(1));
  ASSERT_TRUE(after.ok());
  const uint64_t rdiff = 2 * RdiffBytes(*before, *after);
  const uint64_t ids = s.last_attempt().id() - first_attempt;
  std::printf(
      "half deployment held 2 min: %.0f bytes on the wire while held, %.0f "
      "in all (rdiff needs %llu: %.2fx), %llu checkpoint ids, committed "
      "%.2f s after the last switch\n",
      held_wire, wire, static_cast<unsigned long long>(rdiff), wire / rdiff,
      static_cast<unsigned long long>(ids), commit_s);
  EXPECT_LE(wire, 1.1 * rdiff);
  EXPECT_LE(ids, 5u);
  EXPECT_LT(commit_s, 2.0);
}

}  // namespace
}  // namespace gwmirror
