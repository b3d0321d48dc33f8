// The coordinator at scale, simulated (issue 18): checkpoints over 1, 10,
// 50 and 200 slots of simulated nodes (tests/coordinator/fake_nodes.h), the
// coordinator real (its SQLite state, its threads, its protocol). Per slot
// count: the wall time of a checkpoint with nodes that answer at once (the
// coordinator's own time), the same with every node call taking
// --node-ms (so the slowest node's time is known), and the coordinator's
// CPU time per checkpoint. Target: 200 slots within 2x one slot's
// coordinator time plus the slowest node.
//
//   build/tests/coordinator_scale_bench [--runs N] [--node-ms MS]
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
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
  double wall_ms = 0, cpu_ms = 0;
};

// Median wall and mean CPU of `runs` checkpoints over `slots` slots.
Figures Measure(int slots, int runs, absl::Duration node_latency) {
  testing::TempDir dir;
  testing::Pki pki(dir / "pki");
  gwmirror::v1::CoordinatorConfig c = testing::SimulatedClusterConfig(
      pki.Issue("coordinator"), dir / "state", slots);
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
  std::vector<double> walls;
  double cpu = 0;
  for (int r = 0; r < runs; ++r) {
    double cpu0 = CpuSeconds();
    absl::Time t0 = absl::Now();
    auto info = (*coordinator)->RunCheckpoint();
    walls.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    cpu += CpuSeconds() - cpu0;
    if (!info.ok()) {
      std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
      std::exit(1);
    }
  }
  std::sort(walls.begin(), walls.end());
  return Figures{walls[walls.size() / 2], cpu * 1000 / runs};
}

int Main(int argc, char** argv) {
  int runs = 20;
  int node_ms = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--node-ms")) node_ms = std::atoi(argv[i + 1]);
  }
  SetMinLogLevel(LogLevel::kWarning);
  // Four node calls per slot lie on a checkpoint's path (cut, state,
  // commit, and the resume's look), one after the other.
  const double slowest_ms = 3.0 * node_ms;
  std::printf(
      "| slots | coordinator only (ms, median of %d) | with %d ms nodes (ms) | "
      "coordinator CPU per checkpoint (ms) |\n|---|---|---|---|\n",
      runs, node_ms);
  double one = 0, two_hundred = 0;
  for (int slots : {1, 10, 50, 200}) {
    Figures alone = Measure(slots, runs, absl::ZeroDuration());
    Figures slow = Measure(slots, runs, absl::Milliseconds(node_ms));
    std::printf("| %d | %.1f | %.1f | %.1f |\n", slots, alone.wall_ms,
                slow.wall_ms, alone.cpu_ms);
    if (slots == 1) one = alone.wall_ms;
    if (slots == 200) two_hundred = slow.wall_ms;
  }
  const double target = 2 * one + slowest_ms;
  std::printf(
      "200 slots with %d ms nodes: %.1f ms; target 2 x %.1f + %.1f (the "
      "slowest node's path) = %.1f ms: %s\n",
      node_ms, two_hundred, one, slowest_ms, target,
      two_hundred <= target ? "met" : "MISSED");
  return 0;
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
