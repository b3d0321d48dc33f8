// Databases beyond files (issue 5): dump jobs that a source runs at every
// cut (or at most every min_interval_ms) into its mirror set, and restore
// jobs that load a committed dump into the standby's own servers. Kinds:
// MariaDB/MySQL (mariadb-dump with a stable, delta-friendly output),
// PostgreSQL (pg_dump, plain SQL), OpenLDAP (slapcat / slapadd) and any
// command. Passwords travel in 0600 files in the state directory, removed
// after each run, never on a command line; every message that could
// carry tool output is scrubbed of the password. Thread-safe.
#ifndef GWMIRROR_NODE_DATABASES_H_
#define GWMIRROR_NODE_DATABASES_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// Checks every job of `config`: unique names, a known kind, the fields the
// kind needs, a dump file inside a root, database names that need no
// quoting. INVALID_ARGUMENT naming the job and the field.
absl::Status ValidateDatabaseJobs(const gwmirror::v1::NodeConfig& config);

class DatabaseJobs {
 public:
  explicit DatabaseJobs(const gwmirror::v1::NodeConfig& config);

  // Runs every job that is due. The first failure stops and is returned as
  // FAILED_PRECONDITION "dump job "<name>" (<kind>) failed: <exit, stderr>";
  // the previous dump file stays as it was. A dump whose content did not
  // change leaves the file untouched (same mtime: nothing to re-hash).
  absl::Status DumpDue(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Loads the dump of job `name` (every job when empty) from this host's
  // tree into this host's server, into an empty database (dropped and
  // created; for ldap, the data directory moved aside). With `scratch`,
  // into "<database>_drill" instead (ldap: a dry run of slapadd). Appends
  // one line per restored job to `report`.
  absl::Status Restore(const std::string& name, bool scratch,
                       std::vector<std::string>* report);

  // Drops the scratch databases a drill restore made.
  absl::Status DropScratch(const std::string& name);

  // Dump files (relative to the host root): the change watcher ignores
  // them, since cuts write them.
  std::set<std::string> DumpFiles() const;

 private:
  absl::Status Dump(const gwmirror::v1::DatabaseJob& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The digest of the dump file a job left in place, trusted while the
  // file's stat data is unchanged: an unchanged dump then costs one read
  // (the new one), not two.
  struct Known {
    std::string sha256;
    uint64_t ino = 0, size = 0;
    int64_t mtime_ns = 0;
  };
  absl::StatusOr<std::string> DigestOfCurrent(const std::string& name,
                                              const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remember(const std::string& name, const std::string& path,
                std::string sha256) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RestoreOne(const gwmirror::v1::DatabaseJob& job, bool scratch,
                          std::vector<std::string>* report);

  const gwmirror::v1::NodeConfig config_;
  const std::string host_root_;
  absl::Mutex mu_;
  std::map<std::string, absl::Time> last_dump_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Known> known_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_DATABASES_H_
