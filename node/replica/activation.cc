#include "node/replica/activation.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

absl::Status ApplyOverride(const std::string& host_root,
                           const gwmirror::v1::SiteOverride& o,
                           std::vector<std::string>* done) {
  RETURN_IF_ERROR(ValidateRelativePath(o.file()));
  const std::string full = JoinPath(host_root, o.file());
  struct stat st;
  if (lstat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("site override: /", o.file(), " is not a regular file"));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(full));
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (lines.back().empty()) lines.pop_back();  // After the last newline.
  // In key order: the file and the report come out the same every time.
  const std::map<std::string, std::string> values(o.values().begin(),
                                                  o.values().end());
  std::set<std::string> seen;
  for (std::string& line : lines) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto it = values.find(line.substr(0, eq));
    if (it == values.end()) continue;
    line = absl::StrCat(it->first, "=", it->second);
    seen.insert(it->first);
  }
  for (const auto& [k, v] : values) {
    if (!seen.count(k)) lines.push_back(absl::StrCat(k, "=", v));
  }
  std::string out = absl::StrJoin(lines, "\n") + "\n";
  RETURN_IF_ERROR(WriteFileAtomic(full, out, st.st_mode & 07777));
  if (chown(full.c_str(), st.st_uid, st.st_gid) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chown ", full));
  }
  for (const auto& [k, v] : values) {
    done->push_back(absl::StrCat("set ", k, "=", v, " in /", o.file()));
  }
  return absl::OkStatus();
}

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

absl::Status InstallSiteFile(const std::string& host_root,
                             const gwmirror::v1::SiteFile& f,
                             std::vector<std::string>* done) {
  RETURN_IF_ERROR(ValidateRelativePath(f.path()));
  ASSIGN_OR_RETURN(std::string content, ReadFileToString(f.source()));
  struct stat st;
  if (stat(f.source().c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", f.source()));
  }
  const std::string target = JoinPath(host_root, f.path());
  RETURN_IF_ERROR(WriteFileAtomic(target, content, st.st_mode & 07777));
  done->push_back(
      absl::StrCat("installed this site's ", f.source(), " as /", f.path()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Activation::Run(
    gwmirror::v1::ActivationPhase phase) {
  using gwmirror::v1::ActivationPhase;
  std::vector<std::string> done;
  DatabaseJobs jobs(config_);
  if (phase == gwmirror::v1::ACTIVATION_PHASE_DRY_RUN) {
    for (const auto& job : config_.databases()) {
      done.push_back(absl::StrCat("restore ", job.name(), " (", job.kind(),
                                  ") from ", job.file()));
    }
    for (const auto& f : config_.promote().site_files()) {
      done.push_back(
          absl::StrCat("install this site's ", f.source(), " as /", f.path()));
    }
    for (const auto& o : config_.promote().overrides()) {
      for (const auto& [k, v] : o.values()) {
        done.push_back(absl::StrCat("set ", k, "=", v, " in /", o.file()));
      }
    }
    for (bool nm : {true, false}) {
      for (const std::string& s : Scripts(nm)) {
        done.push_back(absl::StrCat("run /", s, " start"));
      }
    }
    return done;
  }
  if (phase == gwmirror::v1::ACTIVATION_PHASE_RESTORE) {
    if (config_.databases().empty()) return done;
    RETURN_IF_ERROR(jobs.Restore("", /*scratch=*/false, &done));
    return done;
  }
  if (phase == gwmirror::v1::ACTIVATION_PHASE_OVERRIDES) {
    for (const auto& f : config_.promote().site_files()) {
      RETURN_IF_ERROR(InstallSiteFile(host_root_, f, &done));
    }
    for (const auto& o : config_.promote().overrides()) {
      RETURN_IF_ERROR(ApplyOverride(host_root_, o, &done));
    }
    return done;
  }
  const bool stop =
      phase == gwmirror::v1::ACTIVATION_PHASE_STOP_NODE_MANAGERS ||
      phase == gwmirror::v1::ACTIVATION_PHASE_STOP_INSTANCES;
  const bool node_managers =
      phase == gwmirror::v1::ACTIVATION_PHASE_NODE_MANAGERS ||
      phase == gwmirror::v1::ACTIVATION_PHASE_STOP_NODE_MANAGERS;
  if (!node_managers && phase != gwmirror::v1::ACTIVATION_PHASE_INSTANCES &&
      phase != gwmirror::v1::ACTIVATION_PHASE_STOP_INSTANCES) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown activation phase ", ActivationPhase_Name(phase)));
  }
  absl::Duration timeout = absl::Milliseconds(
      config_.promote().timeout_ms() ? config_.promote().timeout_ms()
                                     : 120'000);
  const char* verb = stop ? "stop" : "start";
  std::vector<std::string> scripts = Scripts(node_managers);
  // Stopped in the reverse order they start.
  if (stop) std::reverse(scripts.begin(), scripts.end());
  for (const std::string& s : scripts) {
    absl::Time t = absl::Now();
    ProcessSpec spec;
    spec.argv = {JoinPath(host_root_, s), verb};
    spec.timeout = timeout;
    ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec));
    if (r.exit_code != 0 || r.timed_out) {
      return absl::FailedPreconditionError(
          absl::StrCat("/", s, " ", verb, " failed: ", Describe(r)));
    }
    done.push_back(absl::StrCat("/", s, " ", verb, " (",
                                absl::FormatDuration(absl::Trunc(
                                    absl::Now() - t, absl::Milliseconds(1))),
                                ")"));
    Logf(LogLevel::kInfo, "node", "slot=%s %s: /%s %s", config_.slot(),
         stop ? "failback" : "promote", s, verb);
  }
  return done;
}

}  // namespace gwmirror
