// The cut scheduler, one of the coordinator's rooms: when to cut (on
// request, on an interval, when a source reports a change, paced and
// waiting for pre-streaming sources), and the periodic settlement of what a
// lost replica left unapplied. It runs checkpoints through the runner on a
// thread of its own, from Start until it is destroyed.
//
// Thread-safe.
#ifndef GWMIRROR_COORDINATOR_CUT_SCHEDULER_H_
#define GWMIRROR_COORDINATOR_CUT_SCHEDULER_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/checkpoint_runner.h"
#include "coordinator/node_registry.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

class CutScheduler {
 public:
  // The pacing comes from `config` (checkpoint_interval_ms,
  // change_cut_interval_ms, change_cut_max_delay_ms); all outlive it.
  CutScheduler(const gwmirror::v1::CoordinatorConfig* config,
               const Clock* clock, const NodeRegistry* registry,
               CheckpointRunner* runner);
  // Stops the thread (a checkpoint under way ends first).
  ~CutScheduler();

  void Start();
  // An operator asked for a checkpoint: the next one starts at once.
  void Request() ABSL_LOCKS_EXCLUDED(mu_);
  // Something changed that a checkpoint should take (a source's change,
  // drift, a released hold): the next cut for changes is due once paced.
  void NoteChange() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const gwmirror::v1::CoordinatorConfig& config_;
  const Clock* const clock_;
  const NodeRegistry* const registry_;
  CheckpointRunner* const runner_;

  absl::Mutex mu_;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_CUT_SCHEDULER_H_
