#include "common/epoch.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {

absl::StatusOr<std::unique_ptr<EpochFile>> EpochFile::Open(std::string path,
                                                           std::string who) {
  uint64_t epoch = 0;
  auto text = ReadFileToString(path);
  if (text.ok()) {
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &epoch)) {
      return absl::DataLossError(absl::StrCat(path, ": not a number"));
    }
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  return std::unique_ptr<EpochFile>(
      new EpochFile(std::move(path), std::move(who), epoch));
}

uint64_t EpochFile::Get() const {
  absl::MutexLock l(&mu_);
  return epoch_;
}

absl::Status EpochFile::Check(uint64_t epoch) {
  absl::MutexLock l(&mu_);
  if (epoch < epoch_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stale epoch ", epoch, ": ", who_, " is at epoch ", epoch_));
  }
  if (epoch > epoch_) {
    RETURN_IF_ERROR(WriteFileAtomic(path_, absl::StrCat(epoch, "\n"), 0600));
    epoch_ = epoch;
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
