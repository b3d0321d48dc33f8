// Databases beyond files, against real servers: `gwmirror sandbox up
// --databases` starts MariaDB, PostgreSQL and OpenLDAP's slapd per site
// (throwaway data directories, unix sockets or loopback); production's
// rows and entries must come out of the standby's own servers after a
// checkpoint and a restore; failing dumps must fail the cut, leave the
// standby alone and be retried; and no password may show in ps, logs,
// status or errors.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/sandbox_fixture.h"

namespace gwmirror {
namespace {

class DatabaseTest : public ClusterTest {
 protected:
  void SetUp() override {
    Up(1, /*follow=*/false, "small", /*databases=*/true);
  }

  // Rows and entries written on production's servers reach the standby's
  // after a checkpoint and a restore; a drill's restore goes to scratch.
  void RowsAndEntriesReachTheStandby();

  const gwmirror::v1::SandboxDatabase& Db(const std::string& kind,
                                          const std::string& site) {
    for (const auto& d : sb_.slots(0).databases()) {
      if (d.kind() == kind && d.site() == site) return d;
    }
    ADD_FAILURE() << "no " << kind << " server on " << site;
    return sb_.slots(0).databases(0);
  }

  // Runs SQL on a mariadb or postgresql server: its output.
  RunResult Sql(const gwmirror::v1::SandboxDatabase& db,
                const std::string& sql) {
    std::vector<std::string> argv(db.client().begin(), db.client().end());
    argv.push_back((db.kind() == "mariadb" ? "--execute=" : "--command=") +
                   sql);
    return testing::Run(argv);
  }

