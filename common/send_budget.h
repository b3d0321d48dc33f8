// A node's outgoing bandwidth: one token bucket that every stream the node
// sends on draws from, so a WAN link the mirror shares with production
// traffic carries at most the operator's cap (config.proto, Bandwidth),
// with a schedule of windows that cap differently (office hours, say).
//
// Within the cap, a checkpoint's push goes first by construction: the
// pre-stager stands aside while a cut pushes (Prestager::CutGuard), so the
// two never share the budget at once. Time comes from a Clock, so tests
// run the bucket on simulated time.
#ifndef GWMIRROR_COMMON_SEND_BUDGET_H_
#define GWMIRROR_COMMON_SEND_BUDGET_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// "20mbit", "2.5MB", "512KiB", "2500000" (bytes per second; "/s" may
// follow) as bytes per second. INVALID_ARGUMENT naming what is wrong; a
// rate of zero is refused.
absl::StatusOr<uint64_t> ParseRate(absl::string_view text);

// The cap at any moment, from a Bandwidth config.
class SendPolicy {
 public:
  SendPolicy() = default;  // No cap, ever.
  // INVALID_ARGUMENT naming the field and the part that is wrong.
  static absl::StatusOr<SendPolicy> From(const gwmirror::v1::Bandwidth& b);

  // Bytes per second allowed at `t`; 0: no cap.
  uint64_t CapAt(absl::Time t) const;

 private:
  struct Window {
    uint8_t days = 0x7f;   // Bit d: absl::Weekday d (monday = 0).
    int from = 0, to = 0;  // Minutes of the day.
    uint64_t rate = 0;
  };
  uint64_t base_ = 0;
  std::vector<Window> windows_;
  absl::TimeZone zone_;
};

class SendBudget {
 public:
  explicit SendBudget(const Clock* clock = Clock::Real()) : clock_(clock) {}

  // Takes effect for the next Take (a reload changes it while streams run).
  void SetPolicy(SendPolicy policy) ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until `bytes` more fit under the cap (none: returns at once) and
  // counts them. A message larger than the bucket goes out when the bucket
  // is not in debt, and its debt delays the next: the rate holds over a
  // second or two whatever the message sizes.
  void Take(uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  // The cap now (0: none) and what was sent per second over the last
  // kRateWindow.
  uint64_t CapNow() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t RecentRate() const ABSL_LOCKS_EXCLUDED(mu_);

  static constexpr int kRateWindow = 5;  // Seconds.

 private:
  uint64_t CapLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  mutable absl::Mutex mu_;
  SendPolicy policy_ ABSL_GUARDED_BY(mu_);
  // The cap as last computed, and when (a schedule is read once a second).
  mutable uint64_t cap_ ABSL_GUARDED_BY(mu_) = 0;
  mutable absl::Time cap_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Bytes the bucket holds (negative: debt), as of `filled_`.
  double tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time filled_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t filled_cap_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes sent per Unix second, the last kRateWindow + 1 seconds.
  std::array<std::pair<int64_t, uint64_t>, kRateWindow + 1> sent_
      ABSL_GUARDED_BY(mu_) = {};
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_SEND_BUDGET_H_
