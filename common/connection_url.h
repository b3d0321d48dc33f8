// The URLs a gateway's External Connections name (JDBC for MySQL/MariaDB,
// PostgreSQL, Oracle, SQL Server and DB2; LDAP; any scheme://host:port),
// read into what a coverage verdict compares: kind, hosts, port and
// database (or, for LDAP, base DN), and writes that back as a URL without
// anything else. Pure functions; thread-safe.
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
  // A JDBC URL ("jdbc:<driver>:...").
  bool jdbc = false;
};

// Refuses, naming the problem (and of the URL only its scheme, since the
// rest may hold a password), what is not one of the shapes above.
absl::StatusOr<ConnectionEndpoint> ParseConnectionUrl(absl::string_view url);

// `e` as a URL that ParseConnectionUrl reads back to `e`, and that holds
// nothing else: no user, password or parameter of the original
// ("jdbc:mariadb://db:3306/metrics", "jdbc:oracle:thin:@//ora:1521/GW",
// "jdbc:sqlserver://sql:1433;databaseName=gw", "ldap://dir:389/dc=x").
// What a node reports, so credentials never leave the host whatever form
// they took in the original.
std::string CanonicalUrl(const ConnectionEndpoint& e);

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
