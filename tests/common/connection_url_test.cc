#include "common/connection_url.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Case {
  std::string url, kind;
  std::vector<std::string> hosts;
  uint32_t port;
  std::string database;
};

TEST(ConnectionUrlTest, EveryShapeReadsAsKindHostPortAndDatabase) {
  const Case cases[] = {
      {"jdbc:mysql://h:3306/db?x=1", "mariadb", {"h"}, 3306, "db"},
      {"jdbc:mysql://DB.Example.com/metrics",
       "mariadb",
       {"db.example.com"},
       3306,
       "metrics"},
      {"jdbc:mariadb://h:3307/db;x=1", "mariadb", {"h"}, 3307, "db"},
      {"jdbc:mysql:loadbalance://h1:3306,h2:3306/db",
       "mariadb",
       {"h1", "h2"},
       3306,
       "db"},
      {"jdbc:mysql://user:pw@[::1]:3310/db", "mariadb", {"::1"}, 3310, "db"},
      {"jdbc:mysql://h", "mariadb", {"h"}, 3306, ""},
      {"jdbc:postgresql://h:5433/db?ssl=true", "postgresql", {"h"}, 5433, "db"},
      {"jdbc:postgresql://h1,h2:5433/db",
       "postgresql",
       {"h1", "h2"},
       5433,
       "db"},
      {"jdbc:postgresql:db", "postgresql", {"localhost"}, 5432, "db"},
      {"jdbc:oracle:thin:@h:1521/svc", "oracle", {"h"}, 1521, "svc"},
      {"jdbc:oracle:thin:@h:1522:ORCL", "oracle", {"h"}, 1522, "ORCL"},
      {"jdbc:oracle:thin:@//h/svc", "oracle", {"h"}, 1521, "svc"},
      {"jdbc:oracle:thin:scott/tiger@h:1521/svc", "oracle", {"h"}, 1521, "svc"},
      {"jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS_LIST=(ADDRESS=(PROTOCOL=TCP)"
       "(HOST=ora1)(PORT=1525))(ADDRESS=(PROTOCOL=TCP)(HOST=ora2)(PORT=1525)))"
       "(CONNECT_DATA=(SERVICE_NAME=GW)))",
       "oracle",
       {"ora1", "ora2"},
       1525,
       "GW"},
      {"jdbc:sqlserver://h\\SQLEXPRESS:1434;databaseName=gw;encrypt=true",
       "sqlserver",
       {"h"},
       1434,
       "gw"},
      {"jdbc:db2://h:50001/GWDB", "db2", {"h"}, 50001, "GWDB"},
      {"ldap://ldap.example.com:389/dc=Example, DC=com",
       "ldap",
       {"ldap.example.com"},
       389,
       "dc=example,dc=com"},
      {"ldaps://ldap.example.com", "ldap", {"ldap.example.com"}, 636, ""},
      {"ldap://h1:389 ldap://h2:389", "ldap", {"h1", "h2"}, 389, ""},
      {"ldap://h/dc%3Dexample%2Cdc%3Dcom",
       "ldap",
       {"h"},
       389,
       "dc=example,dc=com"},
      {"tcp://mq.example.com:61616", "tcp", {"mq.example.com"}, 61616, ""},
  };
  for (const Case& c : cases) {
    auto e = ParseConnectionUrl(c.url);
    ASSERT_TRUE(e.ok()) << c.url << ": " << e.status();
    EXPECT_EQ(e->kind, c.kind) << c.url;
    EXPECT_EQ(e->hosts, c.hosts) << c.url;
    EXPECT_EQ(e->port, c.port) << c.url;
    EXPECT_EQ(e->database, c.database) << c.url;
  }
}

