// The whole cluster as operators run it: `gwmirror sandbox up` (a real
// coordinator and real nodes on loopback with mutual TLS), the CLI, and
// processes killed and restarted at chosen points of the checkpoint
// protocol.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/cluster_state.h"
#include "common/config.h"
#include "common/epoch.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/sample/generator.h"
#include "node/topology_report.h"
#include "tests/e2e/sandbox_fixture.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::Bin;
using testing::Child;
using testing::RunResult;

// Changes on every slot, one checkpoint: each standby tree equals its
// production tree as of the cut, and every slot moved to the same id.
TEST_F(ClusterTest, ThreeSlotsMoveTogetherToTheCut) {
  Up(3);
  std::vector<Manifest> want;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(ApplyChangeSet(Prod(i), kPrefix, 10 + i, 0.05, 10, 10, 5).ok());
    want.push_back(Tree(Prod(i)));
  }
  auto id = Checkpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(testing::Diff(want[i - 1], Tree(Standby(i))), "")
        << "slot gw" << i;
  }
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.state(), "OK");
  EXPECT_TRUE(s.parity()) << ToJson(s);
  // For scripts: --check's exit code, and zero fields present in JSON.
  RunResult check = Cli({"status", "--check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_TRUE(absl::StartsWith(check.out, "gwmirror OK")) << check.out;
  RunResult json = Cli({"status", "--json"});
  EXPECT_TRUE(absl::StrContains(json.out, "\"lag_ms\": \"") &&
              absl::StrContains(json.out, "\"held\": \"\""))
      << json.out;
  EXPECT_EQ(s.last_consistent().id(), *id);
  EXPECT_GE(s.rpo_ms(), 0);
  ASSERT_EQ(s.slots_size(), 3);
  for (const auto& slot : s.slots()) {
    EXPECT_EQ(slot.replica().applied_checkpoint(), *id) << slot.name();
  }
  auto committed = Committed();
  ASSERT_EQ(committed.size(), 2u);  // The sandbox's first one, and ours.
  EXPECT_EQ(committed[0].id(), *id);
  EXPECT_EQ(committed[0].digests().size(), 3u);

  // The human status names every slot and the verdict.
  RunResult human = Cli({"status"});
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(human.out, "slot gw3")) << human.out;
  EXPECT_TRUE(absl::StrContains(human.out, "topology: parity")) << human.out;
}

// LAGGING for real: a change whose content nothing takes to the standby (a
// manual cluster without pre-streaming) outlives the threshold; status and
// --check (exit 1, a warning) say so, and a checkpoint brings the slot back
// to OK.
TEST_F(ClusterTest, AChangeNoCutTakesMakesTheSlotLagging) {
  Up(1, /*follow=*/false, "small", /*databases=*/false, {"--no-prestage"});
  ReconfigureCoordinator([](gwmirror::v1::CoordinatorConfig* c) {
    c->set_lagging_after_ms(1500);
  });
  EXPECT_EQ(Status().state(), "OK");
  testing::WriteFile(Gw(Prod(1), "conf/late.props"), "late=1\n");
  gwmirror::v1::ClusterStatus s = WaitFor(
      [](const gwmirror::v1::ClusterStatus& s) {
        return s.slots(0).state() == "LAGGING";
      },
      "the slot LAGGING");
  EXPECT_EQ(s.state(), "LAGGING") << ToJson(s);
  EXPECT_GE(s.slots(0).lag_ms(), 1500);
  RunResult check = Cli({"status", "--check"});
  EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
  EXPECT_TRUE(absl::StartsWith(check.out, "gwmirror LAGGING")) << check.out;
  auto id = Checkpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  s = WaitFor(
      [](const gwmirror::v1::ClusterStatus& s) { return s.state() == "OK"; },
      "the cluster OK again");
  EXPECT_EQ(Cli({"status", "--check"}).exit_code, 0);
}

// A replica accepts pushes only from its slot's source certificate: gw2's
// source pushing to gw1's replica is refused and changes nothing.
TEST_F(ClusterTest, ReplicaRefusesAnotherSlotsSource) {
  Up(2);
  Manifest before = Tree(Standby(1));
  testing::WriteFile(Gw(Prod(1), "conf/intrusion.xml"), "<x/>");
  gwmirror::v1::NodeConfig c;
  c.set_slot("gw1");
  c.set_host_root(Prod(1));
  c.set_state_dir(tmp_ / "intruder-state");
  *c.mutable_tls() = Tls("gw2-production");
  for (const auto& r : roots_) *c.add_roots() = r;
  c.mutable_source()->set_replica_address(sb_.slots(0).standby().address());
  c.mutable_source()->set_replica_identity("gw1-standby");
  testing::WriteFile(tmp_ / "intruder.json", ToJson(c));
  RunResult r = testing::Run({Bin("gwmirror-node"), "push", "--config",
                              tmp_ / "intruder.json", "--checkpoint", "99",
                              "--epoch", "1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "\"gw2-production\" (nobody) may not"))
      << r.err;
  // The Push call itself, without the reads a source starts with.
  auto ch = DialMutualTls(Tls("gw2-production"),
                          sb_.slots(0).standby().address(), "gw1-standby");
  ASSERT_TRUE(ch.ok());
  grpc::ClientContext ctx;
  gwmirror::v1::PushResult result;
  auto writer = gwmirror::v1::Replica::NewStub(*ch)->Push(&ctx, &result);
  gwmirror::v1::PushMessage begin;
  begin.mutable_begin()->mutable_envelope()->set_epoch(1);
  begin.mutable_begin()->set_checkpoint(99);
  begin.mutable_begin()->set_base_checkpoint(1);
  writer->Write(begin);
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  EXPECT_EQ(st.error_code(), grpc::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(st.error_message(),
                                "\"gw2-production\" (nobody) may not call "
                                "Replica.Push here (allowed: source)"))
      << st.error_message();
  EXPECT_EQ(testing::Diff(before, Tree(Standby(1))), "");
}