  RunResult Ldap(const std::string& tool,
                 const gwmirror::v1::SandboxDatabase& db,
                 std::vector<std::string> extra) {
    std::vector<std::string> argv = {"/usr/bin/" + tool};
    argv.insert(argv.end(), db.client().begin(), db.client().end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::Run(argv);
  }

  RunResult Restore(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {Bin("gwmirror-node"), "restore",
                                     "--config",
                                     sb_.slots(0).standby().config()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::Run(argv);
  }

  void StopServer(const gwmirror::v1::SandboxDatabase& db) {
    std::string pid = testing::ReadFile(db.pid_file());
    int p = std::stoi(pid);
    kill(p, db.kind() == "postgresql" ? SIGINT : SIGTERM);
    for (int i = 0; i < 500 && !Gone(p); ++i) usleep(10000);
    ASSERT_TRUE(Gone(p));
  }

  void StartServer(const gwmirror::v1::SandboxDatabase& db) {
    std::vector<std::string> argv(db.argv().begin(), db.argv().end());
    servers_.push_back(
        std::make_unique<Child>(argv, std::map<std::string, std::string>{},
                                Dir() + "/logs/restarted-server.log"));
    absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (Sql(db, "SELECT 1").exit_code != 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(Sql(db, "SELECT 1").exit_code, 0);
  }

  std::vector<std::unique_ptr<Child>> servers_;
};

// The same with the sites apart (`sandbox up --databases --wan`): each
// site's slapd in its site's namespace, the dumps across the link.
class DatabaseOverWanTest : public DatabaseTest {
 protected:
  void SetUp() override {
    Up(1, /*follow=*/false, "small", /*databases=*/true,
       {"--wan", "delay=20ms"});
  }
};

TEST_F(DatabaseTest, RowsAndEntriesReachTheStandbyServersAfterARestore) {
  RowsAndEntriesReachTheStandby();
}

TEST_F(DatabaseOverWanTest, RowsAndEntriesCrossTheLinkToo) {
  ASSERT_FALSE(sb_.wan().id().empty());
  RowsAndEntriesReachTheStandby();
}

void DatabaseTest::RowsAndEntriesReachTheStandby() {
  const auto& prod_maria = Db("mariadb", "production");
  const auto& prod_pg = Db("postgresql", "production");
  const auto& prod_ldap = Db("ldap", "production");
  ASSERT_EQ(Sql(prod_maria,
                "INSERT INTO metrics_data VALUES (1001, "
                "'written-on-production', 42)")
                .exit_code,
            0);
  ASSERT_EQ(Sql(prod_pg,
                "INSERT INTO versions VALUES (1001, "
                "'written-on-production', 42)")
                .exit_code,
            0);
  testing::WriteFile(tmp_ / "alice.ldif",
                     "dn: uid=alice,ou=people,dc=example,dc=com\n"
                     "objectClass: inetOrgPerson\nuid: alice\ncn: Alice\n"
                     "sn: Operator\n");
  RunResult add = Ldap("ldapadd", prod_ldap, {"-f", tmp_ / "alice.ldif"});
  ASSERT_EQ(add.exit_code, 0) << add.err;
  auto cp = Checkpoint();
  ASSERT_TRUE(cp.ok()) << cp.status();

  // The standby's servers know nothing of it until the restore.
  const auto& sb_maria = Db("mariadb", "standby");
  const auto& sb_pg = Db("postgresql", "standby");
  const auto& sb_ldap = Db("ldap", "standby");
  RunResult r = Restore();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "metrics-mariadb (mariadb) restored"))
      << r.out;
  r = Sql(sb_maria, "SELECT name FROM metrics_data WHERE id = 1001");
  EXPECT_TRUE(absl::StrContains(r.out, "written-on-production"))
      << r.out << r.err;
  r = Sql(sb_maria, "SELECT COUNT(*) FROM audit_log_points");
  EXPECT_TRUE(absl::StrContains(r.out, "20")) << r.out << r.err;
  r = Sql(sb_pg, "SELECT name FROM versions WHERE id = 1001");
  EXPECT_TRUE(absl::StrContains(r.out, "written-on-production"))
      << r.out << r.err;
  r = Ldap("ldapsearch", sb_ldap,
           {"-LLL", "-b", "dc=example,dc=com", "(uid=alice)", "cn"});
  EXPECT_TRUE(absl::StrContains(r.out, "cn: Alice")) << r.out << r.err;

  // A drill's restore goes into scratch databases and leaves the real ones.
  r = Restore({"--scratch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "restored into metrics_drill")) << r.out;
  r = Sql(sb_maria,
          "SELECT name FROM metrics_drill.metrics_data WHERE id = 1001");
  EXPECT_TRUE(absl::StrContains(r.out, "written-on-production")) << r.err;
  ASSERT_EQ(Restore({"--drop-scratch"}).exit_code, 0);
  r = Sql(sb_maria, "SHOW DATABASES");
  EXPECT_FALSE(absl::StrContains(r.out, "metrics_drill")) << r.out;
  r = Sql(sb_pg, "SELECT datname FROM pg_database");
  EXPECT_FALSE(absl::StrContains(r.out, "metrics_drill")) << r.out;
}

TEST_F(DatabaseTest, FailingDumpsFailTheCutKeepTheStandbyAndAreRetried) {
  const auto& maria = Db("mariadb", "production");
  const std::string dump = sb_.slots(0).standby().root() +
                           "/var/lib/gwmirror/dumps/metrics-mariadb.sql";
  const std::string before = testing::ReadFile(dump);
  ASSERT_FALSE(before.empty());
  const uint64_t applied = Status().slots(0).replica().applied_checkpoint();
  ASSERT_EQ(Sql(maria, "INSERT INTO metrics_data VALUES (2001, 'later', 1)")
                .exit_code,
            0);

  // Server down.
  StopServer(maria);
  auto cp = Checkpoint();
  ASSERT_FALSE(cp.ok());
  EXPECT_TRUE(absl::StrContains(
      cp.status().message(), "dump job \"metrics-mariadb\" (mariadb) failed"))
      << cp.status();
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.last_attempt().state(), gwmirror::v1::CHECKPOINT_STATE_ABORTED);
  EXPECT_TRUE(absl::StrContains(s.last_attempt().reason(), "metrics-mariadb"))
      << s.last_attempt().reason();
  EXPECT_EQ(s.slots(0).replica().applied_checkpoint(), applied);
  EXPECT_EQ(testing::ReadFile(dump), before);
  StartServer(maria);
  cp = Checkpoint();
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_TRUE(absl::StrContains(testing::ReadFile(dump), "'later'"));

  // Wrong credentials.
  std::string good = testing::ReadFile(maria.password_file());
  testing::WriteFile(maria.password_file(), "not-the-password\n", 0600);
  cp = Checkpoint();
  ASSERT_FALSE(cp.ok());
  EXPECT_TRUE(absl::StrContains(cp.status().message(), "Access denied"))
      << cp.status();
  testing::WriteFile(maria.password_file(), good, 0600);
  ASSERT_TRUE(Checkpoint().ok());

  // A job that overruns its timeout.
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  gwmirror::v1::NodeConfig nc;
  ASSERT_TRUE(
      ParseJson(testing::ReadFile(prod.config()), prod.config(), &nc).ok());
  auto* slow = nc.add_databases();
  slow->set_name("slow");
  slow->set_kind("command");
  slow->set_file("var/lib/gwmirror/dumps/slow.out");
  slow->add_dump_command("sleep");
  slow->add_dump_command("10");
  slow->set_timeout_ms(300);
  testing::WriteFile(prod.config(), ToJson(nc), 0600);
  Kill(prod);
  Restart(prod);
  WaitHealthy();
  cp = Checkpoint();
  ASSERT_FALSE(cp.ok());
  EXPECT_TRUE(absl::StrContains(
      cp.status().message(), "dump job \"slow\" (command) failed: timed out"))
      << cp.status();
  EXPECT_EQ(testing::ReadFile(dump),
            testing::ReadFile(sb_.slots(0).production().root() +
                              "/var/lib/gwmirror/dumps/metrics-mariadb.sql"));
}

// The ActiveMQ pattern: a pre-cut hook pauses the broker, the dumps run,
// the cut scans and pushes, and the post-cut hook resumes it; a failing
// pre-cut hook fails the cut before anything else ran.
TEST_F(DatabaseTest, CutHooksRunAroundDumpsAndScan) {
  const gwmirror::v1::SandboxProcess& prod = sb_.slots(0).production();
  const std::string trace = tmp_ / "hooks.trace";
  const std::string fail = tmp_ / "fail-pre";
  gwmirror::v1::NodeConfig nc;
  ASSERT_TRUE(
      ParseJson(testing::ReadFile(prod.config()), prod.config(), &nc).ok());
  auto step = [&](const std::string& what) {
    return std::vector<std::string>{
        "/bin/sh", "-c",
        absl::StrCat("echo ", what, " >> ", trace, "; test ! -e ", fail,
                     " || test ", what, " != pre")};
  };
  for (const auto& a : step("pre")) nc.mutable_source()->add_pre_cut_hook(a);
  for (const auto& a : step("post")) nc.mutable_source()->add_post_cut_hook(a);
  auto* job = nc.add_databases();
  job->set_name("broker-state");
  job->set_kind("command");
  job->set_file("var/lib/gwmirror/dumps/broker.txt");
  for (const auto& a : step("dump")) job->add_dump_command(a);
  testing::WriteFile(prod.config(), ToJson(nc), 0600);
  Kill(prod);
  Restart(prod);
  WaitHealthy();
  ASSERT_TRUE(Checkpoint().ok());
  EXPECT_EQ(testing::ReadFile(trace), "pre\ndump\npost\n");
  testing::WriteFile(fail, "");
  auto cp = Checkpoint();
  ASSERT_FALSE(cp.ok());
  EXPECT_TRUE(
      absl::StrContains(cp.status().message(), "pre-cut hook failed: exit 1"))
      << cp.status();
  EXPECT_EQ(testing::ReadFile(trace), "pre\ndump\npost\npre\n");
}

// A drill finds a standby file whose bytes no longer match the checkpoint
// (same size and mtime: only the digest tells), names it, records the
// failed drill, and leaves nothing behind.
TEST_F(DatabaseTest, DrillNamesAStandbyFileThatDoesNotVerify) {
  std::string f = Gw(Standby(1), "conf/envSettings.props");
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  std::string content = testing::ReadFile(f);
  content[0] ^= 1;
  testing::WriteFile(f, content, st.st_mode & 07777);
  struct timespec t[2] = {st.st_mtim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), t, 0), 0);
  RunResult r = Cli({"drill"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.err,
      "standby file opt/Axway-7.7/apigateway/conf/envSettings.props: "
      "does not hold the checkpoint's content (its SHA-256 differs)"))
      << r.err;
  gwmirror::v1::DrillList list;
  r = Cli({"drills", "--json"});
  ASSERT_TRUE(ParseJson(r.out, "drills", &list).ok()) << r.out;
  ASSERT_EQ(list.drills_size(), 1);
  EXPECT_FALSE(list.drills(0).ok());
  EXPECT_NE(
      access((sb_.slots(0).standby().root() + "-state/drill").c_str(), F_OK),
      0);
}

// Every /proc/*/cmdline, as text.
std::vector<std::string> CommandLines() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    // A process may exit while it is read (ESRCH): then it has no say.
    auto read = ReadFileToString(absl::StrCat("/proc/", e->d_name, "/cmdline"));
    if (!read.ok()) continue;
    std::string s = *std::move(read);
    absl::StrReplaceAll({{std::string(1, '\0'), " "}}, &s);
    out.push_back(s);
  }
  closedir(d);
  return out;
}

