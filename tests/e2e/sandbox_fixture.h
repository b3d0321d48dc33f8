// The fixture of the end-to-end tests that run a whole sandbox
// (`gwmirror sandbox up`: a real coordinator and real nodes on loopback with
// mutual TLS) and drive it with the CLI.
#ifndef GWMIRROR_TESTS_E2E_SANDBOX_FIXTURE_H_
#define GWMIRROR_TESTS_E2E_SANDBOX_FIXTURE_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"
#include "node/sample/deployment.h"
#include "node/sample/generator.h"
#include "tests/node/test_util.h"

namespace gwmirror {

inline constexpr char kPrefix[] = "opt/Axway-7.7";

// Whether `pid` is gone (or a zombie nobody reaps yet).
// A process is gone once it is reaped, or a zombie whose every other thread
// has exited too (a killed process's leader turns zombie first; its files,
// and so its state directory's lock, go with its last thread).
inline bool Gone(int pid) {
  auto stat = ReadFileToString(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return true;
  size_t close = stat->rfind(')');
  if (close != std::string::npos && stat->substr(close + 2, 1) != "Z") {
    return false;
  }
  auto status = ReadFileToString(absl::StrCat("/proc/", pid, "/status"));
  return !status.ok() || absl::StrContains(*status, "\nThreads:\t1\n");
}

// GET http://<address>/metrics, the body; "" on failure.
inline std::string Scrape(const std::string& address) {
  size_t colon = address.rfind(':');
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(std::stoi(address.substr(colon + 1)));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    return "";
  if (!WriteAll(fd.get(), "GET /metrics HTTP/1.0\r\n\r\n").ok()) return "";
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = read(fd.get(), buf, sizeof(buf))) > 0;)
    resp.append(buf, n);
  size_t body = resp.find("\r\n\r\n");
  if ((resp.rfind("HTTP/1.0 200", 0) != 0 &&
       resp.rfind("HTTP/1.1 200", 0) != 0) ||
      body == std::string::npos)
    return "";
  return resp.substr(body + 4);
}

// `mib` MiB that do not compress (xorshift) at `path`.
inline void WriteNoise(const std::string& path, int mib) {
  std::string chunk(1 << 20, '\0');
  uint64_t x = 88172645463325252ull;
  UniqueFd fd(
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid()) << path;
  for (int m = 0; m < mib; ++m) {
    for (size_t k = 0; k + 8 <= chunk.size(); k += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      memcpy(&chunk[k], &x, 8);
    }
    ASSERT_TRUE(WriteAll(fd.get(), chunk).ok());
  }
}

// The value of the sample line starting with `series` ("name{labels}").
inline double Sample(const std::string& metrics, const std::string& series) {
  size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  at += series.size() + 2;
  double v = -1;
  if (!absl::SimpleAtod(metrics.substr(at, metrics.find('\n', at) - at), &v))
    return -1;
  return v;
}

// host:port of a daemon's metrics endpoint, from sandbox.json's URL.
inline std::string MetricsAddress(const gwmirror::v1::SandboxProcess& p) {
  std::string url = p.metrics_url();
  if (absl::StartsWith(url, "http://")) url = url.substr(7);
  if (absl::EndsWith(url, "/metrics")) url.resize(url.size() - 8);
  return url;
}

// The coordinator's fault points along a checkpoint, and whether the
// checkpoint under way is committed once the coordinator dies there.
struct CrashStep {
  const char* point;
  bool committed;
};
inline constexpr CrashStep kCoordinatorCrashSteps[] = {
    {"coordinator:cut", false},
    {"coordinator:staged", false},
    {"coordinator:commit-point", false},
    {"coordinator:consistent", true},
    {"coordinator:applied-slot", true}};

class ClusterTest : public ::testing::Test {
 protected:
  using Child = testing::Child;
  using RunResult = testing::RunResult;
  static std::string Bin(const std::string& name) { return testing::Bin(name); }