// Writers change files on every slot while checkpoints are cut: each
// applied checkpoint shows, per slot, a state the source really passed
// through, and all slots are at the same checkpoint.
TEST_F(ClusterTest, UnderChurnEachCheckpointIsAStateThatExisted) {
  Up(2);
  constexpr int kFiles = 3;
  using State = std::array<int, kFiles>;
  struct Writer {
    std::mutex mu;
    std::set<State> states;
    std::thread thread;
  };
  std::array<Writer, 2> writers;
  std::atomic<bool> stop{false};
  // Three files far apart in the scan order, the middle one big enough
  // that hashing it takes a while: a scan that is not verified stable would
  // see them at different moments.
  auto path = [&](const std::string& root, int f) {
    const char* rel[kFiles] = {"conf/churn-0.txt", "groups/churn-1.bin",
                               "ext/churn-2.txt"};
    return Gw(root, rel[f]);
  };
  auto content = [](int f, int k) {
    std::string c = absl::StrCat("v", k, "\n");
    if (f == 1) c.resize(4 << 20, 'x');
    return c;
  };
  for (int i = 1; i <= 2; ++i) {
    for (int f = 0; f < kFiles; ++f)
      testing::WriteFile(path(Prod(i), f), content(f, 0));
    writers[i - 1].states.insert(State{0, 0, 0});
  }
  for (int i = 1; i <= 2; ++i) {
    Writer* w = &writers[i - 1];
    std::string root = Prod(i);
    std::string tmp =
        root + "/tmp";  // Outside the mirror set, same file system.
    ASSERT_TRUE(MakeDirs(tmp).ok());
    w->thread = std::thread([&, w, root, tmp] {
      State v{0, 0, 0};
      // Bounded: at most 4000 writes or 60 s.
      absl::Time end = absl::Now() + absl::Seconds(60);
      for (int k = 1; k <= 4000 && !stop && absl::Now() < end; ++k) {
        int f = k % kFiles;
        v[f] = k;
        std::string t = absl::StrCat(tmp, "/churn.tmp");
        testing::WriteFile(t, content(f, k));
        rename(t.c_str(), path(root, f).c_str());
        {
          std::lock_guard<std::mutex> l(w->mu);
          w->states.insert(v);
        }
        // Bursts of writes with quiet gaps, as configuration changes come.
        usleep(k % 30 == 0 ? 80000 : 500);
      }
    });
  }
  auto read_state = [&](const std::string& root) {
    State s;
    for (int f = 0; f < kFiles; ++f) {
      std::string data = testing::ReadFile(path(root, f));
      absl::string_view text = absl::StripAsciiWhitespace(
          absl::string_view(data).substr(0, data.find('\n')));
      if (!absl::ConsumePrefix(&text, "v") || !absl::SimpleAtoi(text, &s[f])) {
        s[f] = -1;
      }
    }
    return s;
  };
  std::set<State> seen[2];
  int ok = 0;
  for (int round = 0; round < 6; ++round) {
    auto id = Checkpoint();
    if (!id.ok()) {
      // Only "the tree kept changing" may fail a cut under churn.
      EXPECT_TRUE(absl::StrContains(id.status().message(), "kept changing"))
          << id.status();
      continue;
    }
    ++ok;
    for (int i = 1; i <= 2; ++i) {
      State got = read_state(Standby(i));
      std::lock_guard<std::mutex> l(writers[i - 1].mu);
      EXPECT_TRUE(writers[i - 1].states.count(got))
          << "slot gw" << i << " checkpoint " << *id << " holds " << got[0]
          << "," << got[1] << "," << got[2] << ": never a state of the source";
      seen[i - 1].insert(got);
    }
    gwmirror::v1::ClusterStatus status = Status();
    for (const auto& slot : status.slots()) {
      EXPECT_EQ(slot.replica().applied_checkpoint(), *id) << slot.name();
    }
  }
  stop = true;
  for (auto& w : writers) w.thread.join();
  EXPECT_GE(ok, 4);
  EXPECT_GE(seen[0].size(), 3u) << "the churn did not reach the standby";
  auto id = Checkpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(testing::Diff(Tree(Prod(i)), Tree(Standby(i))), "");
  }
}

// A replica dies while N is staged: N aborts, naming the slot; the standby
// is untouched; once the replica is back, N+1 commits everywhere.
TEST_F(ClusterTest, ReplicaKilledMidCheckpointAbortsItAndTheNextCommits) {
  Up(2);
  ASSERT_TRUE(ApplyChangeSet(Prod(2), kPrefix, 5, 0.05, 5, 5, 5).ok());
  Manifest before = Tree(Standby(2));
  Kill(sb_.slots(1).standby());
  Child* crashing = Restart(sb_.slots(1).standby(),
                            {{"GWMIRROR_FAULT", "crash:stage:write:1"}});
  WaitHealthy();
  uint64_t last = Status().last_attempt().id();

  auto failed = Checkpoint();
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(
      absl::StrContains(failed.status().message(),
                        absl::StrCat("checkpoint ", last + 1, " aborted")))
      << failed.status();
  EXPECT_TRUE(absl::StrContains(failed.status().message(), "gw2"))
      << failed.status();
  int ws = crashing->Wait();
  EXPECT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.last_attempt().id(), last + 1);
  EXPECT_EQ(s.last_attempt().state(), gwmirror::v1::CHECKPOINT_STATE_ABORTED);
  for (const auto& c : Committed()) EXPECT_NE(c.id(), last + 1);
  EXPECT_EQ(testing::Diff(before, Tree(Standby(2))), "");

  Restart(sb_.slots(1).standby());
  WaitHealthy();
  auto next = Checkpoint();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, last + 2);
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(testing::Diff(Tree(Prod(i)), Tree(Standby(i))), "");
  }
}

// The coordinator SIGKILLed at each step of the protocol: after a restart
// nothing committed is lost, nothing is committed twice, a checkpoint
// killed before its commit point never commits, one killed after it is
// applied everywhere, and the next checkpoint commits.
TEST_F(ClusterTest, CoordinatorKilledAtEachStepResumes) {
  Up(2);
  const gwmirror::v1::SandboxProcess& coord = sb_.coordinator_process();
  Kill(coord);
  std::unique_ptr<Child> current;
  for (const CrashStep& step : kCoordinatorCrashSteps) {
    SCOPED_TRACE(step.point);
    testing::WriteFile(Gw(Prod(1), "conf/step.txt"), step.point);
    testing::WriteFile(Gw(Prod(2), "conf/step.txt"), step.point);
    current.reset();
    current = std::make_unique<Child>(
        std::vector<std::string>(coord.argv().begin(), coord.argv().end()),
        std::map<std::string, std::string>{
            {"GWMIRROR_FAULT", absl::StrCat("crash:", step.point, ":1")}},
        coord.log());
    WaitHealthy();
    uint64_t n = Status().last_attempt().id() + 1;
    auto failed = Checkpoint();
    EXPECT_FALSE(failed.ok());
    int ws = current->Wait();
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) << "did not crash";

    current = std::make_unique<Child>(
        std::vector<std::string>(coord.argv().begin(), coord.argv().end()),
        std::map<std::string, std::string>{}, coord.log());
    WaitHealthy();
    ExpectSettledAndGoingOn(n, step.committed);
  }
}

// Topology drift, one finding at a time: each is named in words, strict
// policy blocks commits until it is fixed.
TEST_F(ClusterTest, TopologyDriftIsNamedAndBlocksCommits) {
  Up(2);
  auto blocked = [&](const std::string& needle) {
    gwmirror::v1::ClusterStatus s =
        WaitFor([&](const auto& st) { return Mentions(st, needle); }, needle);
    EXPECT_EQ(s.state(), "BLOCKED");
    auto r = Checkpoint();
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : std::string(r.status().message());
  };
  auto unblocked = [&] {
    WaitFor([](const auto& s) { return s.parity() && AllHealthy(s); },
            "parity");
    auto r = Checkpoint();
    EXPECT_TRUE(r.ok()) << r.status();
  };

  // 1. Production's topology gains host-3 with two instances; no node
  //    serves it.
  std::string topo_rel = "groups/topology.json";
  std::string original = testing::ReadFile(Gw(Prod(1), topo_rel));
  auto topo = ParseTopology(original);
  ASSERT_TRUE(topo.ok());
  topo->set_version(topo->version() + 1);
  auto* host = topo->add_hosts();
  host->set_id("host-3");
  host->set_name("gw3.example.com");
  for (int k = 8; k <= 9; ++k) {
    auto* svc = topo->mutable_groups(1)->add_services();
    svc->set_id(absl::StrCat("instance-", k));
    svc->set_name(absl::StrCat("Gateway", k));
    svc->set_type("gateway");
    svc->set_host_id("host-3");
  }
  for (int i = 1; i <= 2; ++i)
    testing::WriteFile(Gw(Prod(i), topo_rel), ToJson(*topo));
  std::string why = blocked(
      "production topology has host-3 (gw3.example.com, 2 gateway instances) "
      "but no standby node serves it");
  EXPECT_TRUE(absl::StrContains(why, "topology parity fails")) << why;
  for (int i = 1; i <= 2; ++i)
    testing::WriteFile(Gw(Prod(i), topo_rel), original);
  unblocked();

  // 2. The standby gw2 has another product version installed.
  std::string version = Gw(Standby(2), "system/lib/version.properties");
  std::string good = testing::ReadFile(version);
  testing::WriteFile(version, "product.version=7.7.20220530\n");
  why = blocked(
      "standby gw2 has 7.7.20220530 installed, production gw2 has "
      "7.7.20221130");
  EXPECT_TRUE(absl::StrContains(why, "7.7.20220530")) << why;
  testing::WriteFile(version, good);
  unblocked();

  // 3. The standby gw2 node is missing.
  Kill(sb_.slots(1).standby());
  blocked(
      "production topology has host-2 (gw2.example.com, 1 gateway instance) "
      "but no standby node serves it");
  Restart(sb_.slots(1).standby());
  unblocked();
  EXPECT_EQ(testing::Diff(Tree(Prod(2)), Tree(Standby(2))), "");
}

