#include "node/replica/activation.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/path.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "node/databases.h"

namespace gwmirror {
namespace {

constexpr char kNodeManagers[] = "etc/init.d/vshell-Node-Manager-*";
constexpr char kInstances[] = "etc/init.d/vshell-*";

// Files under the host root matching `glob` (its directory part is taken
// literally, the last component is a pattern).
std::vector<std::string> Match(const std::string& host_root,
                               const std::string& glob) {
  std::vector<std::string> out;
  size_t slash = glob.rfind('/');
  std::string dir = slash == std::string::npos ? "" : glob.substr(0, slash);
  std::string pattern = glob.substr(slash == std::string::npos ? 0 : slash + 1);
  auto names = ListDir(JoinPath(host_root, dir));
  if (!names.ok()) return out;
  for (const std::string& n : *names) {
    std::string rel = dir.empty() ? n : dir + "/" + n;
    struct stat st;
    if (fnmatch(pattern.c_str(), n.c_str(), 0) == 0 &&
        stat(JoinPath(host_root, rel).c_str(), &st) == 0 &&
        S_ISREG(st.st_mode)) {
      out.push_back(rel);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Activation::Activation(gwmirror::v1::NodeConfig config)
    : config_(std::move(config)),
      host_root_(config_.host_root().empty() ? "/" : config_.host_root()) {}

std::vector<std::string> Activation::Scripts(bool node_managers) const {
  const auto& p = config_.promote();
  std::vector<std::string> nm_globs(p.node_manager_scripts().begin(),
                                    p.node_manager_scripts().end());
  if (nm_globs.empty()) nm_globs.push_back(kNodeManagers);
  std::set<std::string> nms;
  for (const std::string& g : nm_globs) {
    for (const std::string& f : Match(host_root_, g)) nms.insert(f);
  }
  if (node_managers) return {nms.begin(), nms.end()};
  std::vector<std::string> in_globs(p.instance_scripts().begin(),
                                    p.instance_scripts().end());
  if (in_globs.empty()) in_globs.push_back(kInstances);
  std::set<std::string> instances;
  for (const std::string& g : in_globs) {
    for (const std::string& f : Match(host_root_, g)) {
      if (!nms.count(f)) instances.insert(f);
    }
  }
  return {instances.begin(), instances.end()};
}

absl::StatusOr<std::vector<std::string>> Activation::Run(
    const std::string& phase) {
  std::vector<std::string> done;
  DatabaseJobs jobs(config_);
  if (phase == "dry-run") {
    for (const auto& job : config_.databases()) {
      done.push_back(absl::StrCat("restore ", job.name(), " (", job.kind(),
                                  ") from ", job.file()));
    }
    for (bool nm : {true, false}) {
      for (const std::string& s : Scripts(nm)) {
        done.push_back(absl::StrCat("run /", s, " start"));
      }
    }
    return done;
  }
  if (phase == "restore") {
    if (config_.databases().empty()) return done;
    RETURN_IF_ERROR(jobs.Restore("", /*scratch=*/false, &done));
    return done;
  }
  if (phase != "node-managers" && phase != "instances") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown activation phase \"", phase, "\""));
  }
  absl::Duration timeout = absl::Milliseconds(
      config_.promote().timeout_ms() ? config_.promote().timeout_ms()
                                     : 120'000);
  for (const std::string& s : Scripts(phase == "node-managers")) {
    absl::Time t = absl::Now();
    ProcessSpec spec;
    spec.argv = {JoinPath(host_root_, s), "start"};
    spec.timeout = timeout;
    ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec));
    if (r.exit_code != 0 || r.timed_out) {
      return absl::FailedPreconditionError(
          absl::StrCat("/", s, " start failed: ", Describe(r)));
    }
    done.push_back(absl::StrCat("/", s, " start (",
                                absl::FormatDuration(absl::Trunc(
                                    absl::Now() - t, absl::Milliseconds(1))),
                                ")"));
    Logf(LogLevel::kInfo, "node", "slot=%s promote: /%s start", config_.slot(),
         s);
  }
  return done;
}

}  // namespace gwmirror
