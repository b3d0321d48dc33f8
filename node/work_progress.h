// Long work under way in a node process, for its heartbeats: a source's
// push (an initial sync, a large change) and a replica's restore drill.
// Each is one process-wide tracker of files and bytes done of a total and
// the step it is at; counting is lock-free, so the work never waits for a
// heartbeat reading it.
#ifndef GWMIRROR_NODE_WORK_PROGRESS_H_
#define GWMIRROR_NODE_WORK_PROGRESS_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gwmirror/v1/coordinator.pb.h"

namespace gwmirror {

class WorkProgress {
 public:
  // The push under way (a cut's or a pre-stage push; they never overlap).
  static WorkProgress& Push();
  // The drill under way (one at a time per replica).
  static WorkProgress& Drill();

  // While alive, `p` is work under way, begun now at `step`, nothing done
  // yet of what SetTotal says.
  class Scope {
   public:
    Scope(WorkProgress& p, std::string step);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    WorkProgress& p_;
  };
  // The files and bytes the work is about.
  void SetTotal(uint64_t files, uint64_t bytes) {
    files_total_ = files;
    bytes_total_ = bytes;
  }
  // Content done as it goes; a file finished; the next step.
  void Sent(uint64_t bytes) { bytes_done_ += bytes; }
  void FileDone() { ++files_done_; }
  void SetStep(std::string step) ABSL_LOCKS_EXCLUDED(mu_);
  // Nothing while no work runs (or it has no files).
  std::optional<gwmirror::v1::SyncProgress> Snapshot() const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::atomic<uint64_t> files_done_{0}, files_total_{0}, bytes_done_{0},
      bytes_total_{0};
  std::atomic<int64_t> started_unix_ms_{0};
  mutable absl::Mutex mu_;
  std::string step_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_WORK_PROGRESS_H_