// A large push shows its progress: the source's heartbeats carry the files
// and bytes it has sent of those it must, and status shows them per slot
// while the checkpoint runs (issue 21).
TEST_F(ClusterTest, ALargePushShowsItsProgressInStatus) {
  Up(1);
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  gwmirror::v1::NodeConfig nc;
  ASSERT_TRUE(ParseJson(testing::ReadFile(prod.config()), "config", &nc).ok());
  nc.mutable_coordinator()->set_heartbeat_ms(50);
  // A cap, so the push lasts about 2 s however fast the machine is (it
  // was over before a status could see it, now and then).
  nc.mutable_bandwidth()->set_max_send_rate("512mbit");
  Kill(prod);
  testing::WriteFile(prod.config(), ToJson(nc));
  Restart(prod);
  WaitHealthy();
  // 128 MiB that compress poorly, so the push takes a while on loopback.
  WriteNoise(Gw(Prod(1), "conf/large-store.xml"), 128);
  const uint64_t before = Status().last_attempt().id();
  absl::StatusOr<uint64_t> id;
  std::thread cut([&] { id = Checkpoint(); });
  gwmirror::v1::SyncProgress seen;
  const absl::Time until = absl::Now() + absl::Seconds(120);
  while (absl::Now() < until) {
    gwmirror::v1::ClusterStatus s = Status();
    if (s.slots_size() == 1 && s.slots(0).has_progress()) {
      const auto& p = s.slots(0).progress();
      if (p.bytes_done() > 0 && p.bytes_done() < p.bytes_total()) {
        seen = p;
        break;
      }
    }
    if (s.last_attempt().id() > before &&
        s.last_attempt().state() == gwmirror::v1::CHECKPOINT_STATE_APPLIED) {
      break;  // Done before we saw it under way.
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  cut.join();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_GE(seen.bytes_total(), 128u << 20) << seen.DebugString();
  EXPECT_GT(seen.bytes_done(), 0u);
  EXPECT_GE(seen.files_total(), 1u);
  EXPECT_GT(seen.started_unix_ms(), 0);
  // Once committed, no push is under way.
  WaitFor([](const auto& s) { return !s.slots(0).has_progress(); },
          "no progress once committed");
}

// A standby's answers that carry bulk (here an export of a checkpoint)
// draw from its own node's cap, as its pushes would after a promote: its
// send rate shows them, and they take at least their size over the cap.
TEST_F(ClusterTest, AStandbysBulkAnswersDrawFromItsBandwidthCap) {
  Up(1);
  WriteNoise(Gw(Prod(1), "conf/large-store.xml"), 4);
  auto n = Checkpoint();
  ASSERT_TRUE(n.ok()) << n.status();
  const gwmirror::v1::SandboxProcess& standby = sb_.slots(0).standby();
  gwmirror::v1::NodeConfig nc;
  ASSERT_TRUE(
      ParseJson(testing::ReadFile(standby.config()), "config", &nc).ok());
  nc.mutable_bandwidth()->set_max_send_rate("1MB");
  Kill(standby);
  testing::WriteFile(standby.config(), ToJson(nc));
  Restart(standby);
  WaitHealthy();
  EXPECT_EQ(Sample(Scrape(nc.metrics_listen()), "gwmirror_send_rate_bytes"), 0);
  const std::string out = tmp_ / "export.tar";
  const absl::Time start = absl::Now();
  RunResult r = Cli(
      {"export", "--slot", "gw1", "--checkpoint", absl::StrCat(*n), "-o", out});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  const double rate =
      Sample(Scrape(nc.metrics_listen()), "gwmirror_send_rate_bytes");
  std::printf(
      "export of %.1f MB from a standby capped at 1 MB/s: %.1f s, "
      "send rate %.2f MB/s\n",
      st.st_size / 1e6, absl::ToDoubleSeconds(took), rate / 1e6);
  ASSERT_GT(st.st_size, 4 << 20);
  EXPECT_GT(rate, 0);
  // What is over the bucket's first second waits for the cap.
  EXPECT_GE(took, absl::Seconds(st.st_size / 1e6 - 1.5));
}

// The node's bandwidth cap holds (status and /metrics show the rate and
// the cap), and a new cap taken on SIGHUP applies to the push under way.
TEST_F(ClusterTest, ABandwidthCapHoldsAndChangesOnReload) {
  Up(1);
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  gwmirror::v1::NodeConfig nc;
  ASSERT_TRUE(ParseJson(testing::ReadFile(prod.config()), "config", &nc).ok());
  nc.mutable_coordinator()->set_heartbeat_ms(100);
  nc.mutable_bandwidth()->set_max_send_rate("16mbit");  // 2 MB/s.
  Kill(prod);
  testing::WriteFile(prod.config(), ToJson(nc));
  const pid_t pid = Restart(prod)->pid();
  WaitHealthy();
  WriteNoise(Gw(Prod(1), "conf/large-store.xml"), 64);
  // The pre-stager or a cut sends it; either draws from the one budget.
  std::thread cut([&] { (void)Checkpoint(); });
  // The standby counts what arrives: the witness the sender cannot bias.
  gwmirror::v1::NodeConfig standby;
  ASSERT_TRUE(ParseJson(testing::ReadFile(sb_.slots(0).standby().config()),
                        "config", &standby)
                  .ok());
  auto received = [&] {
    return Sample(Scrape(standby.metrics_listen()),
                  "gwmirror_replica_received_bytes_total");
  };
  // Over [settle, settle + 3 s]: what arrived per second, and what status
  // said the source sent (over its last 5 s) and its cap.
  struct Seen {
    double arrived;
    uint64_t rate, cap;
  };
  auto measure = [&](absl::Duration settle) {
    absl::SleepFor(settle);
    const double from = received();
    absl::SleepFor(absl::Seconds(3));
    const gwmirror::v1::NodeStatus n = Status().slots(0).source();
    return Seen{(received() - from) / 3, n.send_rate(), n.send_cap()};
  };
  Seen seen = measure(absl::Seconds(3));
  std::printf("cap 2 MB/s: %.3f MB/s arrived, status said %.3f\n",
              seen.arrived / 1e6, seen.rate / 1e6);
  EXPECT_NEAR(seen.arrived, 2e6, 0.2e6);
  EXPECT_NEAR(seen.rate, 2e6, 0.2e6);
  EXPECT_EQ(seen.cap, 2'000'000u);
  EXPECT_EQ(Sample(Scrape(nc.metrics_listen()), "gwmirror_send_cap_bytes"),
            2e6);
  nc.mutable_bandwidth()->set_max_send_rate("6MB");
  testing::WriteFile(prod.config(), ToJson(nc));
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  seen = measure(absl::Seconds(2));
  std::printf("cap 6 MB/s after SIGHUP: %.3f MB/s arrived\n",
              seen.arrived / 1e6);
  EXPECT_NEAR(seen.arrived, 6e6, 0.6e6);
  EXPECT_EQ(seen.cap, 6'000'000u);
  cut.join();
  RunResult st = Cli({"status"});
  EXPECT_TRUE(absl::StrContains(st.out, "of a 6.0 MB/s (48 Mbit/s) cap"))
      << st.out;
}

// Instances of one group running different deployment archives (a
// deployment in progress) are not checkpointed: the cut is retried and
// commits once the deployment is through, or fails naming the group.
TEST_F(ClusterTest, SplitDeploymentIsRetriedNotCommitted) {
  Up(2);
  const gwmirror::v1::SandboxProcess& coord = sb_.coordinator_process();
  gwmirror::v1::CoordinatorConfig cc;
  ASSERT_TRUE(ParseJson(testing::ReadFile(coord.config()), "config", &cc).ok());
  cc.set_coherence_retry_ms(200);
  cc.set_coherence_wait_ms(3000);
  Kill(coord);
  testing::WriteFile(coord.config(), ToJson(cc));
  Restart(coord);
  WaitHealthy();

  std::string rel = "groups/deployments.json";
  std::string before = testing::ReadFile(Gw(Prod(1), rel));
  size_t at = before.find("\"archiveID\":\"");
  ASSERT_NE(at, std::string::npos) << before;
  at += 13;
  std::string old_archive = before.substr(at, before.find('"', at) - at);
  // Rewritten in place, as a product may: the source must never read it
  // half written.
  auto deploy = [&](int i) {
    std::string now = testing::ReadFile(Gw(Prod(i), rel));
    testing::WriteFile(
        Gw(Prod(i), rel),
        absl::StrReplaceAll(now, {{old_archive, "archive-new"}}));
  };
  const uint64_t attempts_before = Status().last_attempt().id();
  deploy(1);  // gw1's instance runs the new archive, gw2's the old one.
  // The sources' heartbeats report it before the next cut.
  absl::SleepFor(absl::Milliseconds(1500));
  auto r = Checkpoint();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "deployment in progress"))
      << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "QuickStart Group"))
      << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "finish or roll back"))
      << r.status();
  // The hold is a state: status says HELD with the group, its instances and
  // archives, and since when; --check warns; /metrics counts its seconds.
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.state(), "HELD") << ToJson(s);
  // Held before a checkpoint id is spent: retries burn none.
  EXPECT_EQ(s.last_attempt().id(), attempts_before) << ToJson(s);
  EXPECT_TRUE(absl::StrContains(s.state_reason(),
                                "deployment in progress: group \"QuickStart "
                                "Group\" runs different deployment archives"))
      << s.state_reason();
  EXPECT_TRUE(absl::StrContains(s.state_reason(), "archive-new"))
      << s.state_reason();
  EXPECT_TRUE(absl::StrContains(s.state_reason(), "(since 20"))
      << s.state_reason();
  RunResult check = Cli({"status", "--check"});
  EXPECT_EQ(check.exit_code, 1) << check.out;
  const std::string metrics = Scrape(sb_.metrics());
  EXPECT_GT(Sample(metrics, "gwmirror_cluster_held_seconds"), 0.5);
  // The held gauge carries why as its reason label.
  const size_t held = metrics.find("\ngwmirror_cluster_held{reason=\"");
  ASSERT_NE(held, std::string::npos) << metrics;
  const std::string line =
      metrics.substr(held + 1, metrics.find('\n', held + 1) - held - 1);
  EXPECT_TRUE(absl::StrContains(line, "QuickStart Group")) << line;
  EXPECT_TRUE(absl::StrContains(line, "archive-new")) << line;
  EXPECT_TRUE(absl::EndsWith(line, "} 1")) << line;

  // The deployment completes while a checkpoint is retrying: it commits.
  RunResult result;
  std::thread waiter([&] {
    result = Cli({"checkpoint", "create", "--wait", "--json"});
  });
  usleep(500000);
  deploy(2);
  waiter.join();
  EXPECT_EQ(result.exit_code, 0) << result.err;
  for (int i = 1; i <= 2; ++i) {
    EXPECT_TRUE(absl::StrContains(testing::ReadFile(Gw(Standby(i), rel)),
                                  "archive-new"));
  }
  EXPECT_EQ(Status().state(), "OK");
}

