#include "node/databases.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/path.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "node/metrics.h"
#include "node/scanner.h"

namespace gwmirror {
namespace {

using gwmirror::v1::DatabaseJob;

constexpr char kDrillSuffix[] = "_drill";

bool Plain(absl::string_view s, absl::string_view extra) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        extra.find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

absl::Duration Timeout(const DatabaseJob& job) {
  return absl::Milliseconds(job.timeout_ms() ? job.timeout_ms() : 600'000);
}

absl::StatusOr<std::string> Password(const DatabaseJob& job) {
  if (!job.password_file().empty()) {
    auto text = ReadFileToString(job.password_file());
    if (!text.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job \"", job.name(), "\": cannot read password_file ",
                       job.password_file(), ": ", text.status().message()));
    }
    std::string first = text->substr(0, text->find('\n'));
    return std::string(absl::StripTrailingAsciiWhitespace(first));
  }
  if (!job.password_env().empty()) {
    const char* v = getenv(job.password_env().c_str());
    if (v == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("job \"", job.name(), "\": environment variable ",
                       job.password_env(), " (password_env) is not set"));
    }
    return std::string(v);
  }
  return std::string();
}

// A 0600 file in the state directory holding a secret for one tool run;
// removed when it goes out of scope.
class SecretFile {
 public:
  static absl::StatusOr<SecretFile> Create(const std::string& state_dir,
                                           const std::string& job,
                                           const std::string& content) {
    std::string dir = state_dir + "/run";
    RETURN_IF_ERROR(MakeDirs(dir, 0700));
    SecretFile f(absl::StrCat(dir, "/", job, ".", getpid(), ".secret"));
    RETURN_IF_ERROR(WriteFileAtomic(f.path_, content, 0600));
    return f;
  }
  SecretFile(SecretFile&& o) noexcept : path_(std::move(o.path_)) {
    o.path_.clear();
  }
  ~SecretFile() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  explicit SecretFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

std::string Quoted(const std::string& s, const std::string& specials) {
  std::string out;
  for (char c : s) {
    if (specials.find(c) != std::string::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The secret file a kind's tools read, or none.
absl::StatusOr<std::optional<SecretFile>> Credentials(
    const std::string& state_dir, const DatabaseJob& job,
    const std::string& password) {
  std::string content;
  if (job.kind() == "mariadb") {
    // Always present: it must be the first option of every client call.
    content = password.empty() ? "[client]\n"
                               : absl::StrCat("[client]\npassword=\"",
                                              Quoted(password, "\"\\"), "\"\n");
  } else if (job.kind() == "postgresql" && !password.empty()) {
    content = absl::StrCat("*:*:*:*:", Quoted(password, ":\\"), "\n");
  } else if (job.kind() == "command" && !password.empty()) {
    content = password + "\n";
  } else {
    return std::optional<SecretFile>();
  }
  ASSIGN_OR_RETURN(SecretFile f,
                   SecretFile::Create(state_dir, job.name(), content));
  return std::optional<SecretFile>(std::move(f));
}

std::string Scrub(std::string text, const std::string& password) {
  if (!password.empty()) absl::StrReplaceAll({{password, "***"}}, &text);
  return text;
}

// The first of `names` found in PATH (the first when none is).
std::string Tool(std::initializer_list<const char*> names) {
  const char* path = getenv("PATH");
  for (const char* n : names) {
    for (absl::string_view dir :
         absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
      if (access(absl::StrCat(dir, "/", n).c_str(), X_OK) == 0) return n;
    }
  }
  return *names.begin();
}

std::vector<std::string> MariaDbClient(const std::string& tool,
                                       const DatabaseJob& job,
                                       const SecretFile& cred) {
  std::vector<std::string> argv = {
      tool, absl::StrCat("--defaults-extra-file=", cred.path())};
  if (!job.socket().empty()) {
    argv.push_back(absl::StrCat("--socket=", job.socket()));
  } else {
    argv.push_back(absl::StrCat("--host=", job.host()));
    argv.push_back("--protocol=TCP");
    if (job.port()) argv.push_back(absl::StrCat("--port=", job.port()));
  }
  if (!job.user().empty()) argv.push_back(absl::StrCat("--user=", job.user()));
  return argv;
}

std::vector<std::string> PgClient(const std::string& tool,
                                  const DatabaseJob& job) {
  std::vector<std::string> argv = {
      tool, absl::StrCat("--host=",
                         job.socket().empty() ? job.host() : job.socket())};
  if (job.port()) argv.push_back(absl::StrCat("--port=", job.port()));
  if (!job.user().empty()) {
    argv.push_back(absl::StrCat("--username=", job.user()));
  }
  argv.push_back("--no-password");
  return argv;
}

bool PgDumpHasRestrictKey() {
  static const bool has = [] {
    std::string out = "/tmp/gwmirror-pgdump-help." + std::to_string(getpid());
    ProcessSpec spec;
    spec.argv = {"pg_dump", "--help"};
    spec.stdout_path = out;
    spec.timeout = absl::Seconds(10);
    auto r = RunProcess(spec);
    auto text = ReadFileToString(out);
    unlink(out.c_str());
    return r.ok() && text.ok() && absl::StrContains(*text, "--restrict-key");
  }();
  return has;
}

absl::StatusOr<std::string> FileDigest(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  ASSIGN_OR_RETURN(FdDigest d, Sha256OfFd(fd.get(), path));
  return d.sha256;
}

// Runs `spec` for `job`; FAILED_PRECONDITION "<what> failed: ..." unless it
// exits 0. Tool output is scrubbed of the password.
absl::Status Run(ProcessSpec spec, const DatabaseJob& job,
                 const std::string& password, const std::string& what) {
  spec.timeout = Timeout(job);
  ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec));
  if (r.exit_code == 0 && !r.timed_out) return absl::OkStatus();
  return absl::FailedPreconditionError(
      Scrub(absl::StrCat(what, " job \"", job.name(), "\" (", job.kind(),
                         ") failed: ", Describe(r)),
            password));
}

absl::Status RunHook(
    const google::protobuf::RepeatedPtrField<std::string>& argv,
    const DatabaseJob& job, const std::string& password,
    const std::string& what) {
  if (argv.empty()) return absl::OkStatus();
  ProcessSpec spec;
  spec.argv.assign(argv.begin(), argv.end());
  return Run(spec, job, password, what);
}

}  // namespace

absl::Status ValidateDatabaseJobs(const gwmirror::v1::NodeConfig& config) {
  std::set<std::string> names, files;
  std::vector<std::string> roots = RootPaths(config.roots());
  for (const DatabaseJob& job : config.databases()) {
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("databases: job \"", job.name(), "\": ", why));
    };
    if (!Plain(job.name(), "-.")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "databases: job name \"", job.name(),
          "\" must be non-empty letters, digits, '_', '-' or '.'"));
    }
    if (!names.insert(job.name()).second) return bad("name used twice");
    const std::string& k = job.kind();
    if (k != "mariadb" && k != "postgresql" && k != "ldap" && k != "command") {
      return bad(absl::StrCat(
          "kind \"", k, "\" is not mariadb, postgresql, ldap or command"));
    }
    if (absl::Status st = ValidateRelativePath(job.file()); !st.ok()) {
      return bad(absl::StrCat("file: ", st.message()));
    }
    bool inside = false;
    for (const std::string& r : roots) {
      inside |= absl::StartsWith(job.file(), r + "/");
    }
    if (!inside) {
      return bad(absl::StrCat("file \"", job.file(),
                              "\" is not inside a root of the mirror set"));
    }
    if (!files.insert(job.file()).second) return bad("file used twice");
    if (!job.password_file().empty() && !job.password_env().empty()) {
      return bad("password_file and password_env both set: choose one");
    }
    if (k == "mariadb" || k == "postgresql") {
      if (!Plain(job.database(), "")) {
        return bad(absl::StrCat("database \"", job.database(),
                                "\" must be letters, digits and '_'"));
      }
      if (job.socket().empty() == job.host().empty()) {
        return bad("set exactly one of socket and host");
      }
    } else if (k == "ldap") {
      if (job.ldap_config_dir().empty() || job.ldap_suffix().empty()) {
        return bad("ldap needs ldap_config_dir and ldap_suffix");
      }
    } else if (job.dump_command().empty()) {
      return bad("command needs dump_command");
    }
  }
  return absl::OkStatus();
}

