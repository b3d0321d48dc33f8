// Drift repair's clock: compares the standby tree with its committed
// checkpoint every `drift_check_interval_ms` (by stat, re-hashing what
// changed; every `drift_rehash_every`-th check re-hashes everything) and,
// when something drifted, calls `on_drift` so the node tells the coordinator
// at once and the next cut repairs it (ReplicaStore::CheckDrift). One
// background thread.
#ifndef GWMIRROR_NODE_REPLICA_DRIFT_CHECKER_H_
#define GWMIRROR_NODE_REPLICA_DRIFT_CHECKER_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"
#include "node/replica/store.h"

namespace gwmirror {

class DriftChecker {
 public:
  // `store` outlives the checker.
  DriftChecker(ReplicaStore* store, const gwmirror::v1::ReplicaConfig& config,
               std::function<void()> on_drift);
  ~DriftChecker();  // Stops the thread.
  void Start();
  // The node's role: drift is checked only while it is a replica; becoming
  // one re-reads a stale tree (ReplicaStore::Readopt) at once.
  void SetReplicaRole(bool replica) ABSL_LOCKS_EXCLUDED(mu_);
  // Re-reads tried so far (a refused one is tried again after an
  // interval, never in a loop).
  uint64_t readopt_attempts() const ABSL_LOCKS_EXCLUDED(mu_);
  // A refused re-read is tried again now rather than after the interval
  // (what refused it, a kept staging, is gone).
  void ReadoptSoon() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();

  ReplicaStore* const store_;
  const absl::Duration interval_;
  const uint32_t rehash_every_;
  const std::function<void()> on_drift_;
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool replica_ ABSL_GUARDED_BY(mu_) = false;
  // A re-read is asked for (wakes the thread at once), or one was refused
  // and waits for the next interval.
  bool readopt_ ABSL_GUARDED_BY(mu_) = false;
  bool readopt_later_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t readopt_attempts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_DRIFT_CHECKER_H_
