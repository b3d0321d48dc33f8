#include "cli/sandbox_databases.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/sandbox_wan.h"
#include "common/fd.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

using gwmirror::v1::DatabaseJob;
using gwmirror::v1::SandboxDatabase;

constexpr char kSuffix[] = "dc=example,dc=com";
constexpr char kAdmin[] = "cn=admin,dc=example,dc=com";

// The gateway's metrics schema (GATEWAY-LAYOUT.md), portable SQL.
constexpr const char* kTables[] = {"process_groups",
                                   "processes",
                                   "metric_types",
                                   "metric_groups",
                                   "metric_group_types",
                                   "metrics_data",
                                   "metrics_alerts",
                                   "audit_log_points",
                                   "audit_log_sign",
                                   "audit_message_payload",
                                   "transaction_data",
                                   "time_window_types",
                                   "versions"};

std::string SeedSql() {
  std::string sql;
  for (const char* t : kTables) {
    absl::StrAppend(&sql, "CREATE TABLE ", t,
                    " (id INTEGER PRIMARY KEY, name VARCHAR(100), value "
                    "BIGINT);\n");
    for (int i = 1; i <= 20; ++i) {
      absl::StrAppend(&sql, "INSERT INTO ", t, " VALUES (", i, ", '", t, "-", i,
                      "', ", i * 1000, ");\n");
    }
  }
  return sql;
}

// An absolute path for `name`: PATH, then the sbin and PostgreSQL dirs.
absl::StatusOr<std::string> Which(const std::string& name) {
  std::vector<std::string> dirs =
      absl::StrSplit(getenv("PATH") ? getenv("PATH") : "", ':');
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/local/sbin"}) {
    dirs.push_back(d);
  }
  auto pg = ListDir("/usr/lib/postgresql");
  if (pg.ok()) {
    for (auto it = pg->rbegin(); it != pg->rend(); ++it) {
      dirs.push_back(absl::StrCat("/usr/lib/postgresql/", *it, "/bin"));
    }
  }
  for (const std::string& d : dirs) {
    std::string p = absl::StrCat(d, "/", name);
    if (!d.empty() && access(p.c_str(), X_OK) == 0) return p;
  }
  return absl::FailedPreconditionError(
      absl::StrCat(name,
                   " is not installed (scripts/setup.sh installs the database "
                   "servers)"));
}

// Runs a server tool (60 s at most); INTERNAL naming `what` unless it
// exits 0.
absl::Status MustRun(ProcessSpec spec, const std::string& what) {
  spec.timeout = absl::Seconds(60);
  ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec));
  if (r.exit_code == 0 && !r.timed_out) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed: ", Describe(r)));
}

