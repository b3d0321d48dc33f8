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
#include "node/replica/restore.h"
#include "node/work_progress.h"

namespace gwmirror {
namespace {

int64_t MsSince(absl::Time t) {
  return absl::ToInt64Milliseconds(absl::Now() - t);
}

}  // namespace

DrillRunner::DrillRunner(gwmirror::v1::NodeConfig config, ReplicaStore* store)
    : config_(std::move(config)), store_(store) {}

absl::Status DrillRunner::Restore(uint64_t n, const std::string& scratch,
                                  gwmirror::v1::DrillResult* result) {
  if (n == 0) n = store_->CommittedSnapshot().first;
  ASSIGN_OR_RETURN(Manifest m, store_->history().LoadManifest(n));
  uint64_t files = 0, total = 0;
  for (const Entry& e : m.entries()) {
    if (e.type() != gwmirror::v1::ENTRY_TYPE_FILE) continue;
    ++files;
    total += e.size();
  }
  WorkProgress& progress = WorkProgress::Drill();
  progress.SetTotal(files, total);
  uint64_t bytes = 0;
  absl::Status st =
      RestoreTree(store_->history(), m, scratch, &bytes, [&](const Entry& e) {
        progress.Sent(e.size());
        progress.FileDone();
      });
  if (!st.ok()) {
    return absl::Status(
        st.code(),
        absl::StrCat("checkpoint ", n, " does not verify: ", st.message()));
  }
  result->set_checkpoint(n);
  result->set_entries(m.size());
  result->set_bytes(bytes);
  return absl::OkStatus();
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
  WorkProgress::Scope progress(WorkProgress::Drill(), "restore");
  absl::Time t = absl::Now();
  absl::Status st = Restore(req.checkpoint(), scratch, &result);
  result.set_copy_ms(MsSince(t));
  if (st.ok() && !config_.databases().empty()) {
    WorkProgress::Drill().SetStep("databases");
    t = absl::Now();
    std::vector<std::string> report;
    st = jobs.Restore("", /*scratch=*/true, &report);
    for (const std::string& line : report) result.add_restored(line);
    result.set_restore_ms(MsSince(t));
  }
  if (st.ok() && !req.smoke().empty()) {
    WorkProgress::Drill().SetStep("smoke");
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
