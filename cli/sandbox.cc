// gwmirror sandbox up|down: a two-site cluster on this machine. Production
// host i is a directory standing in for '/' with a generated installation;
// its standby twin starts with an empty installation of the same version
// and topology. One coordinator and 2N nodes on loopback ports with mutual
// TLS from a fresh cluster CA, detached from the terminal; `up` returns
// once the first checkpoint is applied on the standby.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/sandbox_databases.h"
#include "cli/sandbox_etcd.h"
#include "cli/sandbox_wan.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/path.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "node/sample/generator.h"

namespace gwmirror {
namespace {

constexpr char kPrefix[] = "opt/Axway-7.7";

std::string BinDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string exe(buf, n);
  return exe.substr(0, exe.rfind('/'));
}

// The last lines of `log` (at most 2 KiB), for an error that names it.
std::string LogTail(const std::string& log) {
  auto text = ReadFileToString(log);
  if (!text.ok() || text->empty()) return "(empty)";
  absl::string_view tail(*text);
  if (tail.size() > 2048) {
    tail.remove_prefix(tail.size() - 2048);
    // From the first whole line on.
    const size_t newline = tail.find('\n');
    if (newline != absl::string_view::npos) tail.remove_prefix(newline + 1);
  }
  return std::string(absl::StripTrailingAsciiWhitespace(tail));
}

// The port `pid` (a child of ours, started by Start into `started`) wrote
// to `file`; UNAVAILABLE, with the end of its log, when it exits first or
// takes more than 30 s. A child that exited is reaped, and its pid cleared
// in `started` (reused, it must not be stopped).
absl::StatusOr<int> WaitForPort(
    const std::string& file, int pid, const std::string& log,
    std::vector<gwmirror::v1::SandboxProcess>* started) {
  absl::Time give_up = absl::Now() + absl::Seconds(30);
  std::string why = "did not start listening in 30 s";
  while (absl::Now() < give_up) {
    auto text = ReadFileToString(file);
    int port = 0;
    if (text.ok() &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port) &&
        port > 0) {
      return port;
    }
    // An exited child stays a zombie until reaped: kill(pid, 0) would
    // still find it.
    int ws = 0;
    if (waitpid(pid, &ws, WNOHANG) == pid) {
      for (auto& p : *started) {
        if (p.pid() == pid) p.set_pid(0);
      }
      why = WIFEXITED(ws) ? absl::StrCat("exited with status ", WEXITSTATUS(ws))
                          : absl::StrCat("was killed by signal ", WTERMSIG(ws));
      why += " before it listened";
      break;
    }
    if (kill(pid, 0) != 0) {
      why = "is gone before it listened";
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::UnavailableError(absl::StrCat("process ", pid, " ", why,
                                             "; its log (", log, ") ends:\n",
                                             LogTail(log)));
}

// Starts a daemon (in network namespace `netns`, when not empty) and adds
// it to `started`.
gwmirror::v1::SandboxProcess Start(
    const std::vector<std::string>& argv, const std::string& config,
    const std::string& log, std::vector<gwmirror::v1::SandboxProcess>* started,
    absl::Status* st, const std::string& netns = "") {
  gwmirror::v1::SandboxProcess p;
  p.set_config(config);
  p.set_log(log);
  p.set_netns(netns);
  for (const auto& a : argv) p.add_argv(a);
  auto pid = SpawnDetached(InNamespace(netns, argv), log);
  if (!pid.ok()) {
    *st = pid.status();
  } else {
    p.set_pid(*pid);
    started->push_back(p);
  }
  return p;
}

// Whether `pid` still runs `exe` (a recycled pid must not be killed).
bool Runs(int pid, const std::string& exe) {
  auto cmdline = ReadFileToString(absl::StrCat("/proc/", pid, "/cmdline"));
  return cmdline.ok() && cmdline->substr(0, cmdline->find('\0')) == exe;
}

void Stop(const gwmirror::v1::SandboxProcess& p) {
  if (p.pid() <= 0 || p.argv().empty() || !Runs(p.pid(), p.argv(0))) return;
  kill(p.pid(), SIGTERM);
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Runs(p.pid(), p.argv(0)) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (Runs(p.pid(), p.argv(0))) kill(p.pid(), SIGKILL);
}

absl::Status DoUp(const Args& a,
                  std::vector<gwmirror::v1::SandboxProcess>* started,
                  std::vector<gwmirror::v1::SandboxDatabase>* servers,
                  gwmirror::v1::SandboxWan* wan);

// `up`, and on failure nothing left running.
absl::Status Up(const Args& a) {
  std::vector<gwmirror::v1::SandboxProcess> started;
  std::vector<gwmirror::v1::SandboxDatabase> servers;
  gwmirror::v1::SandboxWan wan;
  absl::Status st = DoUp(a, &started, &servers, &wan);
  if (!st.ok()) {
    for (const auto& p : started) Stop(p);
    for (const auto& d : servers) StopDatabase(d);
    DestroyWan(wan);
  }
  return st;
}

absl::Status DoUp(const Args& a,
                  std::vector<gwmirror::v1::SandboxProcess>* started,
                  std::vector<gwmirror::v1::SandboxDatabase>* servers,
                  gwmirror::v1::SandboxWan* wan) {
  ASSIGN_OR_RETURN(std::string dir, a.Require("dir"));
  ASSIGN_OR_RETURN(uint64_t slots, a.UintOr("slots", 2));
  std::string size = a.Get("size").value_or("small");
  if (slots < 1 || slots > 16) {
    return absl::InvalidArgumentError("--slots must be within 1..16");
  }
  if (size != "small" && size != "large") {
    return absl::InvalidArgumentError("--size must be small or large");
  }
  const std::optional<std::string> wan_spec = a.Get("wan");
  const std::string coordinator_site =
      a.Get("coordinator-site").value_or("standby");
  if (coordinator_site != "production" && coordinator_site != "standby" &&
      coordinator_site != "witness") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--coordinator-site must be production, standby or witness, not \"",
        coordinator_site, "\""));
  }
  if (coordinator_site == "witness" && !wan_spec) {
    return absl::InvalidArgumentError(
        "--coordinator-site witness needs --wan (a site of its own with a "
        "link to both)");
  }
  if (wan_spec) RETURN_IF_ERROR(ParseWanSpec(*wan_spec).status());
  ASSIGN_OR_RETURN(uint64_t etcd_members, a.UintOr("etcd", 0));
  if (etcd_members != 0 && etcd_members != 1 && etcd_members != 3 &&
      etcd_members != 5) {
    return absl::InvalidArgumentError(
        "--etcd must be 1, 3 or 5 (an odd number of members keeps a "
        "majority through a loss)");
  }
  ASSIGN_OR_RETURN(uint64_t coordinators, a.UintOr("coordinators", 1));
  if (coordinators != 1 && coordinators != 2) {
    return absl::InvalidArgumentError(
        "--coordinators must be 1 or 2 (one per site)");
  }
  if (coordinators == 2 && etcd_members == 0) {
    return absl::InvalidArgumentError(
        "--coordinators 2 needs --etcd N: coordinators share their state "
        "on etcd");
  }
  if (dir.empty() || dir[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == nullptr)
      return ErrnoStatus(errno, "getcwd");
    dir = JoinPath(cwd, dir);
  }
  if (access((dir + "/sandbox.json").c_str(), F_OK) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " holds a sandbox already; run: gwmirror sandbox down --dir ",
        dir));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> present, ListDir(dir));
  if (!present.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not empty; choose an empty or new directory"));
  }
  RETURN_IF_ERROR(MakeDirs(dir + "/logs", 0700));
  chmod(dir.c_str(), 0700);
  const std::string pki = dir + "/pki";
  RETURN_IF_ERROR(CreateCa(pki + "/ca", "gwmirror sandbox CA"));
  auto issue = [&](const std::string& name) {
    return IssueCertificate(pki + "/ca", name, pki + "/certs");
  };
  ASSIGN_OR_RETURN(auto coord_tls, issue("coordinator"));
  ASSIGN_OR_RETURN(auto operator_tls, issue("operator"));
  ASSIGN_OR_RETURN(auto viewer_tls, issue("viewer"));
  const std::string bin = BinDir();
  absl::Status st;
  gwmirror::v1::SandboxFile out;
  // Each site's address and network namespace (loopback and the machine's
  // own without --wan).
  auto host = [&](const std::string& site) {
    return wan_spec ? wan->addresses().at(site) : std::string("127.0.0.1");
  };
  auto netns = [&](const std::string& site) {
    return wan_spec ? wan->namespaces().at(site) : std::string();
  };
  if (wan_spec) {
    // With etcd, its third member stands on the witness.
    ASSIGN_OR_RETURN(
        *wan, CreateWan(dir, *wan_spec, bin + "/gwmirror-wan-relay",
                        coordinator_site == "witness" || etcd_members >= 3));
    wan->set_coordinator_site(coordinator_site);
    *out.mutable_wan() = *wan;
  }

  // etcd, when asked for, before the coordinator that keeps its state
  // there (it waits for them to answer).
  gwmirror::v1::CoordinatorConfig cc;
  if (etcd_members != 0) {
    // A CA of etcd's own: a node's certificate from the cluster CA must
    // not open the coordinator's state to it.
    const std::string etcd_pki = pki + "/etcd";
    RETURN_IF_ERROR(CreateCa(etcd_pki + "/ca", "gwmirror sandbox etcd CA"));
    ASSIGN_OR_RETURN(std::vector<EtcdMember> members,
                     PlanEtcdCluster(dir + "/etcd", etcd_members));
    IssueOptions member_hosts;
    if (wan_spec) {
      const auto sites = EtcdMemberSites(etcd_members, coordinator_site);
      for (size_t i = 0; i < members.size(); ++i) {
        members[i].host = host(sites[i]);
        members[i].netns = netns(sites[i]);
        member_hosts.hosts.push_back(members[i].host);
      }
    }
    ASSIGN_OR_RETURN(auto etcd_tls,
                     IssueCertificate(etcd_pki + "/ca", "etcd",
                                      etcd_pki + "/certs", member_hosts));
    ASSIGN_OR_RETURN(
        auto client_tls,
        IssueCertificate(etcd_pki + "/ca", "coordinator", etcd_pki + "/certs"));
    for (const EtcdMember& m : members) {
      gwmirror::v1::SandboxProcess p = Start(
          EtcdMemberArgv(m, members, /*fresh=*/true, etcd_tls), "",
          absl::StrCat(dir, "/logs/", m.name, ".log"), started, &st, m.netns);
      RETURN_IF_ERROR(st);
      p.set_address(absl::StrCat(m.host, ":", m.client_port));
      *out.add_etcd() = p;
    }
    *cc.mutable_etcd() = EtcdStoreFor(members, client_tls);
    cc.mutable_etcd()->set_name("coordinator-" + coordinator_site);
  }
  // The coordinator first: nodes need its port.
  *cc.mutable_tls() = coord_tls;
  cc.set_listen(host(coordinator_site) + ":0");
  cc.set_port_file(dir + "/coordinator/port");
  cc.set_state_dir(dir + "/coordinator/state");
  cc.add_operator_identities("operator");
  cc.add_viewer_identities("viewer");
  cc.add_sites("production");
  cc.add_sites("standby");
  cc.set_initial_active_site("production");
  cc.set_parity_policy("strict");
  cc.set_heartbeat_timeout_ms(3000);
  // Continuous mirroring unless the caller wants to cut by hand (tests).
  cc.set_follow_changes(!a.Has("manual"));
  // Database changes set off no cut of their own: a cut a minute bounds
  // their RPO.
  if (a.Has("databases") && !a.Has("manual")) {
    cc.set_checkpoint_interval_ms(60'000);
  }
  cc.set_metrics_listen(host(coordinator_site) + ":0");
  cc.set_metrics_port_file(dir + "/coordinator/metrics.port");
  for (uint64_t i = 1; i <= slots; ++i) {
    for (const char* site : {"production", "standby"}) {
      auto* m = cc.add_members();
      m->set_identity(absl::StrCat("gw", i, "-", site));
      m->set_site(site);
      m->set_slot(absl::StrCat("gw", i));
    }
  }
  RETURN_IF_ERROR(MakeDirs(dir + "/coordinator", 0700));
  RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/coordinator/config.json", ToJson(cc), 0600));
  *out.mutable_coordinator_process() =
      Start({bin + "/gwmirror-coordinator", "serve", "--config",
             dir + "/coordinator/config.json"},
            dir + "/coordinator/config.json", dir + "/logs/coordinator.log",
            started, &st, netns(coordinator_site));
  RETURN_IF_ERROR(st);
  ASSIGN_OR_RETURN(int coord_port,
                   WaitForPort(cc.port_file(), out.coordinator_process().pid(),
                               out.coordinator_process().log(), started));
  std::string coord_address =
      absl::StrCat(host(coordinator_site), ":", coord_port);
  ASSIGN_OR_RETURN(
      int metrics_port,
      WaitForPort(cc.metrics_port_file(), out.coordinator_process().pid(),
                  out.coordinator_process().log(), started));
  out.set_metrics(absl::StrCat(host(coordinator_site), ":", metrics_port));
  out.set_metrics_url(absl::StrCat("http://", out.metrics(), "/metrics"));
  out.mutable_coordinator_process()->set_metrics_url(out.metrics_url());
  // Restarts (sandbox.json's argv) keep the addresses nodes and scrapers know.
  cc.set_listen(coord_address);
  cc.set_metrics_listen(out.metrics());
  RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/coordinator/config.json", ToJson(cc), 0600));
  out.set_coordinator(coord_address);
  out.mutable_coordinator_process()->set_address(coord_address);
  // The other site's coordinator, once the first leads: it follows
  // (answering status, refusing the rest) until it leads, on a port chosen
  // now so that it keeps one address whichever it does.
  std::vector<std::string> more_coordinators;
  if (coordinators == 2) {
    const std::string site =
        coordinator_site == "production" ? "standby" : "production";
    const std::string home = dir + "/coordinator-" + site;
    gwmirror::v1::CoordinatorConfig other = cc;
    ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
    other.set_listen(absl::StrCat(host(site), ":", port));
    other.set_port_file(home + "/port");
    other.set_state_dir(home + "/state");
    other.set_metrics_listen(host(site) + ":0");
    other.set_metrics_port_file(home + "/metrics.port");
    other.mutable_etcd()->set_name("coordinator-" + site);
    RETURN_IF_ERROR(MakeDirs(home, 0700));
    RETURN_IF_ERROR(
        WriteFileAtomic(home + "/config.json", ToJson(other), 0600));
    gwmirror::v1::SandboxProcess p =
        Start({bin + "/gwmirror-coordinator", "serve", "--config",
               home + "/config.json"},
              home + "/config.json", dir + "/logs/coordinator-" + site + ".log",
              started, &st, netns(site));
    RETURN_IF_ERROR(st);
    RETURN_IF_ERROR(
        WaitForPort(other.port_file(), p.pid(), p.log(), started).status());
    ASSIGN_OR_RETURN(int its_metrics, WaitForPort(other.metrics_port_file(),
                                                  p.pid(), p.log(), started));
    p.set_address(other.listen());
    p.set_metrics_url(
        absl::StrCat("http://", host(site), ":", its_metrics, "/metrics"));
    *out.add_more_coordinators() = p;
    more_coordinators.push_back(other.listen());
  }

  gwmirror::v1::CliConfig cli;
  *cli.mutable_tls() = operator_tls;
  cli.set_coordinator(coord_address);
  cli.set_coordinator_identity("coordinator");
  for (const auto& c : more_coordinators) cli.add_more_coordinators(c);
  out.set_cli_config(dir + "/cli.json");
  RETURN_IF_ERROR(WriteFileAtomic(out.cli_config(), ToJson(cli), 0600));
  // A read-only operator's config beside it.
  gwmirror::v1::CliConfig viewer = cli;
  *viewer.mutable_tls() = viewer_tls;
  out.set_viewer_cli_config(dir + "/viewer.json");
  RETURN_IF_ERROR(
      WriteFileAtomic(out.viewer_cli_config(), ToJson(viewer), 0600));

  // Database servers per site; slot gw1 carries their dumps.
  std::map<std::string, SiteDatabases> databases;
  if (a.Has("databases")) {
    for (const char* site : {"production", "standby"}) {
      ASSIGN_OR_RETURN(
          databases[site],
          StartSiteDatabases(dir, site, std::string(site) == "production",
                             SiteNetwork{netns(site), host(site)}, servers));
    }
  }
  auto roots = SampleRoots(kPrefix);
  std::vector<std::string> paths = {absl::StrCat(kPrefix, "/apigateway"),
                                    absl::StrCat(kPrefix, "/analytics"),
                                    "etc/init.d"};
  for (uint64_t i = 1; i <= slots; ++i) {
    std::string slot = absl::StrCat("gw", i);
    std::string home = absl::StrCat(dir, "/", slot);
    SampleOptions o;
    o.size = size;
    o.host_index = static_cast<int>(i);
    o.host_count = static_cast<int>(slots);
    o.prefix = kPrefix;
    // With databases, the deployments connect to them (and to one database
    // nothing here dumps: `gwmirror coverage` shows it UNPROTECTED).
    o.external_connections = !databases.empty();
    RETURN_IF_ERROR(GenerateSample(home + "/production", o).status());
    // The standby host: the same product installed, the same topology file
    // (what the vendor's install and managedomain leave), nothing else.
    std::string gw_rel = absl::StrCat(kPrefix, "/apigateway");
    for (const char* f :
         {"system/lib/version.properties", "groups/topology.json"}) {
      std::string rel = absl::StrCat(gw_rel, "/", f);
      ASSIGN_OR_RETURN(std::string content,
                       ReadFileToString(home + "/production/" + rel));
      std::string to = home + "/standby/" + rel;
      RETURN_IF_ERROR(MakeDirs(to.substr(0, to.rfind('/')), 0755));
      RETURN_IF_ERROR(WriteFileAtomic(to, content, 0644));
    }
    auto* s = out.add_slots();
    s->set_name(slot);
    for (const char* site : {"production", "standby"}) {
      std::string ident = absl::StrCat(slot, "-", site);
      ASSIGN_OR_RETURN(auto tls, issue(ident));
      gwmirror::v1::NodeConfig nc;
      nc.set_slot(slot);
      nc.set_site(site);
      nc.set_host_root(absl::StrCat(home, "/", site));
      nc.set_state_dir(absl::StrCat(home, "/", site, "-state"));
      *nc.mutable_tls() = tls;
      for (const auto& r : roots) *nc.add_roots() = r;
      if (i == 1 && !databases.empty()) {
        nc.add_roots()->set_path(kDumpRoot);
        for (const auto& job : databases[site].jobs) {
          *nc.add_databases() = job;
        }
        for (const auto& server : databases[site].servers) {
          *s->add_databases() = server;
        }
      }
      nc.set_listen(host(site) + ":0");
      nc.set_port_file(absl::StrCat(home, "/", site, ".port"));
      nc.set_metrics_listen(host(site) + ":0");
      nc.set_metrics_port_file(absl::StrCat(home, "/", site, ".metrics.port"));
      nc.mutable_coordinator()->set_address(coord_address);
      for (const auto& c : more_coordinators) {
        nc.mutable_coordinator()->add_more_addresses(c);
      }
      nc.mutable_coordinator()->set_identity("coordinator");
      nc.mutable_coordinator()->set_heartbeat_ms(500);
      nc.mutable_topology()->set_host_name(absl::StrCat(slot, ".example.com"));
      // Either node can be the source: the coordinator's active site
      // decides, and a promote swaps them.
      const bool production = std::string(site) == "production";
      nc.mutable_source()->set_prestage_off(a.Has("no-prestage"));
      nc.mutable_replica()->set_source_identity(
          absl::StrCat(slot, production ? "-standby" : "-production"));
      nc.mutable_replica()->add_controller_identities("operator");
      // A hand edit on a sandbox standby is repaired within seconds.
      if (!a.Has("manual")) {
        nc.mutable_replica()->set_drift_check_interval_ms(5000);
      }
      std::string config = absl::StrCat(home, "/", site, ".json");
      RETURN_IF_ERROR(WriteFileAtomic(config, ToJson(nc), 0600));
      gwmirror::v1::SandboxProcess p =
          Start({bin + "/gwmirror-node", "serve", "--config", config}, config,
                absl::StrCat(dir, "/logs/", ident, ".log"), started, &st,
                netns(site));
      RETURN_IF_ERROR(st);
      ASSIGN_OR_RETURN(int port,
                       WaitForPort(nc.port_file(), p.pid(), p.log(), started));
      p.set_address(absl::StrCat(host(site), ":", port));
      nc.set_listen(p.address());
      ASSIGN_OR_RETURN(
          int metrics_port,
          WaitForPort(nc.metrics_port_file(), p.pid(), p.log(), started));
      nc.set_metrics_listen(absl::StrCat(host(site), ":", metrics_port));
      p.set_metrics_url(
          absl::StrCat("http://", nc.metrics_listen(), "/metrics"));
      RETURN_IF_ERROR(WriteFileAtomic(config, ToJson(nc), 0600));
      p.set_root(nc.host_root());
      for (const auto& path : paths) p.add_paths(path);
      if (i == 1 && !databases.empty()) p.add_paths(kDumpRoot);
      *(std::string(site) == "production" ? s->mutable_production()
                                          : s->mutable_standby()) = p;
    }
  }
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/sandbox.json", ToJson(out), 0644));

  // Every node registered, then the first checkpoint.
  ASSIGN_OR_RETURN(auto stub, DialControl(cli));
  absl::Time give_up = absl::Now() + absl::Seconds(60);
  std::string waiting;
  for (;;) {
    gwmirror::v1::ClusterStatus s;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    absl::Status rs =
        FromGrpc(stub->Status(&ctx, gwmirror::v1::StatusRequest(), &s));
    waiting.clear();
    if (!rs.ok()) waiting = std::string(rs.message());
    for (const auto& slot : s.slots()) {
      for (const auto* n : {&slot.source(), &slot.replica()}) {
        if (!n->healthy()) waiting = absl::StrCat("node ", n->identity());
      }
    }
    if (waiting.empty()) break;
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("cluster not up after 60 s (waiting for ", waiting,
                       "); logs in ", dir, "/logs"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  gwmirror::v1::CreateCheckpointRequest req;
  req.set_wait(true);
  gwmirror::v1::CheckpointInfo first;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(30)));
  RETURN_IF_ERROR(FromGrpc(stub->CreateCheckpoint(&ctx, req, &first)));
  std::cout << "sandbox up in " << dir << ": " << slots
            << " slots, first checkpoint " << first.id() << " applied\n"
            << "  coordinator " << coord_address << " (log "
            << out.coordinator_process().log() << "), metrics "
            << out.metrics_url() << "\n"
            << "  status page: "
            << absl::StripSuffix(out.metrics_url(), "metrics") << "\n";
  if (out.etcd_size() > 0) {
    std::vector<std::string> members;
    for (const auto& p : out.etcd()) members.push_back(p.address());
    std::cout << "  coordinator state on etcd: " << absl::StrJoin(members, ", ")
              << " (logs in " << dir << "/logs)\n";
  }
  for (const auto& s : out.slots()) {
    std::cout << "  " << s.name() << ": production " << s.production().address()
              << " root " << s.production().root() << " metrics "
              << s.production().metrics_url() << "\n"
              << "  " << std::string(s.name().size(), ' ') << "  standby    "
              << s.standby().address() << " root " << s.standby().root()
              << " metrics " << s.standby().metrics_url() << "\n";
  }
  std::cout << "  description: " << dir << "/sandbox.json\n"
            << "  try: " << bin << "/gwmirror status --config "
            << out.cli_config() << "\n"
            << "       " << bin
            << "/gwmirror checkpoint create --wait --config "
            << out.cli_config() << "\n"
            << "  stop: " << bin << "/gwmirror sandbox down --dir " << dir
            << "\n";
  return absl::OkStatus();
}

