// The states a cluster and each slot are reported in (status, --check,
// /metrics), from the least to the most severe: OK, LAGGING, HELD,
// DEGRADED, STALLED, PARTITIONED, BLOCKED (the cluster only). The worst
// slot's state is the cluster's unless parity makes it worse.
#ifndef GWMIRROR_COMMON_CLUSTER_STATE_H_
#define GWMIRROR_COMMON_CLUSTER_STATE_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"

namespace gwmirror {

struct StateThresholds {
  absl::Duration lagging = absl::Seconds(30);
  absl::Duration stalled = absl::Minutes(2);
  static StateThresholds From(const gwmirror::v1::CoordinatorConfig& c);
};

// Sets `slot`'s state and reason from its fields; `replica_answered`: its
// state was read just now.
void ClassifySlot(const StateThresholds& t, bool replica_answered,
                  gwmirror::v1::SlotStatus* slot);
// Sets the cluster's state and reason from its (classified) slots, its
// parity verdict and policy.
void ClassifyCluster(gwmirror::v1::ClusterStatus* s);

// Every state's name, from the least to the most severe.
const std::vector<std::string>& StateNames();
// Times and durations as status shows them: "2026-12-05T02:00:00Z" ("-"
// for 0 or less: unknown) and "12.3 s" (`none` when negative).
std::string UnixMsText(int64_t unix_ms);
std::string SecondsText(int64_t ms, absl::string_view none = "-");
// 2500000 bytes per second as "2.5 MB/s (20 Mbit/s)".
std::string RateText(uint64_t bytes_per_second);

// A push under way in words: "35 % (1.2 of 3.4 GB; 120 of 400 files),
// 80.0 MB/s, ETA 28 s" (rate and ETA once a second has passed).
std::string ProgressLine(const gwmirror::v1::SyncProgress& p, absl::Time now);
// A restore drill's progress in words, by its step: "restoring and
// verifying 35 % (...)", "restoring databases into scratch names",
// "running the smoke command"; empty when there is none.
std::string DrillLine(const gwmirror::v1::SyncProgress& p, absl::Time now);

// 0 for OK, higher for worse; -1 for a name that is not a state.
int Severity(const std::string& state);
// The monitoring convention (Nagios plugins): 0 OK; 1 warning (LAGGING,
// HELD, DEGRADED); 2 critical (STALLED, PARTITIONED, BLOCKED); 3 unknown.
int CheckExitCode(const std::string& state);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_CLUSTER_STATE_H_