TEST_F(DatabaseTest, NoPasswordInPsLogsStatusOrErrors) {
  std::set<std::string> secrets;
  for (const auto& d : sb_.slots(0).databases()) {
    std::string p = testing::ReadFile(d.password_file());
    while (!p.empty() && p.back() == '\n') p.pop_back();
    ASSERT_GE(p.size(), 8u);
    secrets.insert(p);
  }
  const auto& maria = Db("mariadb", "production");
  // A wrong password is a secret too: it must not leak in the error.
  const std::string wrong = "wrong-pass-7f3a9c";
  secrets.insert(wrong);
  std::atomic<bool> stop{false};
  std::set<std::string> seen;
  std::mutex mu;
  size_t samples = 0;
  std::thread sampler([&] {
    while (!stop) {
      for (const std::string& line : CommandLines()) {
        for (const std::string& s : secrets) {
          if (absl::StrContains(line, s)) {
            std::lock_guard<std::mutex> l(mu);
            seen.insert(line);
          }
        }
      }
      ++samples;
      usleep(2000);
    }
  });
  // Joined however the test ends (an ASSERT returns early).
  auto join = absl::MakeCleanup([&] {
    stop = true;
    if (sampler.joinable()) sampler.join();
  });
  std::string errors;
  ASSERT_TRUE(Checkpoint().ok());
  RunResult r = Restore();
  errors += r.out + r.err;
  std::string good = testing::ReadFile(maria.password_file());
  testing::WriteFile(maria.password_file(), wrong + "\n", 0600);
  auto cp = Checkpoint();
  ASSERT_FALSE(cp.ok());
  errors += std::string(cp.status().message());
  testing::WriteFile(maria.password_file(), good, 0600);
  std::move(join).Invoke();
  EXPECT_GT(samples, 10u);
  EXPECT_TRUE(seen.empty()) << *seen.begin();
  RunResult st = Cli({"status", "--json"});
  std::string logs;
  for (const std::string& name :
       {"coordinator", "gw1-production", "gw1-standby"}) {
    logs += testing::ReadFile(Dir() + "/logs/" + name + ".log");
  }
  for (const std::string& s : secrets) {
    EXPECT_FALSE(absl::StrContains(st.out, s)) << "status shows a password";
    EXPECT_FALSE(absl::StrContains(logs, s)) << "a log shows a password";
    EXPECT_FALSE(absl::StrContains(errors, s)) << "an error shows a password";
  }
  // The credentials files live only while a tool runs.
  auto run_dir = ListDir(sb_.slots(0).production().config().substr(
                             0, sb_.slots(0).production().config().rfind('/')) +
                         "/production-state/run");
  if (run_dir.ok()) EXPECT_TRUE(run_dir->empty());
}