// Messages with a stale epoch or from nodes that are not members are
// refused, each with its code and a message naming the problem.
TEST_F(ClusterTest, StaleEpochsAndUnknownNodesAreRefused) {
  Up(1);
  RunResult issued = testing::Run({Bin("gwmirror"), "certs", "issue", "--dir",
                                   Dir() + "/pki", "--name", "intruder"});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  auto coordinator = [&](const std::string& as) {
    auto ch = DialMutualTls(Tls(as), sb_.coordinator(), "coordinator");
    EXPECT_TRUE(ch.ok());
    return *ch;
  };
  auto expect = [](const grpc::Status& st, grpc::StatusCode code,
                   const std::vector<std::string>& words) {
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    for (const auto& w : words) {
      EXPECT_TRUE(absl::StrContains(st.error_message(), w))
          << "\"" << st.error_message() << "\" lacks \"" << w << "\"";
    }
  };
  auto node_stub =
      gwmirror::v1::Coordinator::NewStub(coordinator("gw1-production"));
  {
    grpc::ClientContext ctx;
    gwmirror::v1::HeartbeatRequest req;
    req.mutable_envelope()->set_epoch(0);
    gwmirror::v1::HeartbeatResponse resp;
    expect(node_stub->Heartbeat(&ctx, req, &resp), grpc::FAILED_PRECONDITION,
           {"stale epoch 0", "epoch 1"});
  }
  {
    grpc::ClientContext ctx;
    gwmirror::v1::RegisterRequest req;
    req.mutable_envelope()->set_epoch(7);
    req.set_site("production");
    req.set_slot("gw1");
    req.set_address("127.0.0.1:1");
    gwmirror::v1::RegisterResponse resp;
    expect(node_stub->Register(&ctx, req, &resp), grpc::FAILED_PRECONDITION,
           {"epoch 7", "epoch 1"});
  }
  {
    grpc::ClientContext ctx;
    gwmirror::v1::RegisterRequest req;
    req.set_site("production");
    req.set_slot("gw2");
    req.set_address("127.0.0.1:1");
    gwmirror::v1::RegisterResponse resp;
    expect(node_stub->Register(&ctx, req, &resp), grpc::PERMISSION_DENIED,
           {"unknown node \"gw1-production\"", "slot \"gw2\""});
  }
  {
    auto stub = gwmirror::v1::Coordinator::NewStub(coordinator("intruder"));
    grpc::ClientContext ctx;
    gwmirror::v1::RegisterRequest req;
    req.set_site("production");
    req.set_slot("gw1");
    req.set_address("127.0.0.1:1");
    gwmirror::v1::RegisterResponse resp;
    expect(stub->Register(&ctx, req, &resp), grpc::PERMISSION_DENIED,
           {"\"intruder\" (nobody) may not call Coordinator.Register"});
  }
  {
    auto stub = gwmirror::v1::Control::NewStub(coordinator("gw1-production"));
    grpc::ClientContext ctx;
    gwmirror::v1::ClusterStatus resp;
    expect(stub->Status(&ctx, gwmirror::v1::StatusRequest(), &resp),
           grpc::PERMISSION_DENIED, {"may not call Control.Status"});
  }
  auto source = [&](const std::string& as) {
    auto ch = DialMutualTls(Tls(as), sb_.slots(0).production().address(),
                            "gw1-production");
    EXPECT_TRUE(ch.ok());
    return gwmirror::v1::Source::NewStub(*ch);
  };
  gwmirror::v1::CutRequest cut;
  cut.set_checkpoint(100);
  cut.set_replica_address(sb_.slots(0).standby().address());
  cut.set_replica_identity("gw1-standby");
  {
    grpc::ClientContext ctx;
    gwmirror::v1::CutResult resp;
    cut.mutable_envelope()->set_epoch(1);
    expect(source("operator")->Cut(&ctx, cut, &resp), grpc::PERMISSION_DENIED,
           {"\"operator\" (operator) may not call Source.Cut"});
  }
  {
    grpc::ClientContext ctx;
    gwmirror::v1::CutResult resp;
    cut.mutable_envelope()->set_epoch(0);
    expect(source("coordinator")->Cut(&ctx, cut, &resp),
           grpc::FAILED_PRECONDITION,
           {"stale epoch 0", "this node is at epoch 1"});
  }
  {
    auto ch = DialMutualTls(Tls("coordinator"),
                            sb_.slots(0).standby().address(), "gw1-standby");
    ASSERT_TRUE(ch.ok());
    auto stub = gwmirror::v1::Replica::NewStub(*ch);
    // A controller may read without knowing the epoch (a forced promote
    // does), and the read adopts nothing.
    {
      grpc::ClientContext ctx;
      gwmirror::v1::GetStateRequest req;
      gwmirror::v1::ReplicaState resp;
      EXPECT_TRUE(stub->GetState(&ctx, req, &resp).ok());
      EXPECT_EQ(resp.epoch(), 1u);
    }
    // Nothing else goes through at a stale epoch.
    grpc::ClientContext ctx;
    gwmirror::v1::CommitRequest req;
    req.set_checkpoint(1);
    gwmirror::v1::CommitResult resp;
    expect(stub->Commit(&ctx, req, &resp), grpc::FAILED_PRECONDITION,
           {"stale epoch 0", "this replica is at epoch 1"});
  }
  // Nothing of that disturbed the cluster.
  auto id = Checkpoint();
  EXPECT_TRUE(id.ok()) << id.status();
}