// Retries `spec` until it succeeds (a server coming up), 30 s at most.
absl::Status WaitFor(const ProcessSpec& spec, const std::string& what) {
  absl::Time give_up = absl::Now() + absl::Seconds(30);
  absl::Status st;
  while (absl::Now() < give_up) {
    st = MustRun(spec, what);
    if (st.ok()) return st;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return st;
}

std::string RandomPassword() {
  std::string seed = absl::StrCat(absl::ToUnixNanos(absl::Now()), getpid());
  return HexOf(DigestBytes(Sha256Of(seed))).substr(0, 20);
}

// Runs and is not a zombie nobody reaped yet.
bool Alive(int pid) {
  auto stat = ReadFileToString(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return false;
  size_t close = stat->rfind(')');
  return close != std::string::npos && stat->substr(close + 2, 1) != "Z";
}

// Records a started SQL server of `db.kind()` and the job that dumps (or
// restores) its metrics database through `socket`.
void RecordSqlServer(const SandboxDatabase& db, const std::string& socket,
                     SiteDatabases* out,
                     std::vector<SandboxDatabase>* started) {
  DatabaseJob job;
  job.set_name("metrics-" + db.kind());
  job.set_kind(db.kind());
  job.set_file(absl::StrCat(kDumpRoot, "/metrics-", db.kind(), ".sql"));
  job.set_socket(socket);
  job.set_user("gwmirror");
  job.set_database("metrics");
  job.set_password_file(db.password_file());
  job.set_timeout_ms(60'000);
  out->jobs.push_back(job);
  started->back() = db;
  out->servers.push_back(db);
}

absl::Status StartMariaDb(const std::string& dir, const std::string& site,
                          bool seed, SiteDatabases* out,
                          std::vector<SandboxDatabase>* started) {
  // Its own temporary directory: two sandboxes' servers bootstrapping at
  // once in a shared /tmp have been seen to trip over each other's
  // temporary tables ("Could not remove temporary table").
  RETURN_IF_ERROR(MakeDirs(dir + "/tmp", 0700));
  ASSIGN_OR_RETURN(std::string install, Which("mariadb-install-db"));
  ASSIGN_OR_RETURN(std::string server, Which("mariadbd"));
  ASSIGN_OR_RETURN(std::string client, Which("mariadb"));
  ProcessSpec init;
  init.argv = {install,
               "--no-defaults",
               "--datadir=" + dir + "/data",
               "--user=root",
               "--auth-root-authentication-method=normal",
               "--skip-test-db",
               "--tmpdir=" + dir + "/tmp"};
  RETURN_IF_ERROR(MustRun(init, "mariadb-install-db"));
  SandboxDatabase db;
  db.set_kind("mariadb");
  db.set_site(site);
  db.set_dir(dir);
  db.set_pid_file(dir + "/mariadbd.pid");
  for (const std::string& a :
       {server, std::string("--no-defaults"), "--datadir=" + dir + "/data",
        "--socket=" + dir + "/sock", std::string("--skip-networking"),
        std::string("--user=root"), "--pid-file=" + db.pid_file(),
        "--log-error=" + dir + "/error.log", "--tmpdir=" + dir + "/tmp"}) {
    db.add_argv(a);
  }
  RETURN_IF_ERROR(
      SpawnDetached({db.argv().begin(), db.argv().end()}, dir + "/server.log")
          .status());
  started->push_back(db);
  std::string password = RandomPassword();
  db.set_password_file(dir + "/password");
  RETURN_IF_ERROR(WriteFileAtomic(db.password_file(), password + "\n", 0600));
  ProcessSpec root;
  root.argv = {client, "--no-defaults", "--socket=" + dir + "/sock",
               "--user=root", "--execute=SELECT 1"};
  RETURN_IF_ERROR(WaitFor(root, "mariadb start"));
  // The account exists before its password reaches any command line: the
  // statements go in on stdin from a 0600 file.
  std::string setup = absl::StrCat(
      "CREATE DATABASE metrics;\n"
      "CREATE USER 'gwmirror'@'localhost' IDENTIFIED BY '",
      password,
      "';\n"
      "GRANT ALL ON *.* TO 'gwmirror'@'localhost';\n");
  if (seed) absl::StrAppend(&setup, "USE metrics;\n", SeedSql());
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/setup.sql", setup, 0600));
  ProcessSpec run = root;
  run.argv.pop_back();
  run.stdin_path = dir + "/setup.sql";
  absl::Status st = MustRun(run, "mariadb setup");
  unlink((dir + "/setup.sql").c_str());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/client.cnf",
                      absl::StrCat("[client]\nuser=gwmirror\npassword=\"",
                                   password, "\"\nsocket=", dir, "/sock\n"),
                      0600));
  for (const std::string& a :
       {client, "--defaults-extra-file=" + dir + "/client.cnf",
        std::string("metrics")}) {
    db.add_client(a);
  }
  RecordSqlServer(db, dir + "/sock", out, started);
  return absl::OkStatus();
}

absl::Status StartPostgres(const std::string& dir, const std::string& site,
                           bool seed, SiteDatabases* out,
                           std::vector<SandboxDatabase>* started) {
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  ASSIGN_OR_RETURN(std::string initdb, Which("initdb"));
  ASSIGN_OR_RETURN(std::string server, Which("postgres"));
  ASSIGN_OR_RETURN(std::string runuser, Which("runuser"));
  ASSIGN_OR_RETURN(std::string psql, Which("psql"));
  struct passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return absl::FailedPreconditionError(
        "no \"postgres\" user: install postgresql (scripts/setup.sh)");
  }
  // The server runs as "postgres", which must reach its directory: not
  // under the sandbox's 0700 tree.
  char tmpl[] = "/var/tmp/gwmirror-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return ErrnoStatus(errno, "mkdtemp");
  std::string data_dir = tmpl;
  SandboxDatabase db;
  db.set_kind("postgresql");
  db.set_site(site);
  db.set_dir(data_dir);
  db.set_pid_file(data_dir + "/data/postmaster.pid");
  started->push_back(db);
  if (chown(data_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return ErrnoStatus(errno, "chown " + data_dir);
  }
  std::string password = RandomPassword();
  std::string initpw = data_dir + "/initpw";
  RETURN_IF_ERROR(WriteFileAtomic(initpw, password + "\n", 0600));
  if (chown(initpw.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return ErrnoStatus(errno, "chown " + initpw);
  }
  ProcessSpec init;
  init.argv = {runuser,
               "-u",
               "postgres",
               "--",
               initdb,
               "-D",
               data_dir + "/data",
               "-U",
               "gwmirror",
               "--auth=scram-sha-256",
               "--pwfile=" + initpw};
  absl::Status st = MustRun(init, "initdb");
  unlink(initpw.c_str());
  RETURN_IF_ERROR(st);
  for (const std::string& a :
       {runuser, std::string("-u"), std::string("postgres"), std::string("--"),
        server, std::string("-D"), data_dir + "/data", std::string("-k"),
        data_dir, std::string("-c"), std::string("listen_addresses=")}) {
    db.add_argv(a);
  }
  RETURN_IF_ERROR(
      SpawnDetached({db.argv().begin(), db.argv().end()}, dir + "/server.log")
          .status());
  db.set_password_file(dir + "/password");
  RETURN_IF_ERROR(WriteFileAtomic(db.password_file(), password + "\n", 0600));
  RETURN_IF_ERROR(WriteFileAtomic(
      dir + "/pgpass", absl::StrCat("*:*:*:*:", password, "\n"), 0600));
  ProcessSpec ready;
  ready.argv = {psql,
                "--host=" + data_dir,
                "--username=gwmirror",
                "--dbname=postgres",
                "--no-password",
                "--quiet",
                "--command=SELECT 1"};
  ready.env = {{"PGPASSFILE", dir + "/pgpass"}};
  RETURN_IF_ERROR(WaitFor(ready, "postgresql start"));
  ProcessSpec create = ready;
  create.argv.back() = "--command=CREATE DATABASE metrics";
  RETURN_IF_ERROR(MustRun(create, "create database"));
  if (seed) {
    RETURN_IF_ERROR(WriteFileAtomic(dir + "/seed.sql", SeedSql(), 0600));
    ProcessSpec load = ready;
    load.argv = {psql,
                 "--host=" + data_dir,
                 "--username=gwmirror",
                 "--dbname=metrics",
                 "--no-password",
                 "--quiet",
                 "--set=ON_ERROR_STOP=1"};
    load.stdin_path = dir + "/seed.sql";
    RETURN_IF_ERROR(MustRun(load, "seed postgresql"));
  }
  for (const std::string& a :
       {std::string("/usr/bin/env"), "PGPASSFILE=" + dir + "/pgpass", psql,
        "--host=" + data_dir, std::string("--username=gwmirror"),
        std::string("--dbname=metrics"), std::string("--no-password")}) {
    db.add_client(a);
  }
  RecordSqlServer(db, data_dir, out, started);
  return absl::OkStatus();
}

absl::Status StartSlapd(const std::string& dir, const std::string& site,
                        bool seed, const SiteNetwork& net, SiteDatabases* out,
                        std::vector<SandboxDatabase>* started) {
  RETURN_IF_ERROR(MakeDirs(dir + "/slapd.d", 0700));
  RETURN_IF_ERROR(MakeDirs(dir + "/db", 0700));
  ASSIGN_OR_RETURN(std::string slapd, Which("slapd"));
  ASSIGN_OR_RETURN(std::string slapadd, Which("slapadd"));
  ASSIGN_OR_RETURN(std::string ldapadd, Which("ldapadd"));
  ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
  std::string url = absl::StrCat("ldap://", net.host, ":", port, "/");
  std::string password = RandomPassword();
  std::string config = absl::StrCat(
      "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: ", dir,
      "/slapd.pid\n\n"
      "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n"
      "olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n"
      "dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
      "include: file:///etc/ldap/schema/core.ldif\n\n"
      "include: file:///etc/ldap/schema/cosine.ldif\n\n"
      "include: file:///etc/ldap/schema/inetorgperson.ldif\n\n"
      "dn: olcDatabase={1}mdb,cn=config\nobjectClass: olcDatabaseConfig\n"
      "objectClass: olcMdbConfig\nolcDatabase: {1}mdb\nolcSuffix: ",
      kSuffix, "\nolcRootDN: ", kAdmin, "\nolcRootPW: ", password,
      "\nolcDbDirectory: ", dir, "/db\nolcDbMaxSize: 104857600\n");
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/config.ldif", config, 0600));
  ProcessSpec load;
  load.argv = {slapadd,          "-n0", "-F",
               dir + "/slapd.d", "-l",  dir + "/config.ldif"};
  absl::Status st = MustRun(load, "slapadd cn=config");
  unlink((dir + "/config.ldif").c_str());
  RETURN_IF_ERROR(st);
  SandboxDatabase db;
  db.set_kind("ldap");
  db.set_site(site);
  db.set_dir(dir);
  db.set_suffix(kSuffix);
  db.set_pid_file(dir + "/slapd.pid");
  for (const std::string& a :
       InNamespace(net.netns, {slapd, "-F", dir + "/slapd.d", "-h", url})) {
    db.add_argv(a);
  }
  RETURN_IF_ERROR(
      SpawnDetached(InNamespace(net.netns, {slapd, "-d", "0", "-F",
                                            dir + "/slapd.d", "-h", url}),
                    dir + "/server.log")
          .status());
  started->push_back(db);
  db.set_password_file(dir + "/password");
  // ldap -y reads the whole file: no newline.
  RETURN_IF_ERROR(WriteFileAtomic(db.password_file(), password, 0600));
  for (const std::string& a :
       {std::string("-x"), std::string("-H"), url, std::string("-D"),
        std::string(kAdmin), std::string("-y"), db.password_file()}) {
    db.add_client(a);
  }
  ProcessSpec ready;
  ready.argv = {ldapadd};
  for (const auto& a : db.client()) ready.argv.push_back(a);
  if (seed) {
    RETURN_IF_ERROR(WriteFileAtomic(
        dir + "/base.ldif",
        absl::StrCat("dn: ", kSuffix,
                     "\nobjectClass: dcObject\nobjectClass: organization\n"
                     "o: Example\ndc: example\n\n"
                     "dn: ou=people,",
                     kSuffix,
                     "\nobjectClass: organizationalUnit\nou: people\n"),
        0600));
    ready.argv.push_back("-f");
    ready.argv.push_back(dir + "/base.ldif");
    RETURN_IF_ERROR(WaitFor(ready, "ldap start"));
  } else {
    ASSIGN_OR_RETURN(std::string search, Which("ldapsearch"));
    ready.argv[0] = search;
    ready.argv.push_back("-s");
    ready.argv.push_back("base");
    ready.argv.push_back("-b");
    ready.argv.push_back("");
    RETURN_IF_ERROR(WaitFor(ready, "ldap start"));
  }
  DatabaseJob job;
  job.set_name("directory");
  job.set_kind("ldap");
  job.set_file(absl::StrCat(kDumpRoot, "/directory.ldif"));
  job.set_ldap_config_dir(dir + "/slapd.d");
  job.set_ldap_suffix(kSuffix);
  job.set_ldap_data_dir(dir + "/db");
  job.set_timeout_ms(60'000);
  // slapadd loads an idle database: stop slapd, start it after.
  for (const std::string& a :
       {std::string("/bin/sh"), std::string("-c"),
        absl::StrCat("p=$(cat ", db.pid_file(),
                     " 2>/dev/null) || exit 0; kill $p; while kill -0 $p "
                     "2>/dev/null; do sleep 0.05; done")}) {
    job.add_pre_restore(a);
  }
  for (const auto& a : db.argv()) job.add_post_restore(a);
  out->jobs.push_back(job);
  started->back() = db;
  out->servers.push_back(db);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SiteDatabases> StartSiteDatabases(
    const std::string& dir, const std::string& site, bool seed,
    const SiteNetwork& net, std::vector<SandboxDatabase>* started) {
  SiteDatabases out;
  std::string base = absl::StrCat(dir, "/databases/", site);
  RETURN_IF_ERROR(StartMariaDb(base + "/mariadb", site, seed, &out, started));
  RETURN_IF_ERROR(
      StartPostgres(base + "/postgresql", site, seed, &out, started));
  RETURN_IF_ERROR(StartSlapd(base + "/ldap", site, seed, net, &out, started));
  return out;
}

absl::StatusOr<int> SpawnDetached(const std::vector<std::string>& argv,
                                  const std::string& log) {
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    setsid();
    int in = open("/dev/null", O_RDONLY);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in >= 0) dup2(in, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    // Nothing else of ours (a caller's pipe, above all) may stay open in a
    // daemon.
    CloseFdsFrom(3);
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void StopDatabase(const SandboxDatabase& db) {
  auto text = ReadFileToString(db.pid_file());
  int pid = 0;
  if (text.ok() &&
      absl::SimpleAtoi(
          absl::StripAsciiWhitespace(text->substr(0, text->find('\n'))),
          &pid) &&
      pid > 1) {
    // PostgreSQL's fast shutdown is SIGINT; MariaDB and slapd stop on
    // SIGTERM.
    kill(pid, db.kind() == "postgresql" ? SIGINT : SIGTERM);
    absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (Alive(pid) && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    if (Alive(pid)) kill(pid, SIGKILL);
  }
  if (absl::StartsWith(db.dir(), "/var/tmp/gwmirror-pg-")) {
    (void)RemoveTree(db.dir());
  }
}

}  // namespace gwmirror
