// Time behind a seam: whatever decides behaviour by time (rate limits,
// pacing, heartbeats, retention, lag and RPO) asks a Clock, so tests can
// run it on simulated time instead of sleeping. Real() is the system's;
// SimulatedClock moves only when told. Both thread-safe.
#ifndef GWMIRROR_COMMON_CLOCK_H_
#define GWMIRROR_COMMON_CLOCK_H_

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gwmirror {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Waits `d` (a simulated clock moves on by `d` and returns at once).
  virtual void SleepFor(absl::Duration d) const = 0;
  // The process's real clock (never destroyed).
  static Clock* Real();
};

class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::UnixEpoch() +
                                             absl::Hours(24 * 365 * 50))
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock l(&mu_);
    return now_;
  }
  void SleepFor(absl::Duration d) const override {
    std::function<void()> after;
    {
      absl::MutexLock l(&mu_);
      now_ += d;
      after = after_sleep_;
    }
    // What the rest of the world does while one waits (heartbeats).
    if (after) after();
  }
  void Advance(absl::Duration d) { SleepFor(d); }
  void SetAfterSleep(std::function<void()> fn) {
    absl::MutexLock l(&mu_);
    after_sleep_ = std::move(fn);
  }

 private:
  mutable absl::Mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::function<void()> after_sleep_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_CLOCK_H_