 protected:
  // `follow`: cut on every change (continuous mirroring); otherwise only
  // the test cuts, so it knows every checkpoint id.
  // `extra`: more flags for `sandbox up` (--wan SPEC).
  void Up(int slots, bool follow = false, const std::string& size = "small",
          bool databases = false, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {
        Bin("gwmirror"), "sandbox",           "up",     "--dir", Dir(),
        "--slots",       absl::StrCat(slots), "--size", size};
    if (!follow) argv.push_back("--manual");
    if (databases) argv.push_back("--databases");
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunResult r = testing::Run(argv);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto json = ReadFileToString(Dir() + "/sandbox.json");
    ASSERT_TRUE(json.ok());
    ASSERT_TRUE(ParseJson(*json, "sandbox.json", &sb_).ok());
    ASSERT_EQ(sb_.slots_size(), slots);
    for (auto& root : SampleRoots(kPrefix)) roots_.push_back(root);
  }

  void TearDown() override {
    children_.clear();
    // Whenever the sandbox wrote its description, also when this test could
    // not read it: what it started must not outlive the test.
    if (access((Dir() + "/sandbox.json").c_str(), F_OK) == 0) {
      testing::Run({Bin("gwmirror"), "sandbox", "down", "--dir", Dir()});
    }
  }

  std::string Dir() const { return tmp_ / "sb"; }
  std::string Prod(int i) const { return sb_.slots(i - 1).production().root(); }
  std::string Standby(int i) const { return sb_.slots(i - 1).standby().root(); }
  std::string Gw(const std::string& root, const std::string& rel) const {
    return absl::StrCat(root, "/", kPrefix, "/apigateway/", rel);
  }
  Manifest Tree(const std::string& root) {
    return testing::Snapshot(root, roots_);
  }

  RunResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), Bin("gwmirror"));
    args.push_back("--config");
    args.push_back(sb_.cli_config());
    return testing::Run(args);
  }

  absl::StatusOr<gwmirror::v1::ClusterStatus> TryStatus() {
    gwmirror::v1::ClusterStatus s;
    RunResult r = Cli({"status", "--json"});
    if (r.exit_code != 0) return absl::UnavailableError(r.err);
    absl::Status st = ParseJson(r.out, "status", &s);
    if (!st.ok()) return st;
    return s;
  }

  gwmirror::v1::ClusterStatus Status() {
    auto s = TryStatus();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : gwmirror::v1::ClusterStatus();
  }

  // checkpoint create --wait: the id, or the CLI's one-line reason.
  absl::StatusOr<uint64_t> Checkpoint() {
    RunResult r = Cli({"checkpoint", "create", "--wait", "--json"});
    if (r.exit_code != 0) return absl::AbortedError(r.err);
    gwmirror::v1::CheckpointInfo info;
    absl::Status st = ParseJson(r.out, "checkpoint", &info);
    if (!st.ok()) return st;
    EXPECT_EQ(info.state(), gwmirror::v1::CHECKPOINT_STATE_APPLIED);
    return info.id();
  }

  std::vector<gwmirror::v1::CheckpointInfo> Committed() {
    gwmirror::v1::CheckpointList list;
    RunResult r = Cli({"checkpoints", "--all", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(ParseJson(r.out, "checkpoints", &list).ok()) << r.out;
    return {list.checkpoints().begin(), list.checkpoints().end()};
  }

  // Polls status until `pred` holds (20 s at most, unless told).
  template <typename Pred>
  gwmirror::v1::ClusterStatus WaitFor(
      Pred pred, const std::string& what,
      absl::Duration at_most = absl::Seconds(20)) {
    absl::Time give_up = absl::Now() + at_most;
    gwmirror::v1::ClusterStatus s;
    while (absl::Now() < give_up) {
      auto got = TryStatus();  // The coordinator may be starting.
      if (got.ok()) {
        s = *got;
        if (pred(s)) return s;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "timed out waiting for " << what << "; last status:\n"
                  << ToJson(s);
    return s;
  }

  static bool AllHealthy(const gwmirror::v1::ClusterStatus& s) {
    for (const auto& slot : s.slots()) {
      if (!slot.source().healthy() || !slot.replica().healthy()) return false;
    }
    return s.slots_size() > 0;
  }

  void WaitHealthy() {
    WaitFor([](const auto& s) { return AllHealthy(s); }, "every node healthy");
  }

  static bool Mentions(const gwmirror::v1::ClusterStatus& s,
                       const std::string& needle) {
    for (const auto& d : s.differences()) {
      if (absl::StrContains(d, needle)) return true;
    }
    return false;
  }

  void Kill(const gwmirror::v1::SandboxProcess& p) {
    kill(p.pid(), SIGKILL);
    for (int i = 0; i < 500 && !Gone(p.pid()); ++i) usleep(10000);
    ASSERT_TRUE(Gone(p.pid()));
  }

  // Stops the coordinator, changes its config with `edit`, starts it again
  // and waits until every node is back.
  void ReconfigureCoordinator(
      const std::function<void(gwmirror::v1::CoordinatorConfig*)>& edit) {
    const gwmirror::v1::SandboxProcess& coord = sb_.coordinator_process();
    Kill(coord);
    gwmirror::v1::CoordinatorConfig config;
    ASSERT_TRUE(
        ParseJson(testing::ReadFile(coord.config()), "coordinator", &config)
            .ok());
    edit(&config);
    testing::WriteFile(coord.config(), ToJson(config));
    Restart(coord);
    WaitHealthy();
  }

  // Starts `p` again (same argv, so the same config and port), logging
  // beside the sandbox's own logs, and waits until it listens.
  Child* Restart(const gwmirror::v1::SandboxProcess& p,
                 const std::map<std::string, std::string>& env = {}) {
    const std::string& c = p.config();
    std::string port_file = absl::EndsWith(c, "/config.json")
                                ? c.substr(0, c.rfind('/')) + "/port"
                                : c.substr(0, c.size() - 5) + ".port";
    unlink(port_file.c_str());
    std::vector<std::string> argv(p.argv().begin(), p.argv().end());
    if (!p.netns().empty()) {
      argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", p.netns()});
    }
    children_.push_back(std::make_unique<Child>(argv, env, p.log()));
    if (testing::WaitForPort(port_file) <= 0) {
      const std::string log = testing::ReadFile(p.log());
      ADD_FAILURE() << "did not restart: " << p.log() << "; its log ends:\n"
                    << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
    }
    return children_.back().get();
  }

  // After a coordinator died at a fault point during checkpoint `n`: the
  // next checkpoint commits; nothing is committed twice; `n` is committed
  // exactly when `committed`; every standby tree is production's and every
  // replica at the new checkpoint.
  void ExpectSettledAndGoingOn(uint64_t n, bool committed) {
    auto next = Checkpoint();
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_GT(*next, n);
    auto all = Committed();
    bool has_n = false;
    for (size_t i = 0; i < all.size(); ++i) {
      if (i > 0) EXPECT_LT(all[i].id(), all[i - 1].id()) << "doubled";
      EXPECT_EQ(all[i].state(), gwmirror::v1::CHECKPOINT_STATE_APPLIED)
          << all[i].id();
      has_n |= all[i].id() == n;
    }
    EXPECT_EQ(has_n, committed);
    for (int i = 1; i <= sb_.slots_size(); ++i) {
      EXPECT_EQ(testing::Diff(Tree(Prod(i)), Tree(Standby(i))), "");
    }
    gwmirror::v1::ClusterStatus status = Status();
    for (const auto& slot : status.slots()) {
      EXPECT_EQ(slot.replica().applied_checkpoint(), *next) << slot.name();
    }
  }

  gwmirror::v1::TlsConfig Tls(const std::string& name) const {
    gwmirror::v1::TlsConfig t;
    t.set_ca_file(Dir() + "/pki/ca/ca.pem");
    t.set_cert_file(Dir() + "/pki/certs/" + name + ".pem");
    t.set_key_file(Dir() + "/pki/certs/" + name + ".key");
    return t;
  }

  testing::TempDir tmp_;
  gwmirror::v1::SandboxFile sb_;
  std::vector<gwmirror::v1::RootConfig> roots_;
  std::vector<std::unique_ptr<Child>> children_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_TESTS_E2E_SANDBOX_FIXTURE_H_