// Regression (issue 17, finding 1): Register from a standby node's own
// certificate, claiming a forced promote above the current epoch, was
// adopted as one: the standby became active, production was fenced, and
// the next checkpoint wrote standby edits onto production. A claim is now
// adopted only with an operator's signed grant for the claimant's site.
TEST_F(ClusterTest, NoNodeCertificateCanSwitchTheActiveSite) {
  Up(1);
  auto ch = DialMutualTls(Tls("gw1-standby"), sb_.coordinator(), "coordinator");
  ASSERT_TRUE(ch.ok());
  auto stub = gwmirror::v1::Coordinator::NewStub(*ch);
  auto claim = [&](const gwmirror::v1::EpochGrant& g) {
    grpc::ClientContext ctx;
    gwmirror::v1::RegisterRequest req;
    req.mutable_envelope()->set_epoch(2);
    req.set_site("standby");
    req.set_slot("gw1");
    req.set_address(sb_.slots(0).standby().address());
    *req.mutable_forced_promote() = g;
    gwmirror::v1::RegisterResponse resp;
    return stub->Register(&ctx, req, &resp);
  };
  auto expect_denied = [](const grpc::Status& st,
                          const std::vector<std::string>& words) {
    EXPECT_EQ(st.error_code(), grpc::PERMISSION_DENIED) << st.error_message();
    for (const auto& w : words) {
      EXPECT_TRUE(absl::StrContains(st.error_message(), w))
          << "\"" << st.error_message() << "\" lacks \"" << w << "\"";
    }
  };
  gwmirror::v1::EpochGrant bare;
  bare.set_epoch(2);
  bare.set_active_site("standby");
  expect_denied(claim(bare), {"gw1-standby", "epoch 2", "missing"});
  auto own = SignEpochGrant(Tls("gw1-standby"), 2, "standby", absl::Now());
  ASSERT_TRUE(own.ok()) << own.status();
  expect_denied(claim(*own), {"signed by \"gw1-standby\"", "may not raise"});
  auto other_site =
      SignEpochGrant(Tls("operator"), 2, "production", absl::Now());
  ASSERT_TRUE(other_site.ok()) << other_site.status();
  expect_denied(claim(*other_site), {"makes site \"production\" active"});
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.epoch(), 1u);
  EXPECT_EQ(s.active_site(), "production");
  EXPECT_EQ(s.fenced_site(), "");
  // Checkpoints still flow from production to the standby, never back.
  const std::string rel = "conf/envSettings.props";
  const std::string prod_before = testing::ReadFile(Gw(Prod(1), rel));
  testing::WriteFile(Gw(Standby(1), rel), "env.EDITED_ON_STANDBY=1\n");
  auto id = Checkpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(testing::ReadFile(Gw(Prod(1), rel)), prod_before);
}

// Continuous mirroring: one small file changed on production is in the
// standby tree (which only changes by commit) within seconds, every time.
TEST_F(ClusterTest, SmallChangeIsCommittedOnTheStandbyWithinSeconds) {
  Up(2, /*follow=*/true);
  const uint64_t first = Status().last_attempt().id();
  std::vector<double> seconds;
  for (int k = 1; k <= 20; ++k) {
    // Apart by more than change_cut_interval_ms (1 s), which paces cuts
    // under a stream of changes: each change is one after a quiet time.
    absl::SleepFor(absl::Milliseconds(1100));
    std::string content = absl::StrCat("env.CHANGE=", k, "\n");
    absl::Time t0 = absl::Now();
    testing::WriteFile(Gw(Prod(1 + k % 2), "conf/envSettings.props"), content);
    std::string standby = Gw(Standby(1 + k % 2), "conf/envSettings.props");
    while (testing::ReadFile(standby) != content &&
           absl::Now() - t0 < absl::Seconds(20)) {
      usleep(5000);
    }
    ASSERT_EQ(testing::ReadFile(standby), content) << "change " << k;
    seconds.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
  }
  std::sort(seconds.begin(), seconds.end());
  double median = (seconds[9] + seconds[10]) / 2;
  std::printf(
      "small change committed on the standby: median %.3f s, max %.3f s\n",
      median, seconds.back());
  EXPECT_LT(median, 2.0);
  // One cut per change: heartbeats that arrive while a cut runs report the
  // change it is covering, and must not set off a second, empty cut
  // (regression).
  EXPECT_EQ(Status().last_attempt().id(), first + 20);
  // Idle: no cut while nothing changes.
  absl::SleepFor(absl::Seconds(2));
  uint64_t before = Status().last_attempt().id();
  absl::SleepFor(absl::Seconds(3));
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.last_attempt().id(), before) << "cut while idle";
  for (const auto& slot : s.slots()) EXPECT_EQ(slot.lag_ms(), 0) << slot.name();
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(testing::Diff(Tree(Prod(i)), Tree(Standby(i))), "");
  }
}

