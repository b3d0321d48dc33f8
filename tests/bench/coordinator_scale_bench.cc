// The coordinator at scale, simulated (issue 18): checkpoints over 1, 10,
// 50 and 200 slots of simulated nodes (tests/coordinator/fake_nodes.h), the
// coordinator real (its SQLite state, its threads, its protocol). Per slot
// count: the wall time of a checkpoint with nodes that answer at once, the
// same with every phase's node calls taking --node-ms, the part of that
// spent inside the simulated nodes (their latency, and their own work,
// which runs on the coordinator's thread here but on 200 machines at once
// for real), the rest (the coordinator's side), and the process's CPU per
// checkpoint. Target: 200 slots within 2x one slot's coordinator time
// plus the slowest node, i.e. the coordinator's side of a 200-slot
// checkpoint within twice that of one slot. Judged two ways: like for
// like (200 slots against one, at the same node latency: both with nodes
// answering at once, and both with slow nodes), and strictly (200 slots
// with slow nodes against one slot with nodes answering at once, which
// also charges 200 slots with what idling between phases costs: an
// fdatasync after a 20 ms wait takes longer than one right after another).
//
//   build/tests/coordinator_scale_bench [--runs N] [--node-ms MS] [--slots N]
//                                       [--records N]
//
// --records N: the state records N applied checkpoints before (every one
// kept), so that what a checkpoint's cost owes to the state's age shows.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "coordinator/sqlite_state_store.h"
#include "tests/coordinator/fake_nodes.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

double CpuSeconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Figures {
  // Medians: the checkpoint's wall time, the part of it spent inside the
  // simulated nodes' calls, and the rest (the coordinator's side).
  double wall_ms = 0, nodes_ms = 0, coordinator_ms = 0;
  double cpu_ms = 0;  // Mean, the process's (simulated nodes included).
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A state that already records `n` applied checkpoints (of slot gw1).
void Prefill(const std::string& state_dir, int n) {
  StateStore::Contents contents;
  contents.meta.set_epoch(1);
  contents.meta.set_active_site("production");
  for (int id = 1; id <= n; ++id) {
    gwmirror::v1::StoredCheckpoint& c = contents.checkpoints.emplace_back();
    c.mutable_info()->set_id(id);
    c.mutable_info()->set_epoch(1);
    c.mutable_info()->set_state(gwmirror::v1::CHECKPOINT_STATE_APPLIED);
    (*c.mutable_info()->mutable_digests())["gw1"] = std::string(64, 'a');
    c.add_applied_slots("gw1");
  }
  absl::Status st = MakeDirs(state_dir, 0700);
  auto store = SqliteStateStore::Open(state_dir + "/state.db", "production");
  if (st.ok()) st = store.status();
  if (st.ok()) st = (*store)->Import(contents);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    std::exit(1);
  }
}

// `runs` checkpoints over `slots` slots, the state holding `records`
// checkpoints before.
Figures Measure(int slots, int runs, absl::Duration node_latency, int records) {
  testing::TempDir dir;
  testing::Pki pki(dir / "pki");
  gwmirror::v1::CoordinatorConfig c = testing::SimulatedClusterConfig(
      pki.Issue("coordinator"), dir / "state", slots);
  if (records > 0) {
    Prefill(dir / "state", records);
    c.set_checkpoint_records(records + 1000);  // Every one kept.
  }
  testing::FakeNodes nodes;
  CoordinatorOptions o;
  o.nodes = nodes.Client();
  auto coordinator = Coordinator::Open(c, std::move(o));
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str());
    std::exit(1);
  }
  if (absl::Status st =
          testing::RegisterSimulatedNodes(coordinator->get(), slots);
      !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    std::exit(1);
  }
  nodes.set_latency(node_latency);
  (void)(*coordinator)->RunCheckpoint();  // Warm up.
  std::vector<double> walls, inside, rest;
  double cpu = 0;
  absl::Time beaten = absl::Now();
  for (int r = 0; r < runs; ++r) {
    // The nodes stay heartbeating however long the runs take (untimed,
    // and seldom: a beat from every node is a look at every record).
    if (absl::Now() - beaten > absl::Seconds(2)) {
      if (absl::Status st = testing::BeatSimulatedNodes(coordinator->get(),
                                                        slots, /*epoch=*/1);
          !st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        std::exit(1);
      }
      beaten = absl::Now();
    }
    double cpu0 = CpuSeconds();
    absl::Duration in0 = nodes.time_inside();
    absl::Time t0 = absl::Now();
    auto info = (*coordinator)->RunCheckpoint();
    double wall = absl::ToDoubleMilliseconds(absl::Now() - t0);
    double in = absl::ToDoubleMilliseconds(nodes.time_inside() - in0);
    cpu += CpuSeconds() - cpu0;
    if (!info.ok()) {
      std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
      std::exit(1);
    }
    walls.push_back(wall);
    inside.push_back(in);
    rest.push_back(wall - in);
  }
  return Figures{Median(walls), Median(inside), Median(rest),
                 cpu * 1000 / runs};
}

int Main(int argc, char** argv) {
  int runs = 20;
  int node_ms = 20;
  int only = 0;     // --slots N: that row alone (for a profile).
  int records = 0;  // --records N: the state records N checkpoints first.
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--node-ms")) node_ms = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--slots")) only = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--records")) records = std::atoi(argv[i + 1]);
  }
  SetMinLogLevel(LogLevel::kWarning);
  std::printf(
      "| slots | nodes at once (ms) | coordinator side (ms) | CPU (ms) | with "
      "%d ms nodes (ms) | of which in the nodes (ms) | coordinator side (ms) "
      "| CPU (ms) |\n|---|---|---|---|---|---|---|---|\n",
      node_ms);
  Figures one, two_hundred;  // Nodes at once, then slow nodes.
  Figures one_slow, two_hundred_slow;
  for (int slots : {1, 10, 50, 200}) {
    if (only != 0 && slots != only) continue;
    Figures alone = Measure(slots, runs, absl::ZeroDuration(), records);
    Figures slow = Measure(slots, runs, absl::Milliseconds(node_ms), records);
    std::printf("| %d | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f |\n",
                slots, alone.wall_ms, alone.coordinator_ms, alone.cpu_ms,
                slow.wall_ms, slow.nodes_ms, slow.coordinator_ms, slow.cpu_ms);
    if (slots == 1) one = alone, one_slow = slow;
    if (slots == 200) two_hundred = alone, two_hundred_slow = slow;
  }
  auto verdict = [](const char* what, double many, double single) {
    std::printf(
        "%s: 200 slots' coordinator side %.2f ms against one slot's %.2f ms "
        "(%.2fx; target 2x): %s\n",
        what, many, single, many / single,
        many <= 2 * single ? "met" : "MISSED");
  };
  if (one.coordinator_ms > 0 && two_hundred.coordinator_ms > 0) {
    verdict("nodes at once", two_hundred.coordinator_ms, one.coordinator_ms);
    verdict(absl::StrCat(node_ms, " ms nodes").c_str(),
            two_hundred_slow.coordinator_ms, one_slow.coordinator_ms);
    verdict(absl::StrCat("strictly (", node_ms,
                         " ms nodes against one slot's nodes at once)")
                .c_str(),
            two_hundred_slow.coordinator_ms, one.coordinator_ms);
  }
  return 0;
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
