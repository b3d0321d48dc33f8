// `gwmirror sandbox up --databases`: throwaway MariaDB, PostgreSQL and
// OpenLDAP servers per site (unix sockets, or loopback for slapd), the
// production ones seeded with the gateway's metrics schema and a directory,
// and the dump/restore jobs that carry them from production to standby.
#ifndef GWMIRROR_CLI_SANDBOX_DATABASES_H_
#define GWMIRROR_CLI_SANDBOX_DATABASES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

struct SiteDatabases {
  std::vector<gwmirror::v1::SandboxDatabase> servers;
  std::vector<gwmirror::v1::DatabaseJob> jobs;
};

// The root that holds the dump files, relative to a host root.
inline constexpr char kDumpRoot[] = "var/lib/gwmirror/dumps";

// Where a site's servers run: a network namespace (empty: the machine's
// own) and the address slapd listens on there.
struct SiteNetwork {
  std::string netns;
  std::string host = "127.0.0.1";
};

// Starts the servers of `site` under `dir` (PostgreSQL's data lives under
// /var/tmp, where its unprivileged server user can reach it). Every server
// started is appended to `started` even when a later step fails, so the
// caller can stop it. `seed`: create the schema and sample data. The SQL
// servers listen on unix sockets only, so `net` moves slapd alone (its
// argv, the restore's restart of it included, run in `net.netns`).
absl::StatusOr<SiteDatabases> StartSiteDatabases(
    const std::string& dir, const std::string& site, bool seed,
    const SiteNetwork& net,
    std::vector<gwmirror::v1::SandboxDatabase>* started);

// Starts argv[0] (an absolute path) detached: its own session, stdin from
// /dev/null, stdout and stderr appended to `log`, no other descriptor of
// ours. Returns its pid.
absl::StatusOr<int> SpawnDetached(const std::vector<std::string>& argv,
                                  const std::string& log);

// Stops a server (by its pid file) and removes its data directory.
void StopDatabase(const gwmirror::v1::SandboxDatabase& db);

}  // namespace gwmirror

#endif  // GWMIRROR_CLI_SANDBOX_DATABASES_H_
