#include "node/work_progress.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace gwmirror {

WorkProgress& WorkProgress::Push() {
  static WorkProgress* p = new WorkProgress();
  return *p;
}

WorkProgress& WorkProgress::Drill() {
  static WorkProgress* p = new WorkProgress();
  return *p;
}

WorkProgress::Scope::Scope(WorkProgress& p, std::string step) : p_(p) {
  p.SetStep(std::move(step));
  p.SetTotal(0, 0);
  p.files_done_ = 0;
  p.bytes_done_ = 0;
  p.started_unix_ms_ = absl::ToUnixMillis(absl::Now());
}

WorkProgress::Scope::~Scope() { p_.started_unix_ms_ = 0; }

void WorkProgress::SetStep(std::string step) {
  absl::MutexLock l(&mu_);
  step_ = std::move(step);
}

std::optional<gwmirror::v1::SyncProgress> WorkProgress::Snapshot() const {
  const int64_t started = started_unix_ms_;
  if (started == 0 || files_total_ == 0) return std::nullopt;
  gwmirror::v1::SyncProgress p;
  p.set_started_unix_ms(started);
  p.set_files_done(std::min<uint64_t>(files_done_, files_total_));
  p.set_files_total(files_total_);
  // A file resent whole counts twice; never show more than all.
  p.set_bytes_done(std::min<uint64_t>(bytes_done_, bytes_total_));
  p.set_bytes_total(bytes_total_);
  absl::MutexLock l(&mu_);
  p.set_step(step_);
  return p;
}

}  // namespace gwmirror
