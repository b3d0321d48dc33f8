#include "node/external_connections.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kNs[] = "http://www.vordel.com/2005/06/24/entityStore";

std::string Entity(
    const std::string& type,
    const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out = absl::StrCat("<entity xmlns=\"", kNs, "\" type=\"", type,
                                 "\" entityPK=\"1\" parentPK=\"0\">\n");
  for (const auto& [k, v] : fields) {
    absl::StrAppend(&out, "  <fval name=\"", k, "\"><value>", v,
                    "</value></fval>\n");
  }
  return out + "</entity>\n";
}

std::string Store(const std::string& entities) {
  return absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entityStoreData xmlns=\"",
      kNs,
      "\">\n<entityType name=\"DbConnection\"><field name=\"url\" "
      "type=\"string\"><defaultValue>jdbc:x</defaultValue></field>"
      "</entityType>\n",
      entities, "</entityStoreData>\n");
}

TEST(EntityStoreTest, ReadsEntitiesWithTheirFirstValues) {
  auto e = ParseEntityStore(Store(
      Entity("DbConnection", {{"name", "Metrics &amp; Stats"},
                              {"url", "<![CDATA[jdbc:mysql://h/db?a=1&b=2]]>"},
                              {"password", "c2VjcmV0"}}) +
      // Only the first <value> of a field counts; elements of other
      // namespaces are ignored.
      "<entity xmlns=\"" + kNs +
      "\" type=\"LdapDirectory\"><fval name=\"url\"><value>ldap://a</value>"
      "<value>ldap://b</value></fval><x:y xmlns:x=\"urn:other\">"
      "<x:value>no</x:value></x:y></entity>" +
      // An entity without the namespace reads the same.
      "<entity type=\"SMTPServer\"><fval name=\"host\"><value>mail</value>"
      "</fval></entity>"));
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0].type, "DbConnection");
  EXPECT_EQ((*e)[0].fields.at("name"), "Metrics & Stats");
  EXPECT_EQ((*e)[0].fields.at("url"), "jdbc:mysql://h/db?a=1&b=2");
  EXPECT_EQ((*e)[1].fields.at("url"), "ldap://a");
  EXPECT_EQ((*e)[1].fields.size(), 1u);
  EXPECT_EQ((*e)[2].fields.at("host"), "mail");
  // An empty store, and fields with no value.
  EXPECT_TRUE(ParseEntityStore(Store(""))->empty());
  auto bare = ParseEntityStore(
      Store("<entity type=\"DbConnection\"><fval name=\"url\"/></entity>"));
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(bare->at(0).fields.empty());
}

TEST(EntityStoreTest, HostileAndBrokenStoresAreRefusedNamingTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      // Billion laughs, and any entity declaration at all.
      {"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">"
       "<!ENTITY b \"&a;&a;&a;&a;\">]><entityStoreData>&b;</entityStoreData>",
       "entity declaration"},
      {"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY x SYSTEM "
       "\"file:///etc/shadow\">]><entityStoreData>&x;</entityStoreData>",
       "entity declaration"},
      {"<entityStoreData><entity type=\"A\">\n\n<fval></entity>",
       "line 3: mismatched tag"},
      {"", "line 1: no element found"},
      {"<entityStoreData>", "no element found"},
      {"<entityStoreData><entity type=\"A\"><entity type=\"B\"/></entity>"
       "</entityStoreData>",
       "an <entity> inside an <entity>"},
      {Store(Entity("DbConnection", {{"url", std::string(70000, 'x')}})),
       "a value of more than 65536 bytes in field \"url\""},
      {"<a>\x01</a>", "not well-formed"},
  };
  for (const auto& [xml, why] : cases) {
    auto e = ParseEntityStore(xml);
    ASSERT_FALSE(e.ok()) << xml.substr(0, 80);
    EXPECT_THAT(std::string(e.status().message()), HasSubstr(why))
        << xml.substr(0, 80);
  }
}

TEST(EntityStoreTest, AHugeStoreIsReadInSlices) {
  std::string many;
  for (int i = 0; i < 20000; ++i) {
    many += Entity("Policy", {{"name", absl::StrCat("p", i)},
                              {"body", std::string(100, 'b')}});
  }
  auto e = ParseEntityStore(Store(many));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->size(), 20000u);
  EXPECT_EQ(e->back().fields.at("name"), "p19999");
}

