#include "common/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gwmirror {

absl::StatusOr<StateDirLock> StateDirLock::Acquire(const std::string& dir,
                                                   absl::Duration wait) {
  const std::string path = dir + "/lock";
  UniqueFd fd(
      open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, "open " + path);
  const absl::Time give_up = absl::Now() + wait;
  while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoStatus(errno, "lock " + path);
    if (absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(50));
      continue;
    }
    char pid[32] = {};
    const ssize_t n = pread(fd.get(), pid, sizeof pid - 1, 0);
    const std::string holder =
        n > 0 ? std::string(absl::StripAsciiWhitespace(
                    absl::string_view(pid, static_cast<size_t>(n))))
              : "";
    return absl::FailedPreconditionError(absl::StrCat(
        "state_dir ", dir, " is in use by another gwmirror-node",
        holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")"),
        ": two nodes on one state directory would undo each other's "
        "commits; stop that one first, or give this one its own state_dir"));
  }
  const std::string me = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd.get(), 0) != 0 ||
      pwrite(fd.get(), me.data(), me.size(), 0) !=
          static_cast<ssize_t>(me.size())) {
    return ErrnoStatus(errno, "write " + path);
  }
  return StateDirLock(std::move(fd));
}

}  // namespace gwmirror
