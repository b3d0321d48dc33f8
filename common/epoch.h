// The highest fencing epoch a process has seen, persisted in one small file
// so a restart cannot forget it. A message with an older epoch is refused;
// a newer one is adopted (written durably before it is acted on).
// Thread-safe.
#ifndef GWMIRROR_COMMON_EPOCH_H_
#define GWMIRROR_COMMON_EPOCH_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace gwmirror {

class EpochFile {
 public:
  // Loads `path` (missing: epoch 0). `who` names the holder in refusals
  // ("this replica").
  static absl::StatusOr<std::unique_ptr<EpochFile>> Open(std::string path,
                                                         std::string who);

  uint64_t Get() const ABSL_LOCKS_EXCLUDED(mu_);
  // FAILED_PRECONDITION "stale epoch E: <who> is at epoch F" when `epoch` is
  // older; adopts and persists a newer one.
  absl::Status Check(uint64_t epoch) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  EpochFile(std::string path, std::string who, uint64_t epoch)
      : path_(std::move(path)), who_(std::move(who)), epoch_(epoch) {}
  const std::string path_;
  const std::string who_;
  mutable absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_EPOCH_H_