DatabaseJobs::DatabaseJobs(const gwmirror::v1::NodeConfig& config)
    : config_(config),
      host_root_(config.host_root().empty() ? "/" : config.host_root()) {
  // Every job's series exist from the start, so "no failure yet" is a 0.
  for (const DatabaseJob& job : config_.databases()) {
    for (const char* outcome : {"ok", "failed"}) {
      NodeMetrics::Get().dump_runs.Add(0, {job.name(), job.kind(), outcome});
    }
  }
}

std::set<std::string> DatabaseJobs::DumpFiles() const {
  std::set<std::string> out;
  for (const DatabaseJob& job : config_.databases()) out.insert(job.file());
  return out;
}

absl::Status DatabaseJobs::DumpDue(absl::Time now) {
  absl::MutexLock l(&mu_);
  for (const DatabaseJob& job : config_.databases()) {
    auto it = last_dump_.find(job.name());
    if (job.min_interval_ms() > 0 && it != last_dump_.end() &&
        now - it->second < absl::Milliseconds(job.min_interval_ms())) {
      continue;
    }
    absl::Time start = absl::Now();
    absl::Status st = Dump(job);
    NodeMetrics& m = NodeMetrics::Get();
    m.dump_runs.Add(1, {job.name(), job.kind(), st.ok() ? "ok" : "failed"});
    m.dump_duration.Observe(absl::ToDoubleSeconds(absl::Now() - start),
                            {job.name()});
    RETURN_IF_ERROR(st);
    m.dump_last_success.Set(
        absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()), {job.name()});
    last_dump_[job.name()] = now;
  }
  return absl::OkStatus();
}

