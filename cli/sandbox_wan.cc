#include "cli/sandbox_wan.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/sandbox_databases.h"
#include "common/fd.h"
#include "common/process.h"
#include "common/send_budget.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

// Labs of this machine: one marker file each ("DIR\nPID\n": the sandbox's
// directory and the pid that made it), and the lock their allocation
// takes.
constexpr char kLabs[] = "/run/gwmirror-wan";
// Second octets a lab's 10.K.0.0/16 may take.
constexpr int kFirstNet = 64, kLastNet = 127;

absl::Status Run(std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.timeout = absl::Seconds(30);
  ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec));
  if (r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(spec.argv, " "), ": ", Describe(r)));
  }
  return absl::OkStatus();
}

// `ip -n NS ARGS...`.
absl::Status Ip(const std::string& ns, std::vector<std::string> args) {
  std::vector<std::string> argv = {"ip"};
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(std::move(argv));
}

std::string Net(int k, int site, int host) {
  return absl::StrCat("10.", k, ".", site, ".", host);
}

absl::StatusOr<absl::Duration> DurationPart(absl::string_view key,
                                            absl::string_view value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
      d > absl::Seconds(10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--wan: ", key, "=", value,
                     " is not a duration within 0..10s (such as 40ms)"));
  }
  return d;
}

// Pids of the processes in network namespace `ns`.
std::vector<int> PidsIn(const std::string& ns) {
  std::vector<int> pids;
  if (access(("/run/netns/" + ns).c_str(), F_OK) != 0) return pids;
  // `ip netns pids` prints them; its output goes to a file of ours.
  const std::string out = absl::StrCat("/tmp/gwmirror-wan-pids.", getpid());
  ProcessSpec spec;
  spec.argv = {"ip", "netns", "pids", ns};
  spec.stdout_path = out;
  spec.timeout = absl::Seconds(10);
  auto r = RunProcess(spec);
  auto listing = ReadFileToString(out);
  unlink(out.c_str());
  if (!r.ok() || !listing.ok()) return pids;
  for (absl::string_view line : absl::StrSplit(*listing, '\n')) {
    int pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 1) pids.push_back(pid);
  }
  return pids;
}

void KillAll(const std::string& ns) {
  for (int round = 0; round < 50; ++round) {
    std::vector<int> pids = PidsIn(ns);
    if (pids.empty()) return;
    for (int pid : pids) kill(pid, round < 25 ? SIGTERM : SIGKILL);
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void Destroy(const std::string& id) {
  for (const char* suffix : {"-p", "-s", "-c", "-w"}) {
    const std::string ns = id + suffix;
    KillAll(ns);
    (void)Ip("", {"netns", "del", ns});
  }
  (void)Ip("", {"link", "del", id});  // And its peer in the router.
  unlink(absl::StrCat(kLabs, "/", id).c_str());
}

// Removes labs whose sandbox is gone: its maker ended, and no daemon runs
// at any site (what a test that crashed leaves behind).
void RemoveAbandoned() {
  auto names = ListDir(kLabs);
  if (!names.ok()) return;
  for (const std::string& id : *names) {
    if (!absl::StartsWith(id, "gwm")) continue;
    auto marker = ReadFileToString(absl::StrCat(kLabs, "/", id));
    std::vector<std::string> lines =
        absl::StrSplit(marker.value_or(""), '\n', absl::SkipEmpty());
    int maker = 0;
    if (lines.size() == 2 && absl::SimpleAtoi(lines[1], &maker) && maker > 1 &&
        kill(maker, 0) == 0) {
      continue;  // Still being built.
    }
    if (!PidsIn(id + "-p").empty() || !PidsIn(id + "-s").empty() ||
        !PidsIn(id + "-c").empty()) {
      continue;
    }
    Destroy(id);
  }
}

std::string Tbf(uint64_t rate) { return absl::StrCat(rate * 8, "bit"); }

// The tun devices of `wan`'s links, in pairs with a relay between each:
// the sites', and the witness's.
std::vector<std::pair<std::string, std::string>> Pairs(
    const gwmirror::v1::SandboxWan& wan) {
  if (wan.namespaces().contains("witness")) {
    return {{"wa", "wb"}, {"wc", "wd"}};
  }
  return {{"wa", "wb"}};
}

std::vector<std::string> Tuns(const gwmirror::v1::SandboxWan& wan) {
  std::vector<std::string> tuns;
  for (const auto& [a, b] : Pairs(wan)) tuns.insert(tuns.end(), {a, b});
  return tuns;
}

}  // namespace

absl::StatusOr<WanSpec> ParseWanSpec(absl::string_view text) {
  WanSpec spec;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    part = absl::StripAsciiWhitespace(part);
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first, value = kv.second;
    if (!absl::StrContains(part, '=') || value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--wan: \"", part,
                       "\" is not KEY=VALUE (delay, jitter, loss, rate)"));
    }
    if (key == "delay") {
      ASSIGN_OR_RETURN(spec.delay, DurationPart(key, value));
    } else if (key == "jitter") {
      ASSIGN_OR_RETURN(spec.jitter, DurationPart(key, value));
    } else if (key == "loss") {
      double pct = 0;
      absl::string_view n = value;
      if (!absl::ConsumeSuffix(&n, "%") || !absl::SimpleAtod(n, &pct) ||
          !std::isfinite(pct) || pct < 0 || pct > 50) {
        return absl::InvalidArgumentError(
            absl::StrCat("--wan: loss=", value,
                         " is not a percentage within 0%..50% (such as 0.5%)"));
      }
      spec.loss = pct / 100;
    } else if (key == "rate") {
      auto rate = ParseRate(value);
      if (!rate.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--wan: rate=", value, ": ", rate.status().message()));
      }
      spec.rate = *rate;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--wan: unknown part \"", key, "\" (delay, jitter, loss, rate)"));
    }
  }
  if (spec.jitter > spec.delay) {
    return absl::InvalidArgumentError(
        "--wan: jitter is larger than the delay it varies");
  }
  return spec;
}

