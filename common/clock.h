// Time behind a seam: whatever decides behaviour by time (rate limits,
// pacing, heartbeats, retention, lag and RPO) asks a Clock, so tests can
// run it on simulated time instead of sleeping. Real() is the system's;
// SimulatedClock moves only when told. Both thread-safe.
#ifndef GWMIRROR_COMMON_CLOCK_H_
#define GWMIRROR_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gwmirror {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
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
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_CLOCK_H_
