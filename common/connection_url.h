// The URLs a gateway's External Connections name (JDBC for MySQL/MariaDB,
// PostgreSQL, Oracle, SQL Server and DB2; LDAP; any scheme://host:port),
// read into what a coverage verdict compares: kind, hosts, port and
// database (or, for LDAP, base DN). Also removes credentials from a URL
// before it leaves the host. Pure functions; thread-safe.
#ifndef GWMIRROR_COMMON_CONNECTION_URL_H_
#define GWMIRROR_COMMON_CONNECTION_URL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

struct ConnectionEndpoint {
  // "mariadb" (MySQL and MariaDB), "postgresql", "oracle", "sqlserver",
  // "db2", "ldap", or the URL's scheme otherwise.
  std::string kind;
  // Lower-cased, without brackets; several for a failover or load-balanced
  // URL, the first listed first. Never empty.
  std::vector<std::string> hosts;
  // The URL's port, or the kind's default (3306, 5432, 1521, 1433, 50000,
  // 389 for ldap://, 636 for ldaps://); 0 when the kind has none.
  uint32_t port = 0;
  // The database, service name or SID; for LDAP the base DN, normalised
  // (NormaliseDn). Empty when the URL names none.
  std::string database;
};

// Refuses, naming the problem, what is not one of the shapes above.
absl::StatusOr<ConnectionEndpoint> ParseConnectionUrl(absl::string_view url);

// `url` without credentials: "user:password@" (and Oracle's
// "user/password@") and every parameter whose key names a password or
// secret ("password=", "pwd=", "PASSWORD=") are removed.
std::string RedactUrl(absl::string_view url);

// "DC=Example, dc=com" -> "dc=example,dc=com".
std::string NormaliseDn(absl::string_view dn);

// Whether connections of this entity type (ExtConnsStore.xml) hold state
// that a standby needs: DbConnection, LdapDirectory, JMS connections,
// Cassandra. Others (an SMTP relay, a RADIUS server) are stateless.
bool ConnectionHoldsState(absl::string_view entity_type);

// The port a kind listens on when its URL names none (0: no default).
uint32_t DefaultPortOf(absl::string_view kind);

// localhost, 127.0.0.0/8, ::1 and 0.0.0.0: the host the URL is read on.
bool IsLoopbackHost(absl::string_view host);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_CONNECTION_URL_H_
