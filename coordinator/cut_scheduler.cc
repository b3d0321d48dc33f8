// The cut scheduler: when to cut (on request, on an interval, when a source
// reports a change, paced and waiting for pre-streaming), and the periodic
// settlement of what a lost replica left unapplied.
#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"

namespace gwmirror {

using coordinator_internal::Or;
using coordinator_internal::Short;
using gwmirror::v1::CheckpointInfo;
using gwmirror::v1::TopologyReport;

void Coordinator::RequestCheckpoint() {
  absl::MutexLock l(&mu_);
  checkpoint_requested_ = true;
}

void Coordinator::StartBackground() {
  background_ = std::thread([this] {
    NameThisThread("gwm-scheduler");
    Background();
  });
}

void Coordinator::Background() {
  absl::Duration interval =
      config_.checkpoint_interval_ms()
          ? absl::Milliseconds(config_.checkpoint_interval_ms())
          : absl::InfiniteDuration();
  // Unset: cuts for changes take at most a third of the time (twice the
  // last cut's duration between starts), and at most four a second.
  const absl::Duration fixed_gap =
      absl::Milliseconds(config_.change_cut_interval_ms());
  absl::Duration last_cut_took = absl::ZeroDuration();
  // Cuts for changes that keep failing (a full disk, a refusing replica)
  // back off: 500 ms after the first failure, doubling to at most 8 s, so
  // a long outage leaves a few aborted checkpoints a minute, not four a
  // second; the first cut that commits ends it.
  int failed_in_a_row = 0;
  auto gap = [&] {
    absl::Duration g =
        fixed_gap > absl::ZeroDuration()
            ? fixed_gap
            : std::max(absl::Milliseconds(250), 2 * last_cut_took);
    if (failed_in_a_row > 0) {
      g = std::max(g,
                   std::min(absl::Seconds(8),
                            absl::Milliseconds(250) *
                                (int64_t{1} << std::min(failed_in_a_row, 6))));
    }
    return g;
  };
  const absl::Duration max_delay =
      absl::Milliseconds(Or(config_.change_cut_max_delay_ms(), 5000u));
  absl::Time next = clock_->Now() + interval;
  absl::Time next_resume = clock_->Now();
  absl::Time last_cut = absl::InfinitePast();
  for (;;) {
    bool run = false;
    bool resume = false;
    const absl::Duration change_gap = gap();
    {
      absl::MutexLock l(&mu_);
      // A change waits until change_gap after the last cut started, and
      // until pre-streaming sources caught up (at most max_delay).
      auto change_due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return change_reported_ && clock_->Now() >= last_cut + change_gap &&
               clock_->Now() >= PrestageWaitEnds(max_delay);
      };
      auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || checkpoint_requested_ || change_due();
      };
      absl::Time deadline =
          std::min({next, next_resume, clock_->Now() + absl::Seconds(1)});
      if (change_reported_) {
        deadline = std::min(deadline, std::max(last_cut + change_gap,
                                               PrestageWaitEnds(max_delay)));
      }
      mu_.AwaitWithDeadline(absl::Condition(&wake), deadline);
      if (stopping_) return;
      bool due = change_due();
      run = checkpoint_requested_ || clock_->Now() >= next || due;
      resume = clock_->Now() >= next_resume;
      checkpoint_requested_ = false;
      if (due) change_reported_ = false;
    }
    if (run) {
      next = clock_->Now() + interval;
      last_cut = clock_->Now();
      auto r = RunCheckpoint(/*automatic=*/true);
      last_cut_took = clock_->Now() - last_cut;
      if (r.ok()) {
        failed_in_a_row = 0;
      } else {
        ++failed_in_a_row;
        Logf(LogLevel::kWarning, "coordinator",
             "checkpoint failed (%d in a row, the next cut for changes in "
             "%s at the earliest): %s",
             failed_in_a_row, absl::FormatDuration(gap()),
             r.status().ToString());
      }
      // Changes during the cut arrive with the sources' next heartbeats.
    } else if (resume) {
      // Finish what a lost replica or a restart left (a consistent
      // checkpoint not applied everywhere) without waiting for a new cut.
      next_resume = clock_->Now() + absl::Seconds(2);
      absl::Status st = Resume();
      if (!st.ok()) {
        Logf(LogLevel::kWarning, "coordinator", "resume: %s", st.ToString());
      }
    }
  }
}

}  // namespace gwmirror
