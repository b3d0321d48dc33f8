#include "coordinator/coverage.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ExternalDeclaration;
using gwmirror::v1::TopologyReport;

void Connection(TopologyReport* r, const std::string& name,
                const std::string& type, const std::string& url,
                const std::string& problem = "") {
  auto* c = r->add_external_connections();
  c->set_group("group-2");
  c->set_archive("u1");
  c->set_name(name);
  c->set_type(type);
  c->set_url(url);
  c->set_problem(problem);
}

void Job(TopologyReport* r, const std::string& name, const std::string& kind,
         const std::string& host, uint32_t port, bool socket,
         const std::string& database) {
  auto* j = r->add_dump_jobs();
  j->set_name(name);
  j->set_kind(kind);
  j->set_host(host);
  j->set_port(port);
  j->set_socket(socket);
  j->set_database(database);
}

TopologyReport Host(const std::string& slot) {
  TopologyReport r;
  r.set_slot(slot);
  r.set_host_name(slot + ".example.com");
  return r;
}

std::vector<std::string> States(const Coverage& c) {
  std::vector<std::string> out;
  for (const auto& row : c.rows) {
    out.push_back(row.connection().name() + "=" + row.state() +
                  (row.covered_by().empty() ? "" : ":" + row.covered_by()));
  }
  return out;
}

TEST(CoverageTest, DumpJobsDeclarationsAndLoopbackHosts) {
  TopologyReport gw1 = Host("gw1");
  TopologyReport gw2 = Host("gw2");
  // gw1 dumps its MariaDB through a socket, a PostgreSQL on a named host,
  // and its slapd with slapcat.
  Job(&gw1, "metrics", "mariadb", "", 0, true, "metrics");
  Job(&gw1, "oauth", "postgresql", "pg.example.com", 5433, false, "oauth");
  Job(&gw1, "ldap", "ldap", "", 0, true, "dc=example,dc=com");
  Connection(&gw1, "m-local", "DbConnection",
             "jdbc:mariadb://localhost:3310/metrics");
  Connection(&gw2, "m-remote", "DbConnection",
             "jdbc:mysql://GW1.example.com/metrics?x=1");
  // On gw2, localhost is gw2's own database: nothing dumps it.
  Connection(&gw2, "m-gw2", "DbConnection", "jdbc:mysql://127.0.0.1/metrics");
  Connection(&gw1, "oauth", "DbConnection",
             "jdbc:postgresql://pg.example.com:5433/oauth");
  Connection(&gw1, "oauth-port", "DbConnection",
             "jdbc:postgresql://pg.example.com/oauth");
  Connection(&gw1, "other-db", "DbConnection",
             "jdbc:mariadb://localhost/billing");
  Connection(&gw1, "corp", "LdapDirectory",
             "ldap://localhost:1389/ou=people,dc=example,dc=com");
  Connection(&gw1, "corp-root", "LdapDirectory", "ldap://localhost:1389");
  Connection(&gw1, "elsewhere", "LdapDirectory", "ldap://localhost/dc=other");
  Connection(&gw1, "ora", "DbConnection", "jdbc:oracle:thin:@ora-prod:1521/GW");
  Connection(&gw1, "by-name", "DbConnection", "",
             "${environment.X} is set in none of a.props");
  Connection(&gw1, "unresolved", "DbConnection", "",
             "${environment.Y} is set in none of a.props");
  Connection(&gw1, "mail", "SMTPServer", "smtp://mail:25");
  Connection(&gw1, "odd", "DbConnection", "not a url");
  ExternalDeclaration ora;
  ora.set_match("jdbc:oracle:thin:@ORA-PROD:1521/GW");
  ora.set_protected_by("Oracle Data Guard to ora-dr");
  ExternalDeclaration name;
  name.set_match("by-name");
  name.set_protected_by("the vendor's replication");
  Coverage c = ComputeCoverage({gw1, gw2}, {ora, name});
  EXPECT_THAT(
      States(c),
      ::testing::ElementsAre(
          "m-local=PROTECTED:gw1/metrics", "oauth=PROTECTED:gw1/oauth",
          "oauth-port=UNPROTECTED", "other-db=UNPROTECTED",
          "corp=PROTECTED:gw1/ldap", "corp-root=PROTECTED:gw1/ldap",
          "elsewhere=UNPROTECTED", "ora=DECLARED:Oracle Data Guard to ora-dr",
          "by-name=DECLARED:the vendor's replication", "unresolved=UNRESOLVED",
          "mail=STATELESS", "odd=UNRESOLVED", "m-remote=PROTECTED:gw1/metrics",
          "m-gw2=UNPROTECTED"));
  EXPECT_EQ(c.unprotected, 6u);
  // The URL that could not be read says why.
  EXPECT_THAT(c.rows[11].connection().problem(),
              ::testing::HasSubstr("no scheme://"));
  EXPECT_EQ(c.rows[0].slot(), "gw1");
  EXPECT_EQ(c.rows[13].slot(), "gw2");
}

TEST(CoverageTest,
     AnUnreadableStoreIsUnresolvedAndAServerDeclarationCoversAll) {
  TopologyReport gw1 = Host("gw1");
  Connection(&gw1, "(ExtConnsStore.xml)", "EntityStore", "",
             "ExtConnsStore.xml: line 1: an entity declaration");
  gw1.mutable_external_connections(0)->set_store_unreadable(true);
  Connection(&gw1, "reports", "DbConnection",
             "jdbc:sqlserver://sql1:1433;databaseName=reports");
  ExternalDeclaration server;
  server.set_match("jdbc:sqlserver://SQL1:1433");
  server.set_protected_by("an availability group");
  Coverage c = ComputeCoverage({gw1}, {server});
  EXPECT_THAT(States(c),
              ::testing::ElementsAre("(ExtConnsStore.xml)=UNRESOLVED",
                                     "reports=DECLARED:an availability group"));
  EXPECT_EQ(c.unprotected, 1u);
}

TEST(CoverageTest, NothingReportedIsNothingToJudge) {
  Coverage c = ComputeCoverage({Host("gw1")}, {});
  EXPECT_TRUE(c.rows.empty());
  EXPECT_EQ(c.unprotected, 0u);
}

}  // namespace
}  // namespace gwmirror
