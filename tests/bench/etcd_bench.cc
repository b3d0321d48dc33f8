// The coordinator's state on etcd against SQLite (issue 24), same run,
// loopback, a real three-member etcd cluster (tests/coordinator/
// etcd_cluster.h):
//   1. a checkpoint's wall time over simulated nodes that answer at once
//      (tests/coordinator/fake_nodes.h; the coordinator real), SQLite
//      against etcd: the store's share of a checkpoint. Target: etcd at
//      most +20 ms per checkpoint.
//   2. failover: two real `gwmirror-coordinator serve` processes on the
//      etcd store; the leader SIGKILLed, the time until the other leads and
//      listens; --kills times, alternating. Target: at most the lease's
//      TTL + 5 s every time.
//
//   build/tests/etcd_bench [--runs N] [--kills N] [--ttl S]
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "tests/coordinator/etcd_cluster.h"
#include "tests/coordinator/fake_nodes.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

[[noreturn]] void Fail(const absl::Status& st) {
  std::fprintf(stderr, "etcd_bench: %s\n", st.ToString().c_str());
  std::exit(1);
}

// Median and 90th percentile wall time (ms) of `runs` checkpoints.
std::pair<double, double> CheckpointMs(gwmirror::v1::CoordinatorConfig c,
                                       int slots, int runs) {
  testing::FakeNodes nodes;
  CoordinatorOptions o;
  o.nodes = nodes.Client();
  auto coordinator = Coordinator::Open(c, std::move(o));
  if (!coordinator.ok()) Fail(coordinator.status());
  if (absl::Status st =
          testing::RegisterSimulatedNodes(coordinator->get(), slots);
      !st.ok()) {
    Fail(st);
  }
  (void)(*coordinator)->RunCheckpoint();  // Warm up.
  std::vector<double> walls;
  for (int r = 0; r < runs; ++r) {
    absl::Time t0 = absl::Now();
    auto info = (*coordinator)->RunCheckpoint();
    walls.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!info.ok()) Fail(info.status());
  }
  std::sort(walls.begin(), walls.end());
  return {walls[walls.size() / 2], walls[walls.size() * 9 / 10]};
}

// Waits up to `limit` for `name` to hold the lead (the leader key under
// /failover/); whether it did. (A follower listens too: its port says
// nothing about the lead.)
bool Leads(testing::EtcdCluster& etcd, const std::string& name,
           absl::Duration limit) {
  auto client = etcd.Client();
  if (!client.ok()) return false;
  etcdserverpb::RangeRequest r;
  r.set_key("/failover/leader");
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    auto resp = (*client)->Range(r);
    if (resp.ok() && resp->kvs_size() == 1 && resp->kvs(0).value() == name) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

int Main(int argc, char** argv) {
  int runs = 50, kills = 10, ttl = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--kills")) kills = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--ttl")) ttl = std::atoi(argv[i + 1]);
  }
  SetMinLogLevel(LogLevel::kWarning);
  testing::TempDir dir;
  auto etcd = testing::EtcdCluster::Start(dir / "etcd", 3);
  if (!etcd.ok()) Fail(etcd.status());
  testing::Pki pki(dir / "pki");

  std::printf(
      "| slots | SQLite (ms, median / p90 of %d) | etcd, 3 members (ms) | "
      "etcd - SQLite (ms, median) |\n|---|---|---|---|\n",
      runs);
  double worst = 0;
  for (int slots : {1, 10}) {
    gwmirror::v1::CoordinatorConfig c = testing::SimulatedClusterConfig(
        pki.Issue("coordinator"), dir / absl::StrCat("sqlite-", slots), slots);
    auto sqlite = CheckpointMs(c, slots, runs);
    c.set_state_dir(dir / absl::StrCat("etcd-", slots));
    *c.mutable_etcd() =
        (*etcd)->StoreConfig(absl::StrCat("/bench-", slots, "/"));
    auto on_etcd = CheckpointMs(c, slots, runs);
    std::printf("| %d | %.1f / %.1f | %.1f / %.1f | %+.1f |\n", slots,
                sqlite.first, sqlite.second, on_etcd.first, on_etcd.second,
                on_etcd.first - sqlite.first);
    worst = std::max(worst, on_etcd.first - sqlite.first);
  }
  std::printf(
      "etcd's cost per checkpoint: at most %+.1f ms; target +20 ms: %s\n",
      worst, worst <= 20 ? "met" : "MISSED");

  if (kills == 0) return 0;
  // Two coordinator processes, one config each (own port file and state
  // dir), one etcd prefix.
  gwmirror::v1::EtcdStore store = (*etcd)->StoreConfig("/failover/");
  store.set_lease_ttl_s(ttl);
  std::vector<std::string> configs, names;
  for (const char* name : {"a", "b"}) {
    gwmirror::v1::CoordinatorConfig c = testing::SimulatedClusterConfig(
        pki.Issue("coordinator"), dir / absl::StrCat("coord-", name), 1);
    *c.mutable_etcd() = store;
    names.push_back(absl::StrCat("coordinator-", name));
    c.mutable_etcd()->set_name(names.back());
    configs.push_back(dir / absl::StrCat("coord-", name, ".json"));
    testing::WriteFile(configs.back(), ToJson(c));
  }
  auto start = [&](int i) {
    return std::make_unique<testing::Child>(
        std::vector<std::string>{testing::Bin("gwmirror-coordinator"), "serve",
                                 "--config", configs[i]},
        std::map<std::string, std::string>{},
        dir / absl::StrCat("coord-", i, ".log"));
  };
  std::unique_ptr<testing::Child> coord[2] = {start(0), nullptr};
  if (!Leads(**etcd, names[0], absl::Seconds(30))) {
    Fail(absl::UnavailableError("the first coordinator never led"));
  }
  coord[1] = start(1);
  absl::SleepFor(absl::Seconds(1));  // B campaigning, A leading.
  std::vector<double> times;
  int leader = 0;
  for (int k = 0; k < kills; ++k) {
    const int next = 1 - leader;
    coord[leader]->Kill(SIGKILL);
    const absl::Time killed = absl::Now();
    if (!Leads(**etcd, names[next], absl::Seconds(ttl + 30))) {
      Fail(absl::UnavailableError(
          absl::StrCat("kill ", k + 1, ": no new leader in ttl+30 s")));
    }
    times.push_back(absl::ToDoubleSeconds(absl::Now() - killed));
    coord[leader] = start(leader);  // The next follower.
    absl::SleepFor(absl::Seconds(1));
    leader = next;
  }
  std::sort(times.begin(), times.end());
  std::printf(
      "failover over %d SIGKILLs of the leader (lease ttl %d s): min %.1f s, "
      "median %.1f s, max %.1f s; target ttl + 5 = %d s: %s\n",
      kills, ttl, times.front(), times[times.size() / 2], times.back(), ttl + 5,
      times.back() <= ttl + 5 ? "met" : "MISSED");
  return 0;
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