// External Connections coverage on the sandbox's own deployment: its
// MariaDB, PostgreSQL and slapd connections are protected by the dump jobs,
// its billing database on Oracle by nothing. A declaration taken on SIGHUP
// clears it without a restart (a malformed one is refused and changes
// nothing); a new deployment that adds a connection makes the cluster
// DEGRADED again within one checkpoint.
TEST_F(DatabaseTest, CoverageShowsWhatTheStandbyWouldLackUntilDeclared) {
  auto count = [](const gwmirror::v1::ClusterStatus& s,
                  const std::string& state) {
    return std::count_if(s.coverage().begin(), s.coverage().end(),
                         [&](const auto& r) { return r.state() == state; });
  };
  gwmirror::v1::ClusterStatus s = WaitFor(
      [](const auto& s) { return s.coverage_size() == 5; }, "coverage rows");
  EXPECT_EQ(count(s, "PROTECTED"), 3) << ToJson(s);
  EXPECT_EQ(count(s, "STATELESS"), 1);
  EXPECT_EQ(count(s, "UNPROTECTED"), 1);
  EXPECT_EQ(s.unprotected_connections(), 1u);
  EXPECT_EQ(s.state(), "DEGRADED");
  EXPECT_TRUE(absl::StrContains(s.state_reason(), "gw1 \"Billing DB\""))
      << s.state_reason();
  RunResult table = Cli({"coverage"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  std::printf("%s", table.out.c_str());
  EXPECT_TRUE(absl::StrContains(
      table.out,
      "UNPROTECTED DbConnection \"Billing DB\" "
      "jdbc:oracle:thin:@//billing-db.example.com:1521/BILLING [password "
      "set]"));
  EXPECT_TRUE(absl::StrContains(table.out, "<- gw1/metrics-mariadb"));
  EXPECT_TRUE(absl::StrContains(Cli({"status"}).out,
                                "external connections: 5, 1 UNPROTECTED"));
  // No password of the store, and no credential of a URL, in the output.
  EXPECT_FALSE(absl::StrContains(Cli({"coverage", "--json"}).out, "c2FtcGxl"));

  // A declaration, taken on SIGHUP.
  const std::string config = sb_.coordinator_process().config();
  const std::string original = testing::ReadFile(config);
  auto with = [&](const std::string& external) {
    std::string c = original;
    c.insert(c.rfind('}'), absl::StrCat(",\"external\": ", external, "\n"));
    testing::WriteFile(config, c, 0600);
    ASSERT_EQ(kill(sb_.coordinator_process().pid(), SIGHUP), 0);
  };
  with(R"([{"match": "jdbc:oracle:thin:@//BILLING-DB.example.com/BILLING",
            "protected_by": "Oracle Data Guard to billing-dr"}])");
  s = WaitFor([](const auto& s) { return s.unprotected_connections() == 0; },
              "the declaration to be taken");
  EXPECT_EQ(s.state(), "OK") << s.state_reason();
  EXPECT_EQ(count(s, "DECLARED"), 1);
  // A malformed declaration is refused, naming it; the last one stays.
  with(R"([{"match": "jdbc:oracle:thin:@billing-db:99999/X",
            "protected_by": "x"}])");
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Status().unprotected_connections(), 0u);
  EXPECT_TRUE(absl::StrContains(
      testing::ReadFile(Dir() + "/logs/coordinator.log"),
      "config not reloaded, the running one stays: " + config +
          ": coordinator config: external[0]: connection URL "
          "(jdbc:oracle:...) \"99999\" is not a port"));

  // A new deployment adds a connection to a reports database on
  // PostgreSQL that no job dumps: DEGRADED again once it is cut.
  DeployOptions deploy;
  deploy.host_root = Prod(1);
  deploy.group = "QuickStart Group";
  auto current = CurrentDeployment(deploy);
  ASSERT_TRUE(current.ok()) << current.status();
  Deployment next = *current;
  next.id = "11111111-2222-4333-a444-555555555555";
  std::string& store = next.files["ExtConnsStore.xml"];
  store.insert(store.rfind("</entityStoreData>"),
               "<entity type=\"DbConnection\"><fval name=\"name\"><value>"
               "Reports DB</value></fval><fval name=\"url\"><value>"
               "jdbc:postgresql://reports.example.com/reports</value></fval>"
               "</entity>\n");
  ASSERT_TRUE(Deploy(next, deploy).ok());
  const absl::Time cut = absl::Now();
  ASSERT_TRUE(Checkpoint().ok());
  s = WaitFor([](const auto& s) { return s.unprotected_connections() == 1; },
              "the new deployment's connection");
  std::printf(
      "a new deployment's unprotected connection showed %.1f s after "
      "the cut began\n",
      absl::ToDoubleSeconds(absl::Now() - cut));
  EXPECT_EQ(s.state(), "DEGRADED");
  EXPECT_TRUE(absl::StrContains(s.state_reason(), "gw1 \"Reports DB\""))
      << s.state_reason();
  EXPECT_EQ(count(s, "DECLARED"), 1);  // Billing, still declared.
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Drills on a following cluster with databases, while production keeps
// changing: every standby node restores the checkpoint into scratch areas
// (files verified, databases into scratch names, a smoke command), RTO and
// RPO are reported and recorded, the scratch areas are gone after, and
// replication went on meanwhile.
class DrillTest : public ClusterTest {
 protected:
  void SetUp() override { Up(2, /*follow=*/true, "small", /*databases=*/true); }
};