TEST(ConnectionUrlTest, WhatIsNoUrlIsRefusedNamingTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty"},
      {"jdbc:", "no JDBC driver"},
      {"jdbc:mysql:", "no \"//\" host part"},
      {"jdbc:mysql:///db", "no host"},
      {"jdbc:mysql://h:99999/db", "\"99999\" is not a port"},
      {"jdbc:mysql://h:x/db", "\"x\" is not a port"},
      {"jdbc:mysql://[::1/db", "unclosed"},
      {"jdbc:oracle:thin:h:1521/svc", "no '@'"},
      {"jdbc:oracle:thin:@(DESCRIPTION=(PORT=1))", "no HOST="},
      {"db.example.com:3306", "no scheme://"},
      {"ldap://h1 tcp://h2", "different kinds"},
      {"ldap://h\x01x", "control character"},
      {"jdbc:mysql://" + std::string(5000, 'h'), "at most 4096"},
      {"jdbc:mysql://ho st/db", "not a host name"},
      {"jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(HOST=a,b)(PORT=1)))",
       "not a host name"},
  };
  for (const auto& [url, why] : cases) {
    auto e = ParseConnectionUrl(url);
    ASSERT_FALSE(e.ok()) << url;
    EXPECT_THAT(e.status().message(), HasSubstr(why)) << url;
  }
}

TEST(ConnectionUrlTest, TheCanonicalFormReadsBackAndHoldsNoCredential) {
  const std::pair<std::string, std::string> cases[] = {
      {"jdbc:mysql://gw:s3cret@h:3306/db?password=s3cret&x=1",
       "jdbc:mariadb://h:3306/db"},
      {"jdbc:mysql:loadbalance://h1,h2:3307/db",
       "jdbc:mariadb://h1:3307,h2:3307/db"},
      {"jdbc:mysql://u:s3cret@[::1]/db", "jdbc:mariadb://[::1]:3306/db"},
      {"jdbc:oracle:thin:scott/p@ss@//h:1521/svc",
       "jdbc:oracle:thin:@//h:1521/svc"},
      {"jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(HOST=A)(PORT=1))(ADDRESS=("
       "HOST=b)(PORT=1))(CONNECT_DATA=(SERVICE_NAME=GW)))",
       "jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(HOST=a)(PORT=1))(ADDRESS=("
       "HOST=b)(PORT=1))(CONNECT_DATA=(SERVICE_NAME=GW)))"},
      {"jdbc:sqlserver://h;user=sa;password={s3;cret};databaseName=gw",
       "jdbc:sqlserver://h:1433;databaseName=gw"},
      {"jdbc:db2://db:50000/SAMPLE:password=s3cret;user=app;",
       "jdbc:db2://db:50000/SAMPLE"},
      {"jdbc:postgresql://h/db?pwd=s3cret", "jdbc:postgresql://h:5432/db"},
      {"ldap://cn=admin:s3cret@h/dc=X, dc=com ldaps://h2:636",
       "ldap://h:389/dc=x,dc=com ldap://h2:389"},
      {"smtp://mail", "smtp://mail"},
      {"jdbc:h2://h:9092/db", "jdbc:h2://h:9092/db"},
  };
  for (const auto& [url, canonical] : cases) {
    auto e = ParseConnectionUrl(url);
    ASSERT_TRUE(e.ok()) << url << ": " << e.status();
    EXPECT_EQ(CanonicalUrl(*e), canonical) << url;
    auto back = ParseConnectionUrl(CanonicalUrl(*e));
    ASSERT_TRUE(back.ok()) << canonical << ": " << back.status();
    EXPECT_EQ(back->kind, e->kind);
    EXPECT_EQ(back->hosts, e->hosts) << canonical;
    EXPECT_EQ(back->database, e->database) << canonical;
  }
  // An error names the URL's scheme, never the rest.
  for (const char* bad : {"jdbc:mysql://u:s3cret@h:x/db",
                          "jdbc:mysql://(host=db1,password=s3cret)/x",
                          "ldap://u:s3cret@ho st/"}) {
    auto e = ParseConnectionUrl(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_THAT(std::string(e.status().message()),
                ::testing::Not(HasSubstr("s3cret")))
        << e.status();
  }
  EXPECT_THAT(
      std::string(ParseConnectionUrl("jdbc:mysql://h:x/db").status().message()),
      HasSubstr("connection URL (jdbc:mysql:...) \"x\" is not a port"));
}

TEST(ConnectionUrlTest, LoopbackAndDns) {
  for (const char* h : {"localhost", "127.0.0.1", "127.1.2.3", "::1"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  EXPECT_FALSE(IsLoopbackHost("db.example.com"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_EQ(NormaliseDn(" OU=People , dc=Example,DC=com"),
            "ou=people,dc=example,dc=com");
  EXPECT_THAT(ParseConnectionUrl("ldap://H")->hosts, ElementsAre("h"));
}

}  // namespace
}  // namespace gwmirror