TEST(EnvSettingsTest, InstanceOverGroupOverInstallation) {
  EnvSettings env;
  env.Add("env.A=install\nenv.B=install\n# env.C=comment\n", "install.props");
  env.Add("env.B=group\n! env.D=comment\nnot.env=x\n", "group.props");
  env.Add("env.URL=jdbc\\:mysql\\://h/db\n  env.E : spaced  \n", "i.props");
  EXPECT_EQ(*env.Resolve("${environment.A}/${environment.B}"), "install/group");
  EXPECT_EQ(*env.Resolve("${environment.URL}"), "jdbc:mysql://h/db");
  EXPECT_EQ(*env.Resolve("${environment.E}"), "spaced");
  EXPECT_EQ(*env.Resolve("plain"), "plain");
  auto missing = env.Resolve("x${environment.C}");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "${environment.C} is set in none of install.props, group.props, "
            "i.props");
  EXPECT_THAT(std::string(env.Resolve("${environment.A").status().message()),
              HasSubstr("unclosed"));
}

class ReadConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gw_ = dir_ / "apigateway";
    auto* t = report_.mutable_topology();
    auto* g = t->add_groups();
    g->set_id("group-2");
    for (const char* i : {"instance-1", "instance-2", "instance-3"}) {
      auto* s = g->add_services();
      s->set_id(i);
      s->set_type("gateway");
    }
  }
  void Deploy(const std::string& instance, const std::string& archive) {
    (*report_.mutable_deployments())[instance] = archive;
  }
  std::string Conf(const std::string& archive) {
    return absl::StrCat(gw_, "/groups/group-2/conf/", archive);
  }

  testing::TempDir dir_;
  std::string gw_;
  gwmirror::v1::TopologyReport report_;
};

TEST_F(ReadConnectionsTest, ResolvesPerInstanceAndSharesRows) {
  testing::WriteFile(
      Conf("u1") + "/ExtConnsStore.xml",
      Store(Entity("DbConnection", {{"name", "Metrics"},
                                    {"url", "${environment.METRICS_DB_URL}"},
                                    {"username", "gw"},
                                    {"password", "c2VjcmV0"}}) +
            Entity("LdapDirectory",
                   {{"name", "Corp"}, {"url", "${environment.NOPE}"}}) +
            Entity("SMTPServer",
                   {{"name", "Mail"}, {"smtpServer", "mail"}, {"port", "25"}}) +
            // Neither state nor an address: not a connection.
            Entity("FilterCircuit", {{"name", "Policy"}})));
  testing::WriteFile(gw_ + "/conf/envSettings.props",
                     "env.METRICS_DB_URL=jdbc:mysql://u:pw@db:3306/m\n");
  testing::WriteFile(gw_ + "/groups/group-2/instance-3/conf/envSettings.props",
                     "env.METRICS_DB_URL=jdbc:mysql://other:3306/m\n");
  Deploy("instance-1", "u1");
  Deploy("instance-2", "u1");
  Deploy("instance-3", "u1");
  auto rows = ReadExternalConnections(gw_, report_);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].name(), "Metrics");
  EXPECT_EQ(rows[0].url(), "jdbc:mariadb://db:3306/m");  // Canonical.
  EXPECT_TRUE(rows[0].has_password());
  EXPECT_THAT(rows[0].instances(), ElementsAre("instance-1", "instance-2"));
  EXPECT_EQ(rows[1].name(), "Corp");
  EXPECT_EQ(rows[1].url(), "");
  EXPECT_THAT(rows[1].problem(), HasSubstr("${environment.NOPE} is set in"));
  EXPECT_FALSE(rows[1].has_password());
  EXPECT_EQ(rows[2].url(), "smtp://mail:25");
  EXPECT_EQ(rows[3].url(), "jdbc:mariadb://other:3306/m");
  EXPECT_THAT(rows[3].instances(), ElementsAre("instance-3"));
  for (const auto& r : rows) {
    EXPECT_EQ(r.group(), "group-2");
    EXPECT_EQ(r.archive(), "u1");
  }
}

