#include "coordinator/cut_scheduler.h"

#include <algorithm>

#include "common/log.h"
#include "common/thread_name.h"
#include "coordinator/coordinator_internal.h"

namespace gwmirror {

using coordinator_internal::Or;

CutScheduler::CutScheduler(const gwmirror::v1::CoordinatorConfig* config,
                           const Clock* clock, const NodeRegistry* registry,
                           CheckpointRunner* runner)
    : config_(*config), clock_(clock), registry_(registry), runner_(runner) {}

CutScheduler::~CutScheduler() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void CutScheduler::Start() {
  thread_ = std::thread([this] {
    NameThisThread("gwm-scheduler");
    Loop();
  });
}

void CutScheduler::Request() {
  absl::MutexLock l(&mu_);
  requested_ = true;
}

void CutScheduler::NoteChange() {
  absl::MutexLock l(&mu_);
  changed_ = true;
}

void CutScheduler::Loop() {
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
    // Pre-streaming sources are waited for until this (read before the
    // lock and again after the wait: a condition must not take another
    // lock, and the registry's is a leaf).
    absl::Time prestaged = registry_->PrestageWaitEnds(max_delay);
    {
      absl::MutexLock l(&mu_);
      // A change waits until change_gap after the last cut started, and
      // until pre-streaming sources caught up (at most max_delay).
      auto change_due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return changed_ && clock_->Now() >= last_cut + change_gap &&
               clock_->Now() >= prestaged;
      };
      // A change noted while this waits wakes it to take the change's
      // deadline (else it would wait out one set before, up to a second).
      const bool changed_before = changed_;
      auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || requested_ || change_due() ||
               (changed_ && !changed_before);
      };
      absl::Time deadline =
          std::min({next, next_resume, clock_->Now() + absl::Seconds(1)});
      if (changed_) {
        const absl::Time paced = last_cut + change_gap;
        // Pre-streaming sources say they caught up in heartbeats that do
        // not wake this thread: look again every 100 ms meanwhile.
        deadline = std::min(
            {deadline, std::max(paced, prestaged),
             std::max(paced, clock_->Now() + absl::Milliseconds(100))});
      }
      mu_.AwaitWithDeadline(absl::Condition(&wake), deadline);
      if (stopping_) return;
      prestaged = registry_->PrestageWaitEnds(max_delay);
      bool due = change_due();
      run = requested_ || clock_->Now() >= next || due;
      resume = clock_->Now() >= next_resume;
      requested_ = false;
      if (due) changed_ = false;
    }
    if (run) {
      next = clock_->Now() + interval;
      last_cut = clock_->Now();
      auto r = runner_->Run(/*automatic=*/true);
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
      absl::Status st = runner_->Resume();
      if (!st.ok()) {
        Logf(LogLevel::kWarning, "coordinator", "resume: %s", st.ToString());
      }
    }
  }
}

}  // namespace gwmirror