// While a replica is down, a change on production cannot be staged: the
// slot's lag and the cluster's RPO grow, in status and in /metrics; once
// the replica is back they fall back and the change arrives.
TEST_F(ClusterTest, LagAndRpoGrowWhileAReplicaIsDownAndFallBack) {
  Up(1, /*follow=*/true);
  Kill(sb_.slots(0).standby());
  WaitFor([](const auto& s) { return !AllHealthy(s); }, "the replica lost");
  std::string file = Gw(Prod(1), "conf/while-down.xml");
  testing::WriteFile(file, "<changed/>");
  absl::SleepFor(absl::Seconds(3));
  gwmirror::v1::ClusterStatus s = Status();
  ASSERT_EQ(s.slots_size(), 1);
  EXPECT_GE(s.slots(0).lag_ms(), 2500) << ToJson(s);
  EXPECT_GE(s.rpo_ms(), 3000) << ToJson(s);
  EXPECT_EQ(s.state(), "BLOCKED");  // The standby node is missing.
  EXPECT_EQ(s.slots(0).state(), "PARTITIONED") << ToJson(s);
  EXPECT_TRUE(absl::StrContains(s.slots(0).state_reason(),
                                "standby node gw1-standby unreachable"))
      << ToJson(s);
  RunResult check = Cli({"status", "--check"});
  EXPECT_EQ(check.exit_code, 2) << check.out << check.err;
  EXPECT_TRUE(absl::StartsWith(check.out, "gwmirror BLOCKED")) << check.out;
  std::string m = Scrape(sb_.metrics());
  EXPECT_GE(Sample(m, "gwmirror_slot_lag_seconds{slot=\"gw1\"}"), 2.5) << m;
  EXPECT_GE(Sample(m, "gwmirror_rpo_seconds"), 3.0) << m;
  EXPECT_EQ(Sample(m,
                   "gwmirror_node_up{slot=\"gw1\",site=\"standby\",identity="
                   "\"gw1-standby\"}"),
            0)
      << m;
  // Automatic cuts do not pile up aborted checkpoints while a node is down.
  EXPECT_EQ(Sample(m, "gwmirror_checkpoints{state=\"aborted\"}"), 0) << m;

  Restart(sb_.slots(0).standby());
  s = WaitFor(
      [](const auto& st) {
        return AllHealthy(st) && st.slots(0).lag_ms() == 0 &&
               st.rpo_ms() < 2000;
      },
      "lag and RPO back down");
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), "conf/while-down.xml")),
            "<changed/>");
  m = Scrape(sb_.metrics());
  EXPECT_EQ(Sample(m, "gwmirror_slot_lag_seconds{slot=\"gw1\"}"), 0) << m;
  EXPECT_LT(Sample(m, "gwmirror_rpo_seconds"), 3.0) << m;
}

// A real full disk on the standby (issue 18): its state directory, where
// pushes stage, on a small tmpfs this test mounts. A change too large for
// the space left fails each cut with RESOURCE_EXHAUSTED naming the file and
// the space it needs; status says so; the committed tree stays; failed
// cuts back off instead of piling up; once space is freed the change
// arrives with no operator action.
TEST_F(ClusterTest, AFullStandbyDiskIsNamedAndMirroringResumesOnceFreed) {
  Up(1, /*follow=*/true);
  WaitHealthy();
  const gwmirror::v1::SandboxProcess& standby = sb_.slots(0).standby();
  gwmirror::v1::NodeConfig nc;
  {
    auto json = ReadFileToString(standby.config());
    ASSERT_TRUE(json.ok()) << json.status();
    ASSERT_TRUE(ParseJson(*json, standby.config(), &nc).ok());
  }
  const std::string state = nc.state_dir();
  Kill(standby);
  ASSERT_EQ(rename(state.c_str(), (state + ".disk").c_str()), 0);
  ASSERT_EQ(mkdir(state.c_str(), 0700), 0);
  if (mount("gwmirror-test", state.c_str(), "tmpfs", 0, "size=32m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): "
                 << strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{state};
  ASSERT_EQ(testing::Run({"/bin/cp", "-a", state + ".disk/.", state}).exit_code,
            0);
  Restart(standby);
  WaitHealthy();
  const Manifest committed = Tree(Standby(1));
  const uint64_t applied_before = Status().last_consistent().id();

  // Fill the disk until 6 MiB are left: under the 5 % reserve (1.6 MiB)
  // plus an 8 MiB dump.
  struct statvfs fs;
  ASSERT_EQ(statvfs(state.c_str(), &fs), 0);
  const uint64_t free_bytes = uint64_t(fs.f_bavail) * fs.f_frsize;
  ASSERT_GT(free_bytes, uint64_t(8) << 20);
  testing::WriteFile(state + "/filler",
                     std::string(free_bytes - (6 << 20), 'f'));
  const std::string rel = "conf/fed/large-dump.bin";
  std::string big;
  for (int i = 0; big.size() < (8 << 20); ++i) {
    big += absl::StrCat(i * 2654435761u, ",");  // Not one long run.
  }
  testing::WriteFile(Gw(Prod(1), rel), big);

  gwmirror::v1::ClusterStatus s = WaitFor(
      [&](const auto& st) {
        return st.last_attempt().state() ==
                   gwmirror::v1::CHECKPOINT_STATE_ABORTED &&
               absl::StrContains(st.last_attempt().reason(), "large-dump");
      },
      "a cut aborted for the full disk");
  const std::string reason = s.last_attempt().reason();
  EXPECT_TRUE(absl::StrContains(reason, "no space")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "needs")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "apigateway/conf/fed/large-dump.bin"))
      << reason;
  // Ten seconds of a full disk: cuts are retried at a backed-off pace (at
  // most one every 250 ms, doubling), not a stream of aborted checkpoints.
  absl::SleepFor(absl::Seconds(10));
  EXPECT_EQ(testing::Diff(committed, Tree(Standby(1))), "")
      << "the committed tree is untouched";
  std::string m = Scrape(sb_.metrics());
  const double aborted = Sample(m, "gwmirror_checkpoints{state=\"aborted\"}");
  EXPECT_GE(aborted, 2) << m;
  EXPECT_LE(aborted, 10) << m;
  EXPECT_EQ(Status().last_consistent().id(), applied_before);
  std::printf("full disk: %g cuts aborted in 10 s; the last said: %s\n",
              aborted, reason.c_str());

  ASSERT_EQ(unlink((state + "/filler").c_str()), 0);
  const absl::Time freed = absl::Now();
  WaitFor(
      [&](const auto& st) {
        return st.last_consistent().id() > applied_before && AllHealthy(st) &&
               st.slots(0).lag_ms() == 0;
      },
      "the change mirrored once space was freed");
  std::printf("full disk: mirrored %.1f s after the space was freed\n",
              absl::ToDoubleSeconds(absl::Now() - freed));
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), rel)), big);
  EXPECT_EQ(testing::Diff(Tree(Prod(1)), Tree(Standby(1))), "");
}

