#include "node/replica/drift_checker.h"

#include "common/log.h"
#include "common/thread_name.h"

namespace gwmirror {

DriftChecker::DriftChecker(ReplicaStore* store,
                           const gwmirror::v1::ReplicaConfig& config,
                           std::function<void()> on_drift)
    : store_(store),
      interval_(absl::Milliseconds(config.drift_check_interval_ms()
                                       ? config.drift_check_interval_ms()
                                       : 60'000)),
      rehash_every_(config.drift_rehash_every() ? config.drift_rehash_every()
                                                : 60),
      on_drift_(std::move(on_drift)) {}

DriftChecker::~DriftChecker() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void DriftChecker::Start() {
  thread_ = std::thread([this] {
    NameThisThread("gwm-drift");
    Run();
  });
}

void DriftChecker::SetReplicaRole(bool replica) {
  absl::MutexLock l(&mu_);
  if (replica && !replica_ && store_->stale()) readopt_ = true;
  if (!replica) store_->MarkStale();
  replica_ = replica;
}

uint64_t DriftChecker::readopt_attempts() const {
  absl::MutexLock l(&mu_);
  return readopt_attempts_;
}

void DriftChecker::ReadoptSoon() {
  absl::MutexLock l(&mu_);
  if (readopt_later_) readopt_ = true;
}

void DriftChecker::Run() {
  std::string last_error;
  for (uint64_t check = 1;; ++check) {
    bool replica = false;
    {
      absl::MutexLock l(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || readopt_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), interval_);
      if (stop_) return;
      replica = replica_;
      if (readopt_ || readopt_later_) {
        readopt_ = readopt_later_ = false;
        ++readopt_attempts_;
        mu_.Unlock();
        absl::Status st = store_->Readopt();
        mu_.Lock();
        if (!st.ok()) {
          // Again after the next interval: not by waking at once (a kept
          // staging refuses re-reads until the coordinator settles it, and
          // a loop here once wrote gigabytes of this line).
          readopt_later_ = true;
          if (st.ToString() != last_error) {
            last_error = st.ToString();
            Logf(LogLevel::kWarning, "replica", "re-read the tree: %s",
                 st.message());
          }
        }
        continue;
      }
    }
    if (!replica) continue;
    // Between full re-hashes, the stat index vouches for a file only while
    // its size, mtime, ctime and inode are unchanged: an edit moves ctime.
    bool rehash = check % rehash_every_ == 0;
    absl::StatusOr<int64_t> drifted = store_->CheckDrift(rehash);
    if (!drifted.ok()) {
      if (drifted.status().ToString() != last_error) {
        last_error = drifted.status().ToString();
        Logf(LogLevel::kWarning, "replica", "drift check failed: %s",
             last_error);
      }
      continue;
    }
    last_error.clear();
    if (*drifted > 0 && on_drift_) on_drift_();
  }
}

}  // namespace gwmirror