std::vector<std::string> InNamespace(const std::string& netns,
                                     std::vector<std::string> argv) {
  if (netns.empty()) return argv;
  std::vector<std::string> out = {"/usr/sbin/ip", "netns", "exec", netns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

absl::StatusOr<gwmirror::v1::SandboxWan> CreateWan(const std::string& dir,
                                                   const std::string& spec_text,
                                                   const std::string& relay,
                                                   bool witness) {
  RETURN_IF_ERROR(ParseWanSpec(spec_text).status());
  if (geteuid() != 0) {
    return absl::PermissionDeniedError(
        "--wan makes network namespaces: run as root");
  }
  RETURN_IF_ERROR(MakeDirs(kLabs, 0755));
  UniqueFd lock(open(absl::StrCat(kLabs, "/lock").c_str(),
                     O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.valid() || flock(lock.get(), LOCK_EX) != 0) {
    return ErrnoStatus(errno, absl::StrCat("lock ", kLabs, "/lock"));
  }
  RemoveAbandoned();
  int k = kFirstNet;
  for (; k <= kLastNet; ++k) {
    if (access(absl::StrCat(kLabs, "/gwm", k).c_str(), F_OK) != 0) break;
  }
  if (k > kLastNet) {
    return absl::ResourceExhaustedError(
        absl::StrCat("every WAN subnet is taken (", kLastNet - kFirstNet + 1,
                     " sandboxes with --wan run); take one down"));
  }
  gwmirror::v1::SandboxWan wan;
  const std::string id = absl::StrCat("gwm", k);
  wan.set_id(id);
  wan.set_subnet(absl::StrCat("10.", k, ".0.0/16"));
  wan.set_host_link(id);
  const std::string w = id + "-w";
  wan.set_router_namespace(w);
  // Each site: its name, its namespace's suffix, its number in
  // 10.K.N.0/24 and the router's end of its veth.
  struct Site {
    const char* name;
    const char* suffix;
    int n;
    const char* end;
  };
  std::vector<Site> sites = {{"production", "-p", 1, "p1"},
                             {"standby", "-s", 2, "s1"}};
  if (witness) sites.push_back({"witness", "-c", 3, "c1"});
  for (const Site& site : sites) {
    (*wan.mutable_namespaces())[site.name] = id + site.suffix;
    (*wan.mutable_addresses())[site.name] = Net(k, site.n, 2);
  }
  RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(kLabs, "/", id),
                                  absl::StrCat(dir, "\n", getpid(), "\n"),
                                  0644));
  absl::Status st = [&]() -> absl::Status {
    RETURN_IF_ERROR(Ip("", {"netns", "add", w}));
    RETURN_IF_ERROR(Ip(w, {"link", "set", "lo", "up"}));
    // The machine to the router: management traffic, never delayed.
    RETURN_IF_ERROR(Ip("", {"link", "add", id, "type", "veth", "peer", "name",
                            "r1", "netns", w}));
    RETURN_IF_ERROR(Ip("", {"addr", "add", Net(k, 0, 1) + "/30", "dev", id}));
    RETURN_IF_ERROR(Ip("", {"link", "set", id, "up"}));
    RETURN_IF_ERROR(Ip(w, {"addr", "add", Net(k, 0, 2) + "/30", "dev", "r1"}));
    RETURN_IF_ERROR(Ip(w, {"link", "set", "r1", "up"}));
    RETURN_IF_ERROR(
        Ip("", {"route", "add", wan.subnet(), "via", Net(k, 0, 2)}));
    // Each site to the router.
    for (const Site& site : sites) {
      const std::string& ns = wan.namespaces().at(site.name);
      RETURN_IF_ERROR(Ip("", {"netns", "add", ns}));
      RETURN_IF_ERROR(Ip(ns, {"link", "set", "lo", "up"}));
      RETURN_IF_ERROR(Ip(w, {"link", "add", site.end, "type", "veth", "peer",
                             "name", "eth0", "netns", ns}));
      RETURN_IF_ERROR(
          Ip(w, {"addr", "add", Net(k, site.n, 1) + "/24", "dev", site.end}));
      RETURN_IF_ERROR(Ip(w, {"link", "set", site.end, "up"}));
      RETURN_IF_ERROR(
          Ip(ns, {"addr", "add", Net(k, site.n, 2) + "/24", "dev", "eth0"}));
      RETURN_IF_ERROR(Ip(ns, {"link", "set", "eth0", "up"}));
      RETURN_IF_ERROR(
          Ip(ns, {"route", "add", "default", "via", Net(k, site.n, 1)}));
    }
    // Site to site through the tun devices wa and wb (and the relay
    // between them); the witness to either site through wc and wd.
    std::vector<std::string> sysctl = {"ip",
                                       "netns",
                                       "exec",
                                       w,
                                       "sysctl",
                                       "-qw",
                                       "net.ipv4.ip_forward=1",
                                       "net.ipv4.conf.all.rp_filter=0",
                                       "net.ipv4.conf.default.rp_filter=0"};
    for (const std::string& tun : Tuns(wan)) {
      RETURN_IF_ERROR(Ip(w, {"tuntap", "add", tun, "mode", "tun"}));
      sysctl.push_back(absl::StrCat("net.ipv4.conf.", tun, ".rp_filter=0"));
    }
    RETURN_IF_ERROR(Run(sysctl));
    // Where traffic from a router end to a site's /24 goes: the table that
    // routes into the tun device whose relay carries it.
    struct Rule {
      const char* from;
      int to;
      const char* table;
    };
    std::vector<Rule> rules = {{"p1", 2, "100"}, {"s1", 1, "101"}};
    if (witness) {
      rules.insert(rules.end(), {{"c1", 1, "102"},
                                 {"c1", 2, "102"},
                                 {"p1", 3, "103"},
                                 {"s1", 3, "103"}});
    }
    for (const Rule& r : rules) {
      RETURN_IF_ERROR(Ip(w, {"rule", "add", "iif", r.from, "to",
                             Net(k, r.to, 0) + "/24", "table", r.table}));
    }
    for (const char* table : {"100", "101", "102", "103"}) {
      RETURN_IF_ERROR(Ip(w, {"route", "add", "blackhole", "default", "table",
                             table, "metric", "1000"}));
    }
    wan.set_relay_spec_file(dir + "/wan-relay.spec");
    RETURN_IF_ERROR(WriteFileAtomic(wan.relay_spec_file(), "0 0\n", 0644));
    for (const auto& [a, b] : Pairs(wan)) {
      ASSIGN_OR_RETURN(
          int pid,
          SpawnDetached(InNamespace(w, {relay, "--spec", wan.relay_spec_file(),
                                        "--a", a, "--b", b}),
                        absl::StrCat(dir, "/logs/wan-relay-", a, b, ".log")));
      wan.add_relay_pids(pid);
    }
    RETURN_IF_ERROR(SetWanLink(&wan, true));
    return ShapeWan(&wan, spec_text);
  }();
  if (!st.ok()) {
    Destroy(id);
    return st;
  }
  return wan;
}

absl::Status ShapeWan(gwmirror::v1::SandboxWan* wan,
                      const std::string& spec_text) {
  ASSIGN_OR_RETURN(WanSpec spec, ParseWanSpec(spec_text));
  const std::string& w = wan->router_namespace();
  for (const std::string& tun : Tuns(*wan)) {
    if (spec.rate == 0) {
      (void)Run({"tc", "-n", w, "qdisc", "del", "dev", tun, "root"});
      continue;
    }
    // A bucket of 10 ms of the rate (at least a few packets), and a queue
    // of 200 ms before the link drops, as a router's would.
    const uint64_t burst = std::max<uint64_t>(spec.rate / 100, 16'000);
    RETURN_IF_ERROR(Run({"tc", "-n", w, "qdisc", "replace", "dev", tun, "root",
                         "tbf", "rate", Tbf(spec.rate), "burst",
                         absl::StrCat(burst), "latency", "200ms"}));
  }
  // Loss: one rule, where a packet leaves for a relay (once per direction).
  const std::string rules = absl::StrCat(
      "table inet gwmwan\ndelete table inet gwmwan\n",
      "table inet gwmwan {\n  chain forward {\n"
      "    type filter hook forward priority 0; policy accept;\n",
      spec.loss > 0
          ? absl::StrCat(
                "    oifname { \"", absl::StrJoin(Tuns(*wan), "\", \""),
                "\" } numgen random mod 1000000 < ",
                static_cast<int64_t>(std::llround(spec.loss * 1e6)), " drop\n")
          : "",
      "  }\n}\n");
  const std::string file = wan->relay_spec_file() + ".nft";
  RETURN_IF_ERROR(WriteFileAtomic(file, rules, 0644));
  RETURN_IF_ERROR(Run({"ip", "netns", "exec", w, "nft", "-f", file}));
  RETURN_IF_ERROR(WriteFileAtomic(
      wan->relay_spec_file(),
      absl::StrCat(absl::ToInt64Microseconds(spec.delay), " ",
                   absl::ToInt64Microseconds(spec.jitter), "\n"),
      0644));
  for (int pid : wan->relay_pids()) {
    if (pid <= 1 || kill(pid, SIGHUP) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the WAN's delay relay (pid ", pid, ") is not running"));
    }
  }
  wan->set_spec(spec_text);
  return absl::OkStatus();
}

absl::Status SetWanLink(gwmirror::v1::SandboxWan* wan, bool up) {
  const std::string& w = wan->router_namespace();
  // The sites' link only: a witness keeps reaching both sides.
  for (const auto& [tun, table] :
       {std::make_pair("wa", "100"), std::make_pair("wb", "101")}) {
    RETURN_IF_ERROR(Ip(w, {"link", "set", tun, up ? "up" : "down"}));
    // A device that goes down takes its routes along, leaving the
    // blackhole; coming up, the route into it is back in front.
    if (up) {
      RETURN_IF_ERROR(
          Ip(w, {"route", "replace", "default", "dev", tun, "table", table}));
    }
  }
  if (up && wan->namespaces().contains("witness")) {
    for (const auto& [tun, table] :
         {std::make_pair("wc", "102"), std::make_pair("wd", "103")}) {
      RETURN_IF_ERROR(Ip(w, {"link", "set", tun, "up"}));
      RETURN_IF_ERROR(
          Ip(w, {"route", "replace", "default", "dev", tun, "table", table}));
    }
  }
  wan->set_link_up(up);
  return absl::OkStatus();
}

void DestroyWan(const gwmirror::v1::SandboxWan& wan) {
  if (wan.id().empty()) return;
  Destroy(wan.id());
}

}  // namespace gwmirror