absl::Status Down(const Args& a) {
  ASSIGN_OR_RETURN(std::string dir, a.Require("dir"));
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(dir + "/sandbox.json"));
  gwmirror::v1::SandboxFile sb;
  RETURN_IF_ERROR(ParseJson(json, dir + "/sandbox.json", &sb));
  for (const auto& s : sb.slots()) {
    Stop(s.production());
    Stop(s.standby());
    for (const auto& d : s.databases()) StopDatabase(d);
  }
  Stop(sb.coordinator_process());
  for (const auto& p : sb.more_coordinators()) Stop(p);
  for (const auto& p : sb.etcd()) Stop(p);
  DestroyWan(sb.wan());
  if (a.Has("keep")) {
    RETURN_IF_ERROR(RemoveTree(dir + "/sandbox.json"));
    std::cout << "sandbox in " << dir << " stopped; data kept\n";
  } else {
    RETURN_IF_ERROR(RemoveTree(dir));
    std::cout << "sandbox in " << dir << " stopped and removed\n";
  }
  return absl::OkStatus();
}

// `sandbox link down|up|set SPEC`: the WAN between the sites, while
// everything runs.
absl::Status Link(const std::string& how, const Args& a) {
  ASSIGN_OR_RETURN(std::string dir, a.Require("dir"));
  const std::string file = dir + "/sandbox.json";
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(file));
  gwmirror::v1::SandboxFile sb;
  RETURN_IF_ERROR(ParseJson(json, file, &sb));
  if (sb.wan().id().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the sandbox in ", dir, " has no WAN (it was not started with --wan)"));
  }
  gwmirror::v1::SandboxWan* wan = sb.mutable_wan();
  if (how == "set") {
    if (a.positional().size() != 1) {
      return absl::InvalidArgumentError(
          "sandbox link set takes the link's shape, such as "
          "delay=40ms,jitter=5ms,loss=0.5%,rate=50mbit");
    }
    RETURN_IF_ERROR(ShapeWan(wan, a.positional().front()));
  } else {
    RETURN_IF_ERROR(SetWanLink(wan, how == "up"));
  }
  RETURN_IF_ERROR(WriteFileAtomic(file, ToJson(sb), 0644));
  std::cout << "link between the sites " << (wan->link_up() ? "up" : "DOWN")
            << ", shape " << (wan->spec().empty() ? "none" : wan->spec())
            << "\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status SandboxCommand(const std::string& sub, const Args& a) {
  if (sub == "up") return Up(a);
  if (sub == "down") return Down(a);
  if (sub == "link down") return Link("down", a);
  if (sub == "link up") return Link("up", a);
  if (sub == "link set") return Link("set", a);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown sandbox command \"", sub, "\" (up, down)"));
}

}  // namespace gwmirror
