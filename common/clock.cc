#include "common/clock.h"

namespace gwmirror {

Clock* Clock::Real() {
  class RealClock final : public Clock {
   public:
    absl::Time Now() const override { return absl::Now(); }
    void SleepFor(absl::Duration d) const override { absl::SleepFor(d); }
  };
  static RealClock* const kClock = new RealClock;
  return kClock;
}

}  // namespace gwmirror