absl::Status DatabaseJobs::Dump(const DatabaseJob& job) {
  const std::string full = JoinPath(host_root_, job.file());
  const std::string tmp = full + ".gwmirror-tmp";
  RETURN_IF_ERROR(MakeDirs(full.substr(0, full.rfind('/')), 0700));
  ASSIGN_OR_RETURN(std::string password, Password(job));
  ASSIGN_OR_RETURN(std::optional<SecretFile> cred,
                   Credentials(config_.state_dir(), job, password));
  ProcessSpec spec;
  spec.stdout_path = tmp;
  spec.timeout = Timeout(job);
  const std::string& k = job.kind();
  if (k == "mariadb") {
    spec.argv = MariaDbClient(Tool({"mariadb-dump", "mysqldump"}), job, *cred);
    // One row per line, rows in primary-key order, no dump date: the same
    // data gives the same bytes, and a changed row is a changed line.
    for (const char* o :
         {"--single-transaction", "--skip-dump-date", "--order-by-primary",
          "--skip-extended-insert", "--routines", "--triggers"}) {
      spec.argv.push_back(o);
    }
    spec.argv.push_back(job.database());
  } else if (k == "postgresql") {
    spec.argv = PgClient("pg_dump", job);
    spec.argv.push_back(absl::StrCat("--dbname=", job.database()));
    spec.argv.push_back("--no-owner");
    spec.argv.push_back("--no-privileges");
    // A fixed key, or pg_dump writes a random one into every dump.
    if (PgDumpHasRestrictKey()) spec.argv.push_back("--restrict-key=gwmirror");
    if (cred) spec.env.emplace_back("PGPASSFILE", cred->path());
    spec.env.emplace_back("PGCONNECT_TIMEOUT", "10");
  } else if (k == "ldap") {
    spec.argv = {"slapcat", "-F", job.ldap_config_dir(), "-b",
                 job.ldap_suffix()};
  } else {
    spec.argv.assign(job.dump_command().begin(), job.dump_command().end());
    if (cred)
      spec.env.emplace_back("GWMIRROR_DUMP_PASSWORD_FILE", cred->path());
  }
  absl::Status st = Run(spec, job, password, "dump");
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  // Unchanged content: keep the old file (and its stat data).
  auto now_digest = FileDigest(tmp);
  auto old_digest = DigestOfCurrent(job.name(), full);
  if (now_digest.ok() && old_digest.ok() && *now_digest == *old_digest) {
    unlink(tmp.c_str());
    return absl::OkStatus();
  }
  {
    UniqueFd fd(open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || fsync(fd.get()) != 0 || fchmod(fd.get(), 0600) != 0) {
      absl::Status e = ErrnoStatus(errno, absl::StrCat("sync dump ", tmp));
      unlink(tmp.c_str());
      return e;
    }
  }
  if (rename(tmp.c_str(), full.c_str()) != 0) {
    absl::Status e = ErrnoStatus(errno, absl::StrCat("rename ", tmp));
    unlink(tmp.c_str());
    return e;
  }
  if (now_digest.ok()) Remember(job.name(), full, *now_digest);
  return FsyncPath(full.substr(0, full.rfind('/')));
}

