#include "node/replica/drill.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/path.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "node/databases.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_DIRECTORY;
using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::ENTRY_TYPE_SYMLINK;

int64_t MsSince(absl::Time t) {
  return absl::ToInt64Milliseconds(absl::Now() - t);
}

absl::Status SetMetadata(const std::string& full, const Entry& e) {
  if (lchown(full.c_str(), e.uid(), e.gid()) != 0 && errno != EPERM) {
    return ErrnoStatus(errno, absl::StrCat("chown ", full));
  }
  if (e.type() != ENTRY_TYPE_SYMLINK &&
      chmod(full.c_str(), e.mode() & 07777) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", full));
  }
  struct timespec t[2];
  t[0].tv_sec = t[1].tv_sec = e.mtime_ns() / 1000000000LL;
  t[0].tv_nsec = t[1].tv_nsec = e.mtime_ns() % 1000000000LL;
  if (utimensat(AT_FDCWD, full.c_str(), t, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("set mtime of ", full));
  }
  return absl::OkStatus();
}

// Copies the tree's `e` to `to`, checking its content against the entry.
// FAILED_PRECONDITION when the content differs (a commit may be replacing
// it: the caller decides).
absl::Status CopyFile(ReplicaStore* store, const Entry& e,
                      const std::string& to, std::string* buf) {
  ASSIGN_OR_RETURN(UniqueFd in, store->OpenCommittedFile(e.path()));
  UniqueFd out(open(
      to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return ErrnoStatus(errno, absl::StrCat("create ", to));
  Sha256 hash;
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(in.get(), buf->data(), buf->size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", e.path()));
    if (n == 0) break;
    absl::string_view piece(buf->data(), n);
    hash.Update(piece);
    total += n;
    RETURN_IF_ERROR(WriteAll(out.get(), piece));
  }
  if (total != e.size() || DigestBytes(hash.Finish()) != e.sha256()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "standby file ", e.path(), " does not hold the checkpoint's content (",
        total == e.size()
            ? std::string("its SHA-256 differs")
            : absl::StrCat(total, " bytes where ", e.size(), " were committed"),
        ")"));
  }
  return absl::OkStatus();
}

}  // namespace

DrillRunner::DrillRunner(gwmirror::v1::NodeConfig config, ReplicaStore* store)
    : config_(std::move(config)), store_(store) {}

absl::Status DrillRunner::CopyCommitted(const std::string& scratch,
                                        gwmirror::v1::DrillResult* result) {
  std::string buf(1 << 20, '\0');
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto [n, m] = store_->CommittedSnapshot();
    RETURN_IF_ERROR(RemoveTree(scratch));
    RETURN_IF_ERROR(MakeDirs(scratch, 0700));
    uint64_t bytes = 0;
    last = absl::OkStatus();
    for (const Entry& e : m.entries()) {
      std::string full = JoinPath(scratch, e.path());
      RETURN_IF_ERROR(MakeDirs(full.substr(0, full.rfind('/')), 0700));
      if (e.type() == ENTRY_TYPE_DIRECTORY) {
        if (mkdir(full.c_str(), 0700) != 0 && errno != EEXIST) {
          return ErrnoStatus(errno, absl::StrCat("mkdir ", full));
        }
        continue;  // Metadata once its content is in.
      }
      if (e.type() == ENTRY_TYPE_SYMLINK) {
        if (symlink(e.link_target().c_str(), full.c_str()) != 0) {
          return ErrnoStatus(errno, absl::StrCat("symlink ", full));
        }
      } else if (e.type() == ENTRY_TYPE_FILE) {
        last = CopyFile(store_, e, full, &buf);
        if (!last.ok()) break;
        bytes += e.size();
      }
      RETURN_IF_ERROR(SetMetadata(full, e));
    }
    if (last.ok()) {
      for (auto it = m.entries().rbegin(); it != m.entries().rend(); ++it) {
        if (it->type() == ENTRY_TYPE_DIRECTORY) {
          RETURN_IF_ERROR(SetMetadata(JoinPath(scratch, it->path()), *it));
        }
      }
      result->set_checkpoint(n);
      result->set_entries(m.size());
      result->set_bytes(bytes);
      return absl::OkStatus();
    }
    if (!absl::IsFailedPrecondition(last) && !absl::IsNotFound(last)) {
      return last;
    }
    // A commit replaced the file while we read it: again, on the new one.
    if (store_->CommittedSnapshot().first == n) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", n, " does not verify: ", last.message()));
    }
  }
  return absl::AbortedError(absl::StrCat(
      "commits kept replacing files during the copy; last: ", last.message()));
}

absl::StatusOr<gwmirror::v1::DrillResult> DrillRunner::Run(
    const gwmirror::v1::DrillRequest& req) {
  if (!mu_.TryLock()) {
    return absl::AbortedError("another drill is running on this replica");
  }
  auto unlock = absl::MakeCleanup([this] { mu_.Unlock(); });
  const std::string scratch =
      absl::StrCat(config_.state_dir(), "/drill/", req.drill_id());
  gwmirror::v1::DrillResult result;
  // The scratch databases and root go, whatever happens.
  gwmirror::v1::NodeConfig scratch_config = config_;
  scratch_config.set_host_root(scratch);
  DatabaseJobs jobs(scratch_config);
  auto cleanup = [&] {
    if (!config_.databases().empty()) {
      absl::Status st = jobs.DropScratch("");
      if (!st.ok()) {
        Logf(LogLevel::kWarning, "replica", "drill=%d drop scratch: %s",
             req.drill_id(), st.message());
      }
    }
    (void)RemoveTree(scratch);
    (void)RemoveTree(config_.state_dir() + "/drill");
  };
  absl::Time t = absl::Now();
  absl::Status st = CopyCommitted(scratch, &result);
  result.set_copy_ms(MsSince(t));
  if (st.ok() && !config_.databases().empty()) {
    t = absl::Now();
    std::vector<std::string> report;
    st = jobs.Restore("", /*scratch=*/true, &report);
    for (const std::string& line : report) result.add_restored(line);
    result.set_restore_ms(MsSince(t));
  }
  if (st.ok() && !req.smoke().empty()) {
    t = absl::Now();
    ProcessSpec spec;
    spec.argv.assign(req.smoke().begin(), req.smoke().end());
    spec.env = {{"GWMIRROR_DRILL_ROOT", scratch}};
    spec.timeout = absl::Minutes(10);
    auto r = RunProcess(spec);
    if (!r.ok()) {
      st = r.status();
    } else if (r->exit_code != 0 || r->timed_out) {
      st = absl::FailedPreconditionError(
          absl::StrCat("smoke command failed: ", Describe(*r)));
    }
    result.set_smoke_ms(MsSince(t));
  }
  cleanup();
  if (!st.ok()) return st;
  return result;
}

}  // namespace gwmirror