TEST_F(DrillTest, DrillDuringChangesReportsRtoAndRpoAndLeavesNothing) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int k = 0; !stop && k < 400; ++k) {
      testing::WriteFile(Gw(Prod(1), "conf/changing.props"),
                         absl::StrCat("env.K=", k, "\n"));
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  // The smoke command lasts until this test has seen its step in status
  // (and 2 s more, for the command's own progress line), at most 60 s: a
  // loaded machine's slow status calls cannot miss it.
  const std::string seen = Dir() + "/smoke-seen";
  RunResult r;
  std::atomic<bool> drilled{false};
  std::thread drill([&] {
    r = Cli({"drill", "--json", "--smoke",
             absl::StrCat("test -s \"$GWMIRROR_DRILL_ROOT/opt/Axway-7.7/"
                          "apigateway/conf/envSettings.props\" && "
                          "for i in $(seq 600); do test -e ",
                          seen, " && exit 0; sleep 0.1; done; exit 1")});
    drilled = true;
  });
  std::set<std::string> steps;
  int polls = 0;
  const absl::Time drill_limit = absl::Now() + absl::Minutes(2);
  while (!drilled && absl::Now() < drill_limit) {
    gwmirror::v1::ClusterStatus s = Status();
    ++polls;
    for (const auto& slot : s.slots()) {
      if (slot.has_drill()) steps.insert(slot.drill().step());
    }
    if (steps.count("smoke") && access(seen.c_str(), F_OK) != 0) {
      absl::SleepFor(absl::Seconds(2));
      testing::WriteFile(seen, "");
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  drill.join();
  gwmirror::v1::ClusterStatus during = Status();
  stop = true;
  writer.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(steps.count("smoke"))
      << polls << " status calls saw: " << absl::StrJoin(steps, ",");
  EXPECT_TRUE(absl::StrContains(r.err, "running the smoke command")) << r.err;
  // Over: no drill in status any more (the next heartbeat says so).
  WaitFor(
      [](const gwmirror::v1::ClusterStatus& s) {
        for (const auto& slot : s.slots()) {
          if (slot.has_drill()) return false;
        }
        return true;
      },
      "the drill gone from status");
  gwmirror::v1::DrillReport d;
  ASSERT_TRUE(ParseJson(r.out, "drill", &d).ok()) << r.out;
  EXPECT_TRUE(d.ok());
  EXPECT_GE(d.checkpoint(), 1u);
  EXPECT_GT(d.rto_ms(), 0);
  EXPECT_GE(d.rpo_ms(), 0);
  ASSERT_EQ(d.slots_size(), 2);
  EXPECT_EQ(d.slots(0).restored_size(), 3) << r.out;
  EXPECT_GT(d.slots(1).entries(), 100u);
  std::printf("drill: RTO %lld ms, RPO %lld ms, checkpoint %llu\n",
              static_cast<long long>(d.rto_ms()),
              static_cast<long long>(d.rpo_ms()),
              static_cast<unsigned long long>(d.checkpoint()));
  // Replication kept going: the changes kept arriving.
  EXPECT_LT(during.slots(0).lag_ms(), 10'000);
  std::string diff = "not compared";
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!diff.empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(200));
    diff = testing::Diff(Tree(Prod(1)), Tree(Standby(1)));
  }
  EXPECT_EQ(diff, "");
  // Nothing left: no scratch root, no scratch database.
  for (int i = 1; i <= 2; ++i) {
    EXPECT_NE(access((Standby(i) + "-state/drill").c_str(), F_OK), 0);
  }
  for (const auto& db : sb_.slots(0).databases()) {
    if (db.site() != "standby" || db.kind() == "ldap") continue;
    std::vector<std::string> argv(db.client().begin(), db.client().end());
    argv.push_back(db.kind() == "mariadb"
                       ? "--execute=SHOW DATABASES"
                       : "--command=SELECT datname FROM pg_database");
    RunResult q = testing::Run(argv);
    EXPECT_EQ(q.exit_code, 0) << q.err;
    EXPECT_FALSE(absl::StrContains(q.out, "metrics_drill")) << db.kind();
  }
  gwmirror::v1::DrillList list;
  r = Cli({"drills", "--json"});
  ASSERT_TRUE(ParseJson(r.out, "drills", &list).ok()) << r.out;
  ASSERT_EQ(list.drills_size(), 1);
  EXPECT_EQ(list.drills(0).id(), d.id());
  EXPECT_EQ(list.drills(0).rto_ms(), d.rto_ms());
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Promote on a two-slot sandbox with databases: the standby site becomes
// active in one command, with its trees at the checkpoint, the dumps
// restored, Node Managers started before instances, the epoch raised; the
// old production nodes, restarted, are replicas that cannot write to the
// new active site and receive its changes.
class PromoteTest : public ClusterTest {
 protected:
  void SetUp() override {
    Up(2, /*follow=*/false, "small", /*databases=*/true);
  }
};

TEST_F(PromoteTest, StandbyBecomesActiveAndTheOldSiteItsReplica) {
  const gwmirror::v1::SandboxDatabase* maria = nullptr;
  const gwmirror::v1::SandboxDatabase* sb_maria = nullptr;
  for (const auto& d : sb_.slots(0).databases()) {
    if (d.kind() == "mariadb") {
      (d.site() == "production" ? maria : sb_maria) = &d;
    }
  }
  ASSERT_TRUE(maria != nullptr && sb_maria != nullptr);
  std::vector<std::string> sql(maria->client().begin(), maria->client().end());
  sql.push_back("--execute=INSERT INTO versions VALUES (501, 'promoted', 1)");
  ASSERT_EQ(testing::Run(sql).exit_code, 0);
  testing::WriteFile(Gw(Prod(2), "conf/before-promote.props"), "env.A=1\n");
  auto cp = Checkpoint();
  ASSERT_TRUE(cp.ok()) << cp.status();
  // gw1's standby host gets its own value in envSettings.props at promote.
  const gwmirror::v1::SandboxProcess& sb1 = sb_.slots(0).standby();
  {
    gwmirror::v1::NodeConfig nc;
    ASSERT_TRUE(
        ParseJson(testing::ReadFile(sb1.config()), sb1.config(), &nc).ok());
    auto* o = nc.mutable_promote()->add_overrides();
    o->set_file(absl::StrCat(kPrefix, "/apigateway/conf/envSettings.props"));
    (*o->mutable_values())["env.SITE"] = "standby";
    testing::WriteFile(sb1.config(), ToJson(nc), 0600);
    Kill(sb1);
    Restart(sb1);
    WaitHealthy();
  }
  RunResult dry = Cli({"promote", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_TRUE(absl::StrContains(dry.out, "dry run, nothing changed"))
      << dry.out;
  EXPECT_EQ(Status().epoch(), 1u);
  EXPECT_EQ(Cli({"promote"}).exit_code, 2);  // Not a terminal, no --yes.

  RunResult r = Cli({"promote", "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gwmirror::v1::PromoteReport p;
  ASSERT_TRUE(ParseJson(r.out, "promote", &p).ok()) << r.out;
  EXPECT_EQ(p.epoch(), 2u);
  EXPECT_EQ(p.active_site(), "standby");
  EXPECT_EQ(p.fenced_site(), "production");
  EXPECT_EQ(p.checkpoint(), *cp);
  EXPECT_GT(p.rto_ms(), 0);
  std::vector<std::string> names;
  for (const auto& s : p.steps()) names.push_back(s.name());
  EXPECT_EQ(absl::StrJoin(names, ","),
            "check standby trees,raise epoch,restore databases,"
            "apply site overrides,start node managers,start instances");
  // The standby trees are the checkpoint (production's at the cut), but for
  // gw1's site override.
  EXPECT_EQ(testing::Diff(Tree(Prod(2)), Tree(Standby(2))), "");
  std::string env = testing::ReadFile(Gw(Standby(1), "conf/envSettings.props"));
  EXPECT_TRUE(absl::EndsWith(env, "\nenv.SITE=standby\n")) << env;
  EXPECT_EQ(env, testing::ReadFile(Gw(Prod(1), "conf/envSettings.props")) +
                     "env.SITE=standby\n");
  // Node Managers on every host before any instance.
  std::string last_nm, first_instance = "~";
  for (int i = 1; i <= 2; ++i) {
    for (absl::string_view line :
         absl::StrSplit(testing::ReadFile(Standby(i) + "/var/log/vshell.log"),
                        '\n', absl::SkipEmpty())) {
      std::string stamp(line.substr(0, line.find(' ')));
      if (absl::StrContains(line, "start node-manager")) {
        last_nm = std::max(last_nm, stamp);
      } else if (absl::StrContains(line, "start instance")) {
        first_instance = std::min(first_instance, stamp);
      }
    }
  }
  EXPECT_FALSE(last_nm.empty());
  EXPECT_LT(last_nm, first_instance);
  // The standby's own server holds production's rows.
  std::vector<std::string> q(sb_maria->client().begin(),
                             sb_maria->client().end());
  q.push_back("--execute=SELECT name FROM versions WHERE id = 501");
  EXPECT_TRUE(absl::StrContains(testing::Run(q).out, "promoted"));

  // The old production nodes come back (restarted): replicas now.
  for (int i = 0; i < 2; ++i) {
    Kill(sb_.slots(i).production());
    Restart(sb_.slots(i).production());
  }
  WaitHealthy();
  gwmirror::v1::ClusterStatus s = Status();
  EXPECT_EQ(s.epoch(), 2u);
  EXPECT_EQ(s.active_site(), "standby");
  EXPECT_EQ(s.fenced_site(), "production");
  EXPECT_EQ(s.slots(0).source().identity(), "gw1-standby");
  EXPECT_EQ(s.slots(0).replica().identity(), "gw1-production");
  // A fenced node cannot push to the new active site, under either epoch.
  gwmirror::v1::NodeConfig nc;
  const std::string prod_config = sb_.slots(0).production().config();
  ASSERT_TRUE(ParseJson(testing::ReadFile(prod_config), prod_config, &nc).ok());
  nc.mutable_source()->set_replica_address(sb_.slots(0).standby().address());
  nc.mutable_source()->set_replica_identity("gw1-standby");
  // Its own state directory: the running node holds the config's.
  nc.set_state_dir(tmp_ / "fenced-state");
  testing::WriteFile(tmp_ / "fenced.json", ToJson(nc), 0600);
  for (const char* epoch : {"1", "2"}) {
    RunResult push = testing::Run({Bin("gwmirror-node"), "push", "--config",
                                   tmp_ / "fenced.json", "--checkpoint", "99",
                                   "--epoch", epoch, "--commit"});
    EXPECT_NE(push.exit_code, 0) << epoch;
    EXPECT_TRUE(absl::StrContains(push.err, "stale epoch") ||
                absl::StrContains(push.err, "takes pushes only as a replica"))
        << push.err;
  }
  // The new active site's file is as the promote left it.
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), "conf/envSettings.props")), env);
  // Changes on the new active site reach the old one.
  testing::WriteFile(Gw(Standby(1), "conf/after-promote.props"), "env.B=2\n");
  cp = Checkpoint();
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(testing::ReadFile(Gw(Prod(1), "conf/after-promote.props")),
            "env.B=2\n");
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(testing::Diff(Tree(Standby(i)), Tree(Prod(i))), "") << i;
  }
}

}  // namespace
}  // namespace gwmirror