// Rows are kept between heartbeats, and read again when any file they
// came from changes, appears or goes.
TEST_F(ReadConnectionsTest, RowsFollowEveryFileTheyCameFrom) {
  testing::WriteFile(
      Conf("u1") + "/ExtConnsStore.xml",
      Store(Entity("DbConnection",
                   {{"name", "Metrics"}, {"url", "${environment.DB}"}})));
  testing::WriteFile(gw_ + "/conf/envSettings.props",
                     "env.DB=jdbc:mysql://a:3306/m\n");
  Deploy("instance-1", "u1");
  auto url = [&] {
    auto rows = ReadExternalConnections(gw_, report_);
    return rows.size() == 1 ? rows[0].url()
                            : "rows: " + std::to_string(rows.size());
  };
  EXPECT_EQ(url(), "jdbc:mariadb://a:3306/m");
  EXPECT_EQ(url(), "jdbc:mariadb://a:3306/m");
  // The installation's file rewritten (same size, another value).
  testing::WriteFile(gw_ + "/conf/envSettings.props",
                     "env.DB=jdbc:mysql://b:3306/m\n");
  EXPECT_EQ(url(), "jdbc:mariadb://b:3306/m");
  // The instance's own file appears, then goes.
  const std::string mine =
      gw_ + "/groups/group-2/instance-1/conf/envSettings.props";
  testing::WriteFile(mine, "env.DB=jdbc:mysql://c:3306/m\n");
  EXPECT_EQ(url(), "jdbc:mariadb://c:3306/m");
  ASSERT_EQ(unlink(mine.c_str()), 0);
  EXPECT_EQ(url(), "jdbc:mariadb://b:3306/m");
  // The store changes.
  testing::WriteFile(
      Conf("u1") + "/ExtConnsStore.xml",
      Store(Entity("DbConnection",
                   {{"name", "Metrics"}, {"url", "jdbc:mysql://d:3306/m"}})));
  EXPECT_EQ(url(), "jdbc:mariadb://d:3306/m");
  // Files older than a clock tick are taken from the cache until their
  // identity moves: a same-size rewrite with another time is seen.
  auto age = [](const std::string& path, int seconds_ago) {
    const timespec t[2] = {{time(nullptr) - seconds_ago, 0},
                           {time(nullptr) - seconds_ago, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
  };
  const std::string install = gw_ + "/conf/envSettings.props";
  testing::WriteFile(
      Conf("u1") + "/ExtConnsStore.xml",
      Store(Entity("DbConnection",
                   {{"name", "Metrics"}, {"url", "${environment.DB}"}})));
  age(Conf("u1") + "/ExtConnsStore.xml", 60);
  age(install, 60);
  EXPECT_EQ(url(), "jdbc:mariadb://b:3306/m");
  EXPECT_EQ(url(), "jdbc:mariadb://b:3306/m");  // From the cache.
  testing::WriteFile(install, "env.DB=jdbc:mysql://e:3306/m\n");
  age(install, 30);
  EXPECT_EQ(url(), "jdbc:mariadb://e:3306/m");
}

// A FIFO or a device in place of a store is refused unread (never blocked
// on); a reference that expands without end is refused.
TEST_F(ReadConnectionsTest, NoStoreOrPropsFileCanBlockOrFloodTheReport) {
  std::filesystem::create_directories(Conf("fifo"));
  ASSERT_EQ(mkfifo((Conf("fifo") + "/ExtConnsStore.xml").c_str(), 0644), 0);
  Deploy("instance-1", "fifo");
  auto rows = ReadExternalConnections(gw_, report_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].store_unreadable());
  EXPECT_THAT(rows[0].problem(), HasSubstr("is not a regular file"));

  testing::WriteFile(
      Conf("u2") + "/ExtConnsStore.xml",
      Store(Entity("DbConnection",
                   {{"name", "Loop"},
                    {"url",
                     "${environment.A}${environment.A}${environment.A}"
                     "${environment.A}${environment.A}"}})));
  testing::WriteFile(gw_ + "/conf/envSettings.props",
                     "env.A=" + std::string(1000, 'a') + "\n");
  Deploy("instance-1", "u2");
  rows = ReadExternalConnections(gw_, report_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_THAT(rows[0].problem(), HasSubstr("resolves to more than 4096"));
}

TEST_F(ReadConnectionsTest, ABrokenStoreIsOneRowThatSaysSoAndOddIdsAreSkipped) {
  testing::WriteFile(Conf("bad") + "/ExtConnsStore.xml", "<entityStoreData>");
  Deploy("instance-1", "bad");
  Deploy("instance-2", "../../../etc");  // Never read outside its folder.
  Deploy("instance-3", "absent");        // No store: no connections.
  (*report_.mutable_deployments())["instance-9"] = "bad";  // Not in topology.
  auto rows = ReadExternalConnections(gw_, report_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].name(), "(ExtConnsStore.xml)");
  EXPECT_TRUE(rows[0].store_unreadable());
  EXPECT_THAT(rows[0].problem(), HasSubstr("ExtConnsStore.xml: line 1"));
  // A store rewritten in place is read again (the cache keys on identity).
  testing::WriteFile(
      Conf("bad") + "/ExtConnsStore.xml",
      Store(Entity("DbConnection",
                   {{"name", "Fixed"}, {"url", "jdbc:db2://h/x"}})));
  rows = ReadExternalConnections(gw_, report_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].name(), "Fixed");
}

}  // namespace
}  // namespace gwmirror
