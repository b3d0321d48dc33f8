#include "coordinator/coverage.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/connection_url.h"

namespace gwmirror {
namespace {

using gwmirror::v1::CoverageRow;
using gwmirror::v1::DumpJobEndpoint;
using gwmirror::v1::ExternalDeclaration;
using gwmirror::v1::TopologyReport;

// A host as the cluster names it: a loopback host is `host_name` (the
// reporting host's topology name), others lower-cased.
std::string Named(absl::string_view host, const std::string& host_name) {
  std::string h = absl::AsciiStrToLower(host);
  if (h.empty() || IsLoopbackHost(h)) {
    return host_name.empty() ? "localhost" : absl::AsciiStrToLower(host_name);
  }
  return h;
}

bool SameDatabase(const std::string& kind, const std::string& connection,
                  const std::string& protects) {
  if (kind != "ldap") return !connection.empty() && connection == protects;
  // A directory URL with no base DN, or one inside the job's suffix.
  const std::string suffix = NormaliseDn(protects);
  return connection.empty() || connection == suffix ||
         absl::EndsWith(connection, "," + suffix);
}

// The dump job of `jobs_of` (production reports) that dumps `e`'s
// database, as "gw1/metrics-mariadb"; "" when none does.
std::string JobCovering(const ConnectionEndpoint& e,
                        const std::string& connection_host_name,
                        const std::vector<TopologyReport>& jobs_of) {
  for (const TopologyReport& r : jobs_of) {
    for (const DumpJobEndpoint& j : r.dump_jobs()) {
      if (j.kind() != e.kind) continue;
      const std::string job_host = Named(j.host(), r.host_name());
      const bool host = std::any_of(
          e.hosts.begin(), e.hosts.end(), [&](const std::string& h) {
            return Named(h, connection_host_name) == job_host;
          });
      const uint32_t port = j.port() != 0 ? j.port() : DefaultPortOf(j.kind());
      if (host && (j.socket() || port == e.port) &&
          SameDatabase(e.kind, e.database, j.database())) {
        return absl::StrCat(r.slot(), "/", j.name());
      }
    }
  }
  return "";
}

// The declaration that names `c` (by URL or by name); nullptr when none.
const ExternalDeclaration* Declared(
    const gwmirror::v1::ExternalConnection& c, const ConnectionEndpoint* e,
    const std::vector<ExternalDeclaration>& declarations) {
  for (const ExternalDeclaration& d : declarations) {
    if (d.match() == c.name()) return &d;
    if (e == nullptr) continue;
    // A declaration naming no database covers the whole server.
    auto m = ParseConnectionUrl(d.match());
    if (!m.ok() || m->kind != e->kind || m->port != e->port ||
        !(m->database.empty() ||
          SameDatabase(e->kind, e->database, m->database))) {
      continue;
    }
    for (const std::string& h : m->hosts) {
      if (std::find(e->hosts.begin(), e->hosts.end(), h) != e->hosts.end()) {
        return &d;
      }
    }
  }
  return nullptr;
}

}  // namespace

Coverage ComputeCoverage(const std::vector<TopologyReport>& production,
                         const std::vector<ExternalDeclaration>& declarations) {
  Coverage out;
  for (const TopologyReport& r : production) {
    for (const auto& c : r.external_connections()) {
      CoverageRow row;
      row.set_slot(r.slot());
      *row.mutable_connection() = c;
      absl::StatusOr<ConnectionEndpoint> e =
          c.url().empty() ? absl::InvalidArgumentError(c.problem())
                          : ParseConnectionUrl(c.url());
      if (!e.ok() && c.problem().empty()) {
        row.mutable_connection()->set_problem(
            std::string(e.status().message()));
      }
      if (c.store_unreadable()) {
        // A store that cannot be read hides whatever it holds.
        row.set_state("UNRESOLVED");
        ++out.unprotected;
      } else if (!ConnectionHoldsState(c.type())) {
        row.set_state("STATELESS");
      } else if (std::string job =
                     e.ok() ? JobCovering(*e, r.host_name(), production) : "";
                 !job.empty()) {
        row.set_state("PROTECTED");
        row.set_covered_by(job);
      } else if (const ExternalDeclaration* d =
                     Declared(c, e.ok() ? &*e : nullptr, declarations)) {
        row.set_state("DECLARED");
        row.set_covered_by(d->protected_by());
      } else {
        row.set_state(e.ok() ? "UNPROTECTED" : "UNRESOLVED");
        ++out.unprotected;
      }
      out.rows.push_back(std::move(row));
    }
  }
  return out;
}

}  // namespace gwmirror