absl::StatusOr<std::string> DatabaseJobs::DigestOfCurrent(
    const std::string& name, const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  auto it = known_.find(name);
  if (it != known_.end() && it->second.ino == st.st_ino &&
      it->second.size == static_cast<uint64_t>(st.st_size) &&
      it->second.mtime_ns ==
          st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec) {
    return it->second.sha256;
  }
  ASSIGN_OR_RETURN(std::string sha, FileDigest(path));
  Remember(name, path, sha);
  return sha;
}

void DatabaseJobs::Remember(const std::string& name, const std::string& path,
                            std::string sha256) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    known_.erase(name);
    return;
  }
  known_[name] = {std::move(sha256), static_cast<uint64_t>(st.st_ino),
                  static_cast<uint64_t>(st.st_size),
                  st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
}

absl::Status DatabaseJobs::Restore(const std::string& name, bool scratch,
                                   std::vector<std::string>* report) {
  bool found = false;
  for (const DatabaseJob& job : config_.databases()) {
    if (!name.empty() && job.name() != name) continue;
    found = true;
    RETURN_IF_ERROR(RestoreOne(job, scratch, report));
  }
  if (!found) {
    return absl::NotFoundError(
        name.empty() ? std::string("no database jobs in the config")
                     : absl::StrCat("no database job \"", name, "\""));
  }
  return absl::OkStatus();
}

