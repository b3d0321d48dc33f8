// The two sites apart (issue 19): a sandbox whose sites sit in network
// namespaces of their own behind a shaped link (`sandbox up --wan`). The
// link itself is measured (its round trip and rate are what was asked
// for), then mirroring across it, and a partition healed with no operator
// action. Root only, as CI runs; the longer profiles are in
// tests/bench/wan.sh.
#include <sched.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/sandbox_fixture.h"

namespace gwmirror {
namespace {

using WanTest = ClusterTest;

// The median time of a TCP connect (one round trip) to `address` from
// network namespace `ns`, over `n` tries; -1 when one failed.
double ConnectMs(const std::string& ns, const std::string& address, int n) {
  std::vector<double> ms;
  std::thread probe([&] {
    // setns moves this thread only; "" stays in the machine's namespace.
    if (!ns.empty()) {
      UniqueFd nsfd(open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
      if (!nsfd.valid() || setns(nsfd.get(), CLONE_NEWNET) != 0) return;
    }
    const size_t colon = address.rfind(':');
    struct sockaddr_in sa = {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(std::stoi(address.substr(colon + 1)));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    for (int i = 0; i < n; ++i) {
      UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      const absl::Time start = absl::Now();
      if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) !=
          0) {
        return;
      }
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
  });
  probe.join();
  if (static_cast<int>(ms.size()) != n) return -1;
  std::sort(ms.begin(), ms.end());
  return ms[n / 2];
}

std::string Host(const std::string& address) {
  return address.substr(0, address.rfind(':'));
}

// The link is what was asked for: its round trip (from the relay) within a
// few ms, its rate (from tbf) at least 80 % and never above, reshaped while
// everything runs; sandbox.json says where each daemon runs; the machine's
// namespace reaches every daemon without crossing the link.
TEST_F(WanTest, TheLinkHasTheShapeAskedFor) {
  Up(1, /*follow=*/false, "small", false,
     {"--wan", "delay=40ms,jitter=4ms,rate=20mbit"});
  const gwmirror::v1::SandboxWan& wan = sb_.wan();
  const auto& prod = sb_.slots(0).production();
  const auto& standby = sb_.slots(0).standby();
  ASSERT_FALSE(wan.id().empty());
  EXPECT_TRUE(wan.link_up());
  EXPECT_EQ(prod.netns(), wan.namespaces().at("production"));
  EXPECT_EQ(standby.netns(), wan.namespaces().at("standby"));
  EXPECT_EQ(sb_.coordinator_process().netns(), standby.netns());
  EXPECT_EQ(Host(prod.address()), wan.addresses().at("production"));

  double rtt = ConnectMs(prod.netns(), standby.address(), 15);
  std::printf("round trip production -> standby: %.2f ms (asked 40)\n", rtt);
  EXPECT_NEAR(rtt, 40, 5);
  EXPECT_NEAR(ConnectMs(standby.netns(), prod.address(), 15), 40, 5);
  // Inside a site, and from the machine, no WAN.
  for (const auto& [ns, to] :
       {std::make_pair(standby.netns(), sb_.coordinator()),
        std::make_pair(std::string(), prod.address())}) {
    const double ms = ConnectMs(ns, to, 5);
    EXPECT_GE(ms, 0) << "from " << ns << " to " << to;
    EXPECT_LT(ms, 3) << "from " << ns << " to " << to;
  }

  // The rate: the bytes that cross the link (the tun devices' counters in
  // the router namespace, both directions: the acks are about 2 %) while a
  // large file crosses, sampled every 0.5 s while the 16 MiB (6.7 s at the cap)
  // cross. The rate is the best 2 s window, so a moment when a loaded CI
  // machine starves the sender or the relay does not count against the link; at
  // least the 80 % of the configured rate, and never above it.
  WriteNoise(Gw(Prod(1), "conf/wan-large.bin"), 16);
  std::thread cut([&] { (void)Checkpoint(); });
  auto crossed = [&] {
    RunResult r =
        testing::Run({"/usr/sbin/ip", "netns", "exec", wan.router_namespace(),
                      "cat", "/sys/class/net/wa/statistics/tx_bytes",
                      "/sys/class/net/wb/statistics/tx_bytes"});
    double sum = 0;
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      double bytes = 0;
      if (absl::SimpleAtod(line, &bytes)) sum += bytes;
    }
    return sum;
  };
  const std::string metrics = MetricsAddress(standby);
  const double pushed_from =
      Sample(Scrape(metrics), "gwmirror_replica_received_bytes_total");
  const absl::Time pushed_start = absl::Now();
  absl::SleepFor(absl::Seconds(1));
  std::vector<std::pair<absl::Time, double>> samples;
  for (int i = 0; i < 9; ++i) {
    samples.emplace_back(absl::Now(), crossed());
    absl::SleepFor(absl::Milliseconds(500));
  }
  double rate = 0;
  for (size_t i = 4; i < samples.size(); ++i) {
    const auto& [t0, b0] = samples[i - 4];
    const auto& [t1, b1] = samples[i];
    rate = std::max(rate, (b1 - b0) / absl::ToDoubleSeconds(t1 - t0));
  }
  const double pushed =
      (Sample(Scrape(metrics), "gwmirror_replica_received_bytes_total") -
       pushed_from) /
      absl::ToDoubleSeconds(absl::Now() - pushed_start);
  std::printf(
      "20 Mbit/s link: %.2f Mbit/s crossed it at best, %.2f Mbit/s of push "
      "messages arrived on average\n",
      rate * 8 / 1e6, pushed * 8 / 1e6);
  EXPECT_GT(rate, 0.80 * 2.5e6);
  EXPECT_LT(rate, 1.05 * 2.5e6);
  cut.join();

  RunResult set = testing::Run({Bin("gwmirror"), "sandbox", "link", "set",
                                "delay=80ms", "--dir", Dir()});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  rtt = ConnectMs(prod.netns(), standby.address(), 15);
  std::printf("reshaped: %.2f ms (asked 80)\n", rtt);
  EXPECT_NEAR(rtt, 80, 5);

  // A bad shape is refused naming the part, and changes nothing.
  RunResult bad = testing::Run({Bin("gwmirror"), "sandbox", "link", "set",
                                "delay=80ms,loss=3", "--dir", Dir()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.err, "loss=3 is not a percentage"))
      << bad.err;
  EXPECT_NEAR(ConnectMs(prod.netns(), standby.address(), 5), 80, 5);
}

// Continuous mirroring through delay=50ms,rate=20mbit; then the link goes
// down while production keeps changing: status shows the source gone and
// RPO rising, nothing half-applied; healed, the standby catches up with no
// operator action and RPO falls back under 5 s within 30 s.
TEST_F(WanTest, MirrorsAcrossTheLinkAndHealsAPartitionByItself) {
  Up(1, /*follow=*/true, "small", false,
     {"--wan", "delay=50ms,jitter=5ms,rate=20mbit"});
  const std::string probe = Gw(Prod(1), "conf/wan-probe.props");
  const std::string mirror = Gw(Standby(1), "conf/wan-probe.props");
  // One change crosses in about a second (settle, cut, push, commit).
  testing::WriteFile(probe, "v=1\n");
  const absl::Time wrote = absl::Now();
  while (ReadFileToString(mirror).value_or("") != "v=1\n" &&
         absl::Now() - wrote < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration latency = absl::Now() - wrote;
  std::printf("one change across the WAN in %.2f s\n",
              absl::ToDoubleSeconds(latency));
  EXPECT_LT(latency, absl::Seconds(5));

  RunResult down = testing::Run(
      {Bin("gwmirror"), "sandbox", "link", "down", "--dir", Dir()});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  // Production keeps changing for 20 s (the 60 s version is in the bench).
  int edits = 0;
  const absl::Time cut_off = absl::Now();
  gwmirror::v1::ClusterStatus during;
  while (absl::Now() - cut_off < absl::Seconds(20)) {
    testing::WriteFile(probe, absl::StrCat("v=", 2 + edits, "\n"));
    testing::WriteFile(Gw(Prod(1), absl::StrCat("conf/churn-", edits % 7)),
                       std::string(1000 + edits, 'x'));
    ++edits;
    absl::SleepFor(absl::Milliseconds(200));
  }
  during = Status();
  EXPECT_NE(during.slots(0).state(), "OK") << ToJson(during);
  EXPECT_FALSE(during.slots(0).source().healthy());
  EXPECT_GT(during.rpo_ms(), 15'000);
  // Nothing half-applied: the standby holds a recorded checkpoint's tree.
  const uint64_t applied = during.slots(0).replica().applied_checkpoint();
  EXPECT_EQ(applied, during.last_consistent().id());

  RunResult up =
      testing::Run({Bin("gwmirror"), "sandbox", "link", "up", "--dir", Dir()});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  const absl::Time healed = absl::Now();
  const std::string last = absl::StrCat("v=", 1 + edits, "\n");
  while (absl::Now() - healed < absl::Seconds(30) &&
         (ReadFileToString(mirror).value_or("") != last ||
          Status().rpo_ms() >= 5000)) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const double caught_up = absl::ToDoubleSeconds(absl::Now() - healed);
  std::printf(
      "partition of 20 s with %d edits: caught up %.2f s after healing\n",
      edits, caught_up);
  EXPECT_LT(caught_up, 30);
  EXPECT_EQ(testing::Diff(Tree(Prod(1)), Tree(Standby(1))), "");
  EXPECT_LT(Status().rpo_ms(), 5000);
}

// The coordinator beside the sources, the replicas across the link (so the
// commit crosses it too): a partition at each phase of a checkpoint (cut
// recorded, pushes done, commit point passed) ends with it applied on
// every standby or on none, and the cluster heals by itself. A promote
// that cannot reach the standby site changes nothing and says what to do.
TEST_F(WanTest, APartitionAtEachPhaseAppliesEverywhereOrNowhere) {
  Up(2, /*follow=*/false, "small", false,
     {"--wan", "delay=20ms", "--coordinator-site", "production"});
  ASSERT_EQ(sb_.coordinator_process().netns(),
            sb_.slots(0).production().netns());
  const std::string pause = Dir() + "/pause";
  pid_t coordinator = sb_.coordinator_process().pid();
  auto link = [&](const char* how) {
    RunResult r =
        testing::Run({Bin("gwmirror"), "sandbox", "link", how, "--dir", Dir()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  auto applied = [&](const gwmirror::v1::ClusterStatus& s) {
    return std::make_pair(s.slots(0).replica().applied_checkpoint(),
                          s.slots(1).replica().applied_checkpoint());
  };
  struct Phase {
    const char* point;
    bool applies;
  };
  int round = 0;
  for (const Phase& phase : {Phase{"cut", false}, Phase{"staged", false},
                             Phase{"consistent", true}}) {
    SCOPED_TRACE(phase.point);
    // The coordinator again, to stop at this phase of its next checkpoint.
    testing::WriteFile(pause, "");
    unlink((pause + ".reached").c_str());
    kill(coordinator, SIGKILL);
    for (int i = 0; i < 500 && !Gone(coordinator); ++i) usleep(10000);
    coordinator =
        Restart(sb_.coordinator_process(),
                {{"GWMIRROR_FAULT",
                  absl::StrCat("pause:coordinator:", phase.point, ":1")},
                 {"GWMIRROR_FAULT_PAUSE", pause}})
            ->pid();
    WaitHealthy();
    const auto before = applied(Status());
    ASSERT_EQ(before.first, before.second);
    ++round;
    for (int i = 1; i <= 2; ++i) {
      testing::WriteFile(Gw(Prod(i), "conf/phase.props"),
                         absl::StrCat("round=", round, "\n"));
    }
    RunResult cut;
    std::thread create([&] { cut = Cli({"checkpoint", "create", "--wait"}); });
    for (int i = 0; i < 300 && access((pause + ".reached").c_str(), F_OK) != 0;
         ++i) {
      usleep(100000);
    }
    link("down");
    unlink(pause.c_str());  // The coordinator goes on, into the partition.
    create.join();
    EXPECT_NE(cut.exit_code, 0) << cut.out;
    std::printf("partition at %s: %s", phase.point, cut.err.c_str());
    link("up");
    // Healed: every standby at the same checkpoint, this one or the one
    // before, with no operator action.
    const uint64_t id = Status().last_attempt().id();
    const auto settled = WaitFor(
        [&](const auto& s) {
          const auto a = applied(s);
          return AllHealthy(s) && a.first == a.second &&
                 a.first == (phase.applies ? id : before.first) &&
                 s.last_attempt().state() ==
                     (phase.applies ? gwmirror::v1::CHECKPOINT_STATE_APPLIED
                                    : gwmirror::v1::CHECKPOINT_STATE_ABORTED);
        },
        "every standby at one checkpoint, applied or aborted");
    EXPECT_EQ(settled.last_attempt().id(), id);
  }
  auto after = Checkpoint();
  ASSERT_TRUE(after.ok()) << after.status();
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(testing::Diff(Tree(Prod(i)), Tree(Standby(i))), "") << i;
  }

  link("down");
  RunResult promote = Cli({"promote", "--yes"});
  link("up");
  EXPECT_NE(promote.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(promote.err, "Nothing changed")) << promote.err;
  EXPECT_TRUE(absl::StrContains(promote.err, "promote --force")) << promote.err;
  const gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.active_site(), "production");
  EXPECT_EQ(s.epoch(), 1u);
}

// The coordinator at a witness site with its own link to both: when the
// sites' link goes down it still sees every node (healthy, the lag
// rising, cuts failing for want of the link), and after healing the
// standby catches up by itself.
TEST_F(WanTest, AWitnessCoordinatorSeesBothSidesOfAPartition) {
  Up(1, /*follow=*/true, "small", false,
     {"--wan", "delay=20ms", "--coordinator-site", "witness"});
  const gwmirror::v1::SandboxWan& wan = sb_.wan();
  ASSERT_TRUE(wan.namespaces().contains("witness"));
  EXPECT_EQ(sb_.coordinator_process().netns(), wan.namespaces().at("witness"));
  // Its link to either site has the shape too.
  EXPECT_NEAR(ConnectMs(wan.namespaces().at("witness"),
                        sb_.slots(0).production().address(), 9),
              20, 4);
  const std::string probe = Gw(Prod(1), "conf/witness.props");
  const std::string mirror = Gw(Standby(1), "conf/witness.props");
  RunResult down = testing::Run(
      {Bin("gwmirror"), "sandbox", "link", "down", "--dir", Dir()});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  testing::WriteFile(probe, "during=1\n");
  const auto during =
      WaitFor([](const auto& s) { return s.slots(0).lag_ms() > 8000; },
              "the lag rising while the sites are apart");
  EXPECT_TRUE(during.slots(0).source().healthy()) << ToJson(during);
  EXPECT_TRUE(during.slots(0).replica().healthy()) << ToJson(during);
  EXPECT_NE(ReadFileToString(mirror).value_or(""), "during=1\n");
  RunResult up =
      testing::Run({Bin("gwmirror"), "sandbox", "link", "up", "--dir", Dir()});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  WaitFor(
      [&](const auto& s) {
        return ReadFileToString(mirror).value_or("") == "during=1\n" &&
               s.slots(0).lag_ms() == 0;
      },
      "the standby caught up after healing");
}

}  // namespace
}  // namespace gwmirror