// A root emptied on production (an unmounted disk, an rm -rf) is held:
// the standby keeps it, status says why, and only `gwmirror release` lets
// the next checkpoint delete it.
TEST_F(ClusterTest, MassDeletionIsHeldUntilReleased) {
  Up(1);
  std::string root = absl::StrCat(Prod(1), "/", kPrefix, "/apigateway/conf");
  Manifest before = Tree(Standby(1));
  ASSERT_TRUE(RemoveTree(root).ok());
  auto held = Checkpoint();
  ASSERT_FALSE(held.ok());
  EXPECT_TRUE(
      absl::StrContains(held.status().message(),
                        "mass deletion held: opt/Axway-7.7/apigateway/conf "
                        "would lose all of its"))
      << held.status();
  EXPECT_EQ(testing::Diff(before, Tree(Standby(1))), "");
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.state(), "HELD");
  EXPECT_EQ(s.slots(0).state(), "HELD");
  EXPECT_TRUE(absl::StrContains(s.slots(0).held(), "mass deletion held"))
      << ToJson(s);
  RunResult check = Cli({"status", "--check"});
  EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
  EXPECT_TRUE(absl::StartsWith(check.out,
                               "gwmirror HELD: slot gw1: mass "
                               "deletion held"))
      << check.out;
  EXPECT_TRUE(
      absl::StrContains(Scrape(sb_.metrics()),
                        "gwmirror_slot_state{slot=\"gw1\",state=\"HELD\"} 1"));
  RunResult r = Cli({"release", "--slot", "gw9"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "no slot \"gw9\"")) << r.err;
  r = Cli({"release", "--slot", "gw1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto id = Checkpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(testing::Diff(Tree(Prod(1)), Tree(Standby(1))), "");
  s = Status();
  EXPECT_TRUE(s.slots(0).held().empty());
  EXPECT_EQ(s.state(), "OK") << ToJson(s);
  // Released once, not for ever.
  r = Cli({"release", "--slot", "gw1"});
  EXPECT_TRUE(
      absl::StrContains(r.err, "holds nothing (no mass deletion, no anomaly)"))
      << r.err;
}

// Ransomware on a production host: 30 % of its mirrored files encrypted in
// place (XORed with random bytes) is held before the standby commits it,
// and says so in status, --check and /metrics until `gwmirror release`.
// Before that, what real operations look like is never held: a new
// deployment folder with the instances switched to it, and a rotation of
// 40 logs (renamed, compressed, written anew).
TEST_F(ClusterTest, RansomwareLikeChurnIsHeldUntilReleasedRealChangesAreNot) {
  Up(1);
  // A redeployment: a new conf/<uuid>/ folder, the instances switched.
  DeployOptions deploy;
  deploy.host_root = Prod(1);
  deploy.group = "QuickStart Group";
  auto current = CurrentDeployment(deploy);
  ASSERT_TRUE(current.ok()) << current.status();
  ASSERT_TRUE(Deploy(NextDeployment(*current, 5), deploy).ok());
  ASSERT_TRUE(Checkpoint().ok()) << "a redeployment was held";
  // 40 logs in a mirrored folder, then rotated: x.log -> x.log.1 (text),
  // the previous x.log.1 compressed to x.log.2.gz, x.log written anew.
  const std::string logs = Gw(Prod(1), "conf/kps/backup");
  for (int i = 0; i < 40; ++i) {
    testing::WriteFile(absl::StrCat(logs, "/kps-", i, ".log"),
                       absl::StrCat("2026-12-05 kps backup ", i, " ok\n"));
  }
  ASSERT_TRUE(Checkpoint().ok());
  for (int i = 0; i < 40; ++i) {
    const std::string log = absl::StrCat(logs, "/kps-", i, ".log");
    ASSERT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
    std::string gz(600, '\0');
    for (size_t k = 0; k < gz.size(); ++k)
      gz[k] = static_cast<char>(k * 131 + i);
    testing::WriteFile(log + ".2.gz", gz);
    testing::WriteFile(log, absl::StrCat("2026-12-06 kps backup ", i, " ok\n"));
  }
  ASSERT_TRUE(Checkpoint().ok()) << "a log rotation was held";

  // The attack: every third or so mirrored file, XORed in place.
  // topology.json aside: encrypted, it blocks every checkpoint on parity
  // (a guard of its own), and the release below could not show itself.
  Manifest before = Tree(Standby(1));
  std::mt19937_64 rng(7);
  int encrypted = 0, files = 0;
  const Manifest attacked = Tree(Prod(1));
  for (const Entry& e : attacked.entries()) {
    if (e.type() != gwmirror::v1::ENTRY_TYPE_FILE ||
        absl::EndsWith(e.path(), "groups/topology.json")) {
      continue;
    }
    if (files++ % 10 >= 3) continue;
    std::string content = testing::ReadFile(Prod(1) + "/" + e.path());
    for (char& c : content) c ^= static_cast<char>(rng());
    testing::WriteFile(Prod(1) + "/" + e.path(), content);
    ++encrypted;
  }
  std::printf("encrypted %d of %d files in place\n", encrypted, files);
  auto held = Checkpoint();
  ASSERT_FALSE(held.ok());
  EXPECT_TRUE(absl::StrContains(held.status().message(), "anomaly held: "))
      << held.status();
  std::printf("%s\n", std::string(held.status().message()).c_str());
  // Nothing of it reached the standby's committed tree.
  EXPECT_EQ(testing::Diff(before, Tree(Standby(1))), "");
  // The slot is HELD. The cluster is at least that: the encrypted
  // ExtConnsStore.xml can no longer be read, so coverage says DEGRADED too.
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.slots(0).state(), "HELD") << ToJson(s);
  EXPECT_GE(Severity(s.state()), Severity("HELD")) << s.state();
  EXPECT_TRUE(absl::StrContains(s.slots(0).held(), "anomaly held: "))
      << ToJson(s);
  EXPECT_TRUE(absl::StrContains(s.slots(0).held(), "entropy up from"));
  RunResult check = Cli({"status", "--check"});
  EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
  const std::string prod_metrics = MetricsAddress(sb_.slots(0).production());
  EXPECT_EQ(Sample(Scrape(prod_metrics), "gwmirror_anomaly_held"), 1);
  EXPECT_EQ(Sample(Scrape(prod_metrics), "gwmirror_mass_deletion_held"), 0);
  // Held again at the next try, until an operator releases it.
  EXPECT_FALSE(Checkpoint().ok());
  RunResult r = Cli({"release", "--slot", "gw1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto released = Checkpoint();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(testing::Diff(Tree(Prod(1)), Tree(Standby(1))), "");
  EXPECT_EQ(Sample(Scrape(prod_metrics), "gwmirror_anomaly_held"), 0);
}

// Sums "<n> <what>" over the source log lines of staged cuts, from byte
// `from` of the log on.
uint64_t SumStaged(const std::string& log, size_t from,
                   const std::string& what) {
  std::string text = testing::ReadFile(log);
  uint64_t sum = 0;
  for (size_t at = text.find("staged:", from); at != std::string::npos;
       at = text.find("staged:", at + 1)) {
    size_t end = text.find('\n', at);
    std::string line = text.substr(at, end - at);
    size_t w = line.find(" " + what);
    if (w == std::string::npos) continue;
    size_t b = line.rfind(' ', w - 1);
    uint64_t n = 0;
    if (absl::SimpleAtoi(line.substr(b + 1, w - b - 1), &n)) sum += n;
  }
  return sum;
}

// Sums the files of the source's pre-stage rounds ("pre-staged <n> files"),
// from byte `from` of the log on.
uint64_t SumPrestaged(const std::string& log, size_t from) {
  std::string text = testing::ReadFile(log);
  const std::string marker = "pre-staged ";
  uint64_t sum = 0;
  for (size_t at = text.find(marker, from); at != std::string::npos;
       at = text.find(marker, at + 1)) {
    size_t end = text.find(' ', at + marker.size());
    uint64_t n = 0;
    if (absl::SimpleAtoi(
            text.substr(at + marker.size(), end - at - marker.size()), &n)) {
      sum += n;
    }
  }
  return sum;
}

// Every inotify event lost to queue overflows (injected: each batch the
// kernel hands over is dropped as an overflow would drop it): 10,000 files
// created in a burst all reach the standby, each sent once.
TEST_F(ClusterTest, BurstWithQueueOverflowArrivesWholeAndOnce) {
  Up(1, /*follow=*/true);
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  Kill(prod);
  size_t log_from = testing::ReadFile(prod.log()).size();
  Restart(prod, {{"GWMIRROR_FAULT", "enospc:watch:1"}});
  WaitHealthy();
  for (int d = 0; d < 100; ++d) {
    for (int f = 0; f < 100; ++f) {
      testing::WriteFile(
          Gw(Prod(1), absl::StrCat("conf/burst/d", d, "/f", f, ".xml")),
          absl::StrCat("<f d=\"", d, "\" f=\"", f, "\"/>\n"));
    }
  }
  Manifest want = Tree(Prod(1));
  absl::Time give_up = absl::Now() + absl::Seconds(60);
  std::string diff = "not compared";
  while (!diff.empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(300));
    diff = testing::Diff(want, Tree(Standby(1)));
  }
  EXPECT_EQ(diff, "");
  std::string log = testing::ReadFile(prod.log()).substr(log_from);
  EXPECT_TRUE(absl::StrContains(log, "inotify queue overflowed")) << log;
  // Each file's content went once: pre-staged between cuts, or in a cut.
  uint64_t prestaged = SumPrestaged(prod.log(), log_from);
  std::printf("burst: %llu files pre-staged, the rest in cuts\n",
              static_cast<unsigned long long>(prestaged));
  EXPECT_EQ(SumStaged(prod.log(), log_from, "whole") +
                SumStaged(prod.log(), log_from, "delta") + prestaged,
            10000u);
}

// Pre-streaming: a big file written on production goes to the replica's
// pre-stage pool once it settled, and the cut that commits it ships only
// its name (0 whole, 0 delta, 1 pre-staged).
TEST_F(ClusterTest, PrestreamingLeavesTheCutOnlyTheTail) {
  Up(1, /*follow=*/true);
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  size_t log_from = testing::ReadFile(prod.log()).size();
  std::string content;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < (4 << 20) / 8; ++i) {  // 4 MiB that do not compress.
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    content.append(reinterpret_cast<const char*>(&x), 8);
  }
  testing::WriteFile(Gw(Prod(1), "ext/lib/big-extension.jar"), content);
  std::string standby = Gw(Standby(1), "ext/lib/big-extension.jar");
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (testing::ReadFile(standby) != content && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(testing::ReadFile(standby), content);
  std::string log = testing::ReadFile(prod.log()).substr(log_from);
  EXPECT_EQ(SumPrestaged(prod.log(), log_from), 1u) << log;
  EXPECT_TRUE(absl::StrContains(log, "0 whole, 0 delta, 1 pre-staged")) << log;
  EXPECT_EQ(SumStaged(prod.log(), log_from, "wire bytes") < 64 * 1024, true)
      << log;
}

// Drift repair: files edited or deleted by hand on the standby are found by
// the replica's periodic check and put back by the next cut, with nothing
// changed on production.
TEST_F(ClusterTest, DriftOnTheStandbyIsRepairedFromTheSource) {
  Up(1, /*follow=*/true);
  const gwmirror::v1::SandboxProcess& standby = sb_.slots(0).standby();
  std::string props = Gw(Standby(1), "conf/envSettings.props");
  std::string want = testing::ReadFile(props);
  ASSERT_FALSE(want.empty());
  std::string policy = Gw(Standby(1), "conf/fed/PrimaryStore.xml");
  ASSERT_EQ(access(policy.c_str(), F_OK), 0) << policy;
  ASSERT_EQ(unlink(policy.c_str()), 0);
  testing::WriteFile(props, "env.HAND_EDIT=1\n");
  absl::Time give_up = absl::Now() + absl::Seconds(30);
  std::string diff = "not compared";
  while (!diff.empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(200));
    diff = testing::Diff(Tree(Prod(1)), Tree(Standby(1)));
  }
  EXPECT_EQ(diff, "");
  EXPECT_EQ(testing::ReadFile(props), want);
  std::string log = testing::ReadFile(standby.log());
  EXPECT_TRUE(absl::StrContains(log, "drift: 2 standby entries")) << log;
  gwmirror::v1::ClusterStatus s = WaitFor(
      [](const gwmirror::v1::ClusterStatus& s) {
        return s.slots(0).replica().drifted_entries() == 0;
      },
      "drift repaired");
  EXPECT_EQ(s.slots(0).replica().drifted_entries(), 0u);
}

