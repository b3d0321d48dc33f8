// One process per state directory. Two nodes on one state directory (a
// second `serve` started by mistake, or a one-shot `push` beside a running
// source) would each write the committed manifest, the journal and the
// caches from their own memory and undo each other's commits. The lock is
// flock(2) on <dir>/lock, held for the life of the object and dropped by
// the kernel when the process dies, so a crash never leaves it stale.
#ifndef GWMIRROR_COMMON_STATE_LOCK_H_
#define GWMIRROR_COMMON_STATE_LOCK_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/fd.h"

namespace gwmirror {

class StateDirLock {
 public:
  // FAILED_PRECONDITION, naming the holder's pid, when another process
  // still holds `dir` after `wait` (a node restarted at once after a kill
  // may find its predecessor's last threads still exiting); the lock file
  // records this process's pid for that message.
  static absl::StatusOr<StateDirLock> Acquire(
      const std::string& dir, absl::Duration wait = absl::Seconds(5));

 private:
  explicit StateDirLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_STATE_LOCK_H_