absl::Status DatabaseJobs::RestoreOne(const DatabaseJob& job, bool scratch,
                                      std::vector<std::string>* report) {
  const std::string dump = JoinPath(host_root_, job.file());
  if (access(dump.c_str(), R_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("restore job \"", job.name(), "\": no dump at ", dump,
                     " (no checkpoint carried one yet)"));
  }
  absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(std::string password, Password(job));
  ASSIGN_OR_RETURN(std::optional<SecretFile> cred,
                   Credentials(config_.state_dir(), job, password));
  const std::string db = job.database() + (scratch ? kDrillSuffix : "");
  const std::string& k = job.kind();
  std::string target = db;
  if (k == "mariadb") {
    const std::string tool = Tool({"mariadb", "mysql"});
    ProcessSpec reset;
    reset.argv = MariaDbClient(tool, job, *cred);
    reset.argv.push_back(absl::StrCat("--execute=DROP DATABASE IF EXISTS `", db,
                                      "`; CREATE DATABASE `", db, "`"));
    RETURN_IF_ERROR(Run(reset, job, password, "restore"));
    ProcessSpec load;
    load.argv = MariaDbClient(tool, job, *cred);
    load.argv.push_back(absl::StrCat("--database=", db));
    load.stdin_path = dump;
    RETURN_IF_ERROR(Run(load, job, password, "restore"));
  } else if (k == "postgresql") {
    std::vector<std::pair<std::string, std::string>> env;
    if (cred) env.emplace_back("PGPASSFILE", cred->path());
    ProcessSpec reset;
    reset.argv = PgClient("psql", job);
    for (const std::string& a :
         {std::string("--dbname=postgres"), std::string("--quiet"),
          std::string("--set=ON_ERROR_STOP=1"),
          absl::StrCat("--command=DROP DATABASE IF EXISTS \"", db, "\""),
          absl::StrCat("--command=CREATE DATABASE \"", db, "\"")}) {
      reset.argv.push_back(a);
    }
    reset.env = env;
    RETURN_IF_ERROR(Run(reset, job, password, "restore"));
    ProcessSpec load;
    load.argv = PgClient("psql", job);
    load.argv.push_back(absl::StrCat("--dbname=", db));
    load.argv.push_back("--quiet");
    load.argv.push_back("--set=ON_ERROR_STOP=1");
    load.stdin_path = dump;
    load.env = env;
    RETURN_IF_ERROR(Run(load, job, password, "restore"));
  } else if (k == "ldap") {
    target = job.ldap_suffix();
    ProcessSpec load;
    load.argv = {
        "slapadd", "-F", job.ldap_config_dir(), "-b", job.ldap_suffix(),
        "-l",      dump};
    if (scratch) {
      load.argv.push_back("-u");  // Dry run: parse and check, write nothing.
      RETURN_IF_ERROR(Run(load, job, password, "restore"));
    } else {
      load.argv.push_back("-q");
      RETURN_IF_ERROR(RunHook(job.pre_restore(), job, password, "pre-restore"));
      absl::Status st;
      const std::string dir = job.ldap_data_dir();
      const std::string aside = dir + ".gwmirror-before-restore";
      struct stat ds;
      bool moved = false;
      if (!dir.empty() && lstat(dir.c_str(), &ds) == 0) {
        st = RemoveTree(aside);
        if (st.ok() && rename(dir.c_str(), aside.c_str()) != 0) {
          st = ErrnoStatus(errno, absl::StrCat("move ", dir, " aside"));
        }
        moved = st.ok();
        if (st.ok() && (mkdir(dir.c_str(), ds.st_mode & 07777) != 0 ||
                        chown(dir.c_str(), ds.st_uid, ds.st_gid) != 0)) {
          st = ErrnoStatus(errno, absl::StrCat("recreate ", dir));
        }
      }
      if (st.ok()) st = Run(load, job, password, "restore");
      if (!st.ok() && moved) {
        // Put the previous database back.
        (void)RemoveTree(dir);
        rename(aside.c_str(), dir.c_str());
      }
      absl::Status post =
          RunHook(job.post_restore(), job, password, "post-restore");
      RETURN_IF_ERROR(st);
      RETURN_IF_ERROR(post);
    }
  } else {
    if (job.restore_command().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "restore job \"", job.name(), "\": no restore_command configured"));
    }
    ProcessSpec load;
    load.argv.assign(job.restore_command().begin(),
                     job.restore_command().end());
    load.stdin_path = dump;
    load.env.emplace_back("GWMIRROR_RESTORE_DATABASE", db);
    load.env.emplace_back("GWMIRROR_RESTORE_SCRATCH", scratch ? "1" : "0");
    if (cred)
      load.env.emplace_back("GWMIRROR_DUMP_PASSWORD_FILE", cred->path());
    RETURN_IF_ERROR(Run(load, job, password, "restore"));
  }
  if (report != nullptr) {
    report->push_back(absl::StrCat(
        job.name(), " (", k, ") restored into ", target.empty() ? "-" : target,
        scratch && k == "ldap" ? " (dry run)" : "", " in ",
        absl::FormatDuration(
            absl::Trunc(absl::Now() - start, absl::Milliseconds(1)))));
  }
  Logf(LogLevel::kInfo, "databases", "slot=%s job=%s restored into %s",
       config_.slot(), job.name(), target);
  return absl::OkStatus();
}

absl::Status DatabaseJobs::DropScratch(const std::string& name) {
  for (const DatabaseJob& job : config_.databases()) {
    if (!name.empty() && job.name() != name) continue;
    if (job.kind() != "mariadb" && job.kind() != "postgresql") continue;
    ASSIGN_OR_RETURN(std::string password, Password(job));
    ASSIGN_OR_RETURN(std::optional<SecretFile> cred,
                     Credentials(config_.state_dir(), job, password));
    const std::string db = job.database() + kDrillSuffix;
    ProcessSpec drop;
    if (job.kind() == "mariadb") {
      drop.argv = MariaDbClient(Tool({"mariadb", "mysql"}), job, *cred);
      drop.argv.push_back(
          absl::StrCat("--execute=DROP DATABASE IF EXISTS `", db, "`"));
    } else {
      drop.argv = PgClient("psql", job);
      drop.argv.push_back("--dbname=postgres");
      drop.argv.push_back(
          absl::StrCat("--command=DROP DATABASE IF EXISTS \"", db, "\""));
      if (cred) drop.env.emplace_back("PGPASSFILE", cred->path());
    }
    RETURN_IF_ERROR(Run(drop, job, password, "drop scratch"));
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