// A source restarted over 20,000 unchanged files rehashes none of them, and
// the first cut after the restart ships nothing.
TEST_F(ClusterTest, RestartedSourceRehashesNothing) {
  Up(1, /*follow=*/false, "large");
  for (int f = 0; f < 1500; ++f) {
    testing::WriteFile(Gw(Prod(1), absl::StrCat("conf/extra/f", f, ".xml")),
                       "x");
  }
  {
    auto cp = Checkpoint();
    ASSERT_TRUE(cp.ok()) << cp.status();
  }
  size_t files = 0;
  Manifest tree = Tree(Prod(1));
  for (const Entry& e : tree.entries()) {
    files += e.type() == gwmirror::v1::ENTRY_TYPE_FILE;
  }
  EXPECT_GE(files, 20000u);
  // The index vouches only for files last written 2 s before a scan.
  absl::SleepFor(absl::Milliseconds(2100));
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  Kill(prod);
  size_t log_from = testing::ReadFile(prod.log()).size();
  Restart(prod);
  WaitHealthy();
  {
    auto cp = Checkpoint();
    ASSERT_TRUE(cp.ok()) << cp.status();
  }
  EXPECT_EQ(SumStaged(prod.log(), log_from, "bytes hashed"), 0u);
  EXPECT_EQ(SumStaged(prod.log(), log_from, "index hits"), files);
  EXPECT_EQ(SumStaged(prod.log(), log_from, "whole"), 0u);
  EXPECT_EQ(SumStaged(prod.log(), log_from, "delta"), 0u);
}

// Bad input at the CLI and at start-up: one line that names the problem,
// and a non-zero exit.
TEST(ClusterCliTest, BadInputIsNamed) {
  testing::TempDir tmp;
  RunResult r =
      testing::Run({Bin("gwmirror"), "status"}, {{"GWMIRROR_CONFIG", ""}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "GWMIRROR_CONFIG")) << r.err;
  testing::WriteFile(tmp / "cli.json",
                     R"({"coordinator": "127.0.0.1:1", "colour": 1})");
  r = testing::Run({Bin("gwmirror"), "status", "--config", tmp / "cli.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "colour")) << r.err;
  testing::WriteFile(tmp / "coord.json",
                     R"({"listen": "127.0.0.1:0", "stateDir": "/x"})");
  r = testing::Run(
      {Bin("gwmirror-coordinator"), "serve", "--config", tmp / "coord.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(
      absl::StrContains(r.err, "coord.json: coordinator config: \"sites\""))
      << r.err;
  r = testing::Run(
      {Bin("gwmirror"), "checkpoint", "delete", "--config", tmp / "cli.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "unknown command \"checkpoint delete\""))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "usage: gwmirror checkpoint create"))
      << r.err;
  r = testing::Run({Bin("gwmirror"), "sandbox", "up", "--dir", tmp.path()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "is not empty")) << r.err;
}

}  // namespace
}  // namespace gwmirror
