// The checkpoint runner, one of the coordinator's rooms: one checkpoint at
// a time across every slot (cut, stage, verify digests, coherence and
// parity, the commit point, apply), aborting before the commit point and
// retrying after it; at start and after a lost replica, the settlement of
// what was left unfinished. It also keeps what holds cuts back: slots whose
// source holds a mass deletion (until an operator releases them) and a
// deployment half done. DESIGN.md "Control plane"; ARCHITECTURE.md
// "Control plane: a checkpoint".
//
// Thread-safe. Checkpoints are serialised by serial(); a promote holds it
// too, so no checkpoint runs across a role switch.
#ifndef GWMIRROR_COORDINATOR_CHECKPOINT_RUNNER_H_
#define GWMIRROR_COORDINATOR_CHECKPOINT_RUNNER_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/worker_pool.h"
#include "coordinator/node_client.h"
#include "coordinator/node_registry.h"
#include "coordinator/parity.h"
#include "coordinator/state_store.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/state.pb.h"

namespace gwmirror {

class CheckpointRunner {
 public:
  // What a runner works with; all outlive it.
  struct Parts {
    const gwmirror::v1::CoordinatorConfig* config;
    const Clock* clock;
    StateStore* store;
    NodeRegistry* registry;
    NodeClient* nodes;
    WorkerPool* pool;
  };
  explicit CheckpointRunner(Parts parts);

  // One checkpoint, counted in the checkpoint metrics; `automatic` (a
  // change or the interval, not an operator): when a node is down or a
  // slot is held, nothing is recorded, it just does not run.
  absl::StatusOr<gwmirror::v1::CheckpointInfo> Run(bool automatic)
      ABSL_LOCKS_EXCLUDED(serial_mu_);
  // Settles checkpoints left unfinished by a previous run or a lost
  // replica: aborts open cuts, commits consistent ones where not applied.
  absl::Status Resume() ABSL_LOCKS_EXCLUDED(serial_mu_);
  // Held while a checkpoint runs; whoever else holds it (a promote) runs
  // with no checkpoint under way and settles what is open first with
  // ResumeLocked.
  absl::Mutex& serial() ABSL_LOCK_RETURNED(serial_mu_) { return serial_mu_; }
  absl::Status ResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(serial_mu_);

  // The operator confirms the mass deletion `slot`'s source holds: the
  // next checkpoint takes it. FAILED_PRECONDITION when it holds nothing.
  absl::Status Release(const std::string& slot);
  struct Holds {
    // Held slots, and why.
    std::map<std::string, std::string> slots;
    // A deployment half done ("" when none), and since when.
    std::string deployment;
    absl::Time deployment_since = absl::InfinitePast();
  };
  Holds CurrentHolds() const;
  // When the running checkpoint began (InfinitePast: none runs).
  absl::Time CutStarted() const;
  // The sites switched roles: for a while after, cuts ask the replicas
  // directly whether they re-read their trees yet.
  void NoteRolesSwitched();

  // Parity over production's reports (`fresh`: from a cut, placed at
  // the slots the coordinator cut; by default the heartbeats') and the
  // standby members' latest reports.
  ParityVerdict Parity(const std::vector<PlacedReport>* fresh) const;

 private:
  absl::StatusOr<gwmirror::v1::CheckpointInfo> RunOnce(bool automatic)
      ABSL_LOCKS_EXCLUDED(serial_mu_);
  // One attempt: cut, stage, verify, commit point, apply.
  absl::StatusOr<gwmirror::v1::CheckpointInfo> Attempt(bool automatic,
                                                       bool* incoherent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(serial_mu_);
  // Commits consistent checkpoint `id` (each slot's digest in `digests`)
  // on the standby member of each slot in `pending` (its slots not yet
  // applied), and records the slots that applied it.
  absl::Status ApplyConsistent(
      uint64_t id, const std::map<std::string, std::string>& digests,
      const std::vector<std::string>& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(serial_mu_);
  // Records `id` aborted and tells `replicas` to drop its staging.
  void Abort(uint64_t id, const std::vector<NodeRef>& replicas,
             const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(serial_mu_);
  // A replica that was a source until a promote re-reads its tree first;
  // waits for that, at most 30 s.
  void WaitForStaleReplicas() ABSL_EXCLUSIVE_LOCKS_REQUIRED(serial_mu_);
  // Every tenth of `checkpoint_records` checkpoints: forgets the records
  // of finished checkpoints older than the newest `checkpoint_records`,
  // except those a node's history keeps (every member is asked; one that
  // does not answer holds it off) and pinned ones.
  void ForgetRecords(uint64_t newest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(serial_mu_);
  // Notes that every cut is held by a deployment half done (status shows
  // it from the first time on, until a cut finds the groups coherent).
  void HoldForDeployment(const std::string& reason)
      ABSL_LOCKS_EXCLUDED(state_mu_);

  const gwmirror::v1::CoordinatorConfig& config_;
  const Clock* const clock_;
  StateStore* const store_;
  NodeRegistry* const registry_;
  NodeClient* const nodes_;
  WorkerPool* const pool_;

  absl::Mutex serial_mu_;
  // The checkpoint from which records are looked at again.
  uint64_t forget_next_ ABSL_GUARDED_BY(serial_mu_) = 0;
  mutable absl::Mutex state_mu_ ABSL_ACQUIRED_AFTER(serial_mu_);
  absl::Time cut_started_ ABSL_GUARDED_BY(state_mu_) = absl::InfinitePast();
  absl::Time switched_ ABSL_GUARDED_BY(state_mu_) = absl::InfinitePast();
  // Slots whose source holds a mass deletion (why), and slots released by
  // an operator for the next checkpoint.
  std::map<std::string, std::string> held_ ABSL_GUARDED_BY(state_mu_);
  std::set<std::string> released_ ABSL_GUARDED_BY(state_mu_);
  // A deployment half done (a group's instances on different archives):
  // why, and since when; cleared by the next cut that finds every group
  // coherent.
  std::string deployment_hold_ ABSL_GUARDED_BY(state_mu_);
  absl::Time deployment_hold_since_ ABSL_GUARDED_BY(state_mu_) =
      absl::InfinitePast();
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_CHECKPOINT_RUNNER_H_
