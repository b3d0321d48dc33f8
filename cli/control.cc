#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "common/cluster_state.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace gwmirror {
namespace {

std::string NodeLine(const gwmirror::v1::NodeStatus& n, bool replica) {
  if (n.identity().empty()) return "none configured";
  std::string s =
      absl::StrCat(n.identity(), " ", n.address().empty() ? "-" : n.address(),
                   " ", n.healthy() ? "healthy" : "DOWN", " (heartbeat ",
                   SecondsText(n.heartbeat_age_ms(), "never"), " ago",
                   n.installed_version().empty()
                       ? ""
                       : absl::StrCat(", version ", n.installed_version()),
                   ")");
  if (n.send_cap() != 0 || n.send_rate() != 0) {
    absl::StrAppend(&s, ", sending ", RateText(n.send_rate()),
                    n.send_cap() != 0
                        ? absl::StrCat(" of a ", RateText(n.send_cap()), " cap")
                        : std::string());
  }
  if (replica) {
    absl::StrAppend(&s, ", applied ", n.applied_checkpoint());
    if (n.staged_checkpoint() != 0) {
      absl::StrAppend(&s, ", staged ", n.staged_checkpoint());
    }
    if (n.drifted_entries() != 0) {
      absl::StrAppend(&s, ", DRIFT: ", n.drifted_entries(),
                      " entries differ from the checkpoint, repair pending");
    }
  }
  return s;
}

// One line with the certificate that expires first; a warning line for
// each that expires within 30 days (renew with `gwmirror certs issue`).
void PrintCertificates(const gwmirror::v1::ClusterStatus& s) {
  std::vector<std::pair<int64_t, std::string>> certs;
  if (s.coordinator_certificate_expires_unix_ms() != 0) {
    certs.emplace_back(s.coordinator_certificate_expires_unix_ms(),
                       s.coordinator_identity());
  }
  for (const auto& slot : s.slots()) {
    for (const auto* n : {&slot.source(), &slot.replica()}) {
      if (n->certificate_expires_unix_ms() != 0) {
        certs.emplace_back(n->certificate_expires_unix_ms(), n->identity());
      }
    }
  }
  if (certs.empty()) return;
  std::sort(certs.begin(), certs.end());
  const int64_t now = absl::ToUnixMillis(absl::Now());
  auto days = [&](int64_t at) { return (at - now) / 86'400'000; };
  std::cout << absl::StrFormat(
      "certificates: %d known, first to expire %s on %s (in %d days)\n",
      certs.size(), certs.front().second, UnixMsText(certs.front().first),
      days(certs.front().first));
  for (const auto& [at, who] : certs) {
    if (at <= now) {
      std::cout << "  EXPIRED: certificate of " << who << " on "
                << UnixMsText(at) << "\n";
    } else if (days(at) < kCertificateWarningDays) {
      std::cout << absl::StrFormat(
          "  WARNING: certificate of %s expires in %d days (%s): renew it "
          "with `gwmirror certs issue`\n",
          who, days(at), UnixMsText(at));
    }
  }
}

grpc::ClientContext* WithDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
  return ctx;
}

// The cluster's status from the coordinator (20 s at most).
absl::StatusOr<gwmirror::v1::ClusterStatus> FetchStatus(
    gwmirror::v1::Control::Stub* stub) {
  gwmirror::v1::ClusterStatus s;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(FromGrpc(stub->Status(WithDeadline(&ctx, absl::Seconds(20)),
                                        gwmirror::v1::StatusRequest(), &s)));
  return s;
}

// One status, as text or JSON.
absl::Status PrintStatus(gwmirror::v1::Control::Stub* stub, bool json) {
  ASSIGN_OR_RETURN(gwmirror::v1::ClusterStatus s, FetchStatus(stub));
  if (json) {
    std::cout << ToJson(s) << "\n";
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "cluster %s%s\nepoch %d, active site %s (sites: %s), parity policy "
      "%s\n",
      s.state(), s.state_reason().empty() ? "" : ": " + s.state_reason(),
      s.epoch(), s.active_site(), absl::StrJoin(s.sites(), ", "),
      s.parity_policy());
  if (!s.operation().empty())
    std::cout << "under way: " << s.operation() << "\n";
  for (const auto& c : s.coordinators()) {
    std::cout << absl::StrFormat(
        "coordinator %s: %s since %s, at %s%s\n", c.name(), c.state(),
        UnixMsText(c.since_unix_ms()), c.address(),
        c.fencing_token() ? absl::StrCat(", fencing token ", c.fencing_token())
                          : "");
  }
  for (const auto& m : s.etcd_members()) {
    std::cout << "etcd " << m.endpoint() << ": "
              << (m.up() ? (m.raft_leader() ? "up, raft leader" : "up")
                         : absl::StrCat("DOWN (", m.error(), ")"))
              << "\n";
  }
  if (s.last_consistent().id() == 0) {
    std::cout << "last consistent checkpoint: none yet\n";
  } else {
    std::cout << absl::StrFormat(
        "last consistent checkpoint: %d (%s, cut %s), RPO %s\n",
        s.last_consistent().id(), StateName(s.last_consistent().state()),
        UnixMsText(s.last_consistent().cut_unix_ms()),
        SecondsText(s.rpo_ms(), "never"));
  }
  if (s.last_attempt().id() != 0 &&
      s.last_attempt().state() == gwmirror::v1::CHECKPOINT_STATE_ABORTED) {
    std::cout << absl::StrFormat("last attempt: %d aborted: %s\n",
                                 s.last_attempt().id(),
                                 s.last_attempt().reason());
  }
  for (const auto& slot : s.slots()) {
    std::string pending =
        slot.pending_files() > 0
            ? absl::StrFormat(", %d files (%d bytes) pending",
                              slot.pending_files(), slot.pending_bytes())
            : "";
    std::cout << "slot " << slot.name() << " " << slot.state()
              << (slot.lag_ms() > 0
                      ? absl::StrCat(", lag ",
                                     SecondsText(slot.lag_ms(), "never"))
                      : std::string(", nothing unstaged"))
              << pending << "\n"
              << "  source:  " << NodeLine(slot.source(), false) << "\n"
              << "  replica: " << NodeLine(slot.replica(), true) << "\n";
    if (!slot.state_reason().empty()) {
      std::cout << "  " << slot.state() << ": " << slot.state_reason() << "\n";
    }
    if (slot.has_progress()) {
      std::cout << "  syncing: " << ProgressLine(slot.progress(), absl::Now())
                << "\n";
    }
    if (slot.has_drill()) {
      std::cout << "  drill: " << DrillLine(slot.drill(), absl::Now()) << "\n";
    }
  }
  PrintCertificates(s);
  if (s.coverage_size() > 0) {
    std::cout << "external connections: " << s.coverage_size() << ", "
              << (s.unprotected_connections() == 0
                      ? std::string("none unprotected")
                      : absl::StrCat(s.unprotected_connections(),
                                     " UNPROTECTED (gwmirror coverage)"))
              << "\n";
  }
  if (s.parity()) {
    std::cout << "topology: parity\n";
  } else {
    std::cout << "topology: " << s.differences_size() << " difference(s)\n";
    for (const auto& d : s.differences()) std::cout << "  - " << d << "\n";
  }
  return absl::OkStatus();
}

void PrintDrill(const gwmirror::v1::DrillReport& d) {
  std::cout << absl::StrFormat(
      "drill %d %s: checkpoint %d, RTO %s, RPO %s (started %s)\n", d.id(),
      d.ok() ? "passed" : "FAILED", d.checkpoint(),
      SecondsText(d.rto_ms(), "never"), SecondsText(d.rpo_ms(), "never"),
      UnixMsText(d.started_unix_ms()));
  if (!d.ok()) std::cout << "  error: " << d.error() << "\n";
  for (const auto& s : d.slots()) {
    std::cout << absl::StrFormat(
        "  %s: checkpoint %d, %d entries (%d bytes) verified in %s; "
        "databases %s; smoke %s\n",
        s.slot(), s.checkpoint(), s.entries(), s.bytes(),
        SecondsText(s.copy_ms(), "never"), SecondsText(s.restore_ms(), "never"),
        SecondsText(s.smoke_ms(), "never"));
    for (const auto& r : s.restored()) std::cout << "    " << r << "\n";
  }
}

}  // namespace

absl::StatusOr<gwmirror::v1::CliConfig> LoadCliConfig(const Args& a) {
  std::string path;
  if (auto p = a.Get("config")) {
    path = *p;
  } else if (const char* env = std::getenv("GWMIRROR_CONFIG"); env && *env) {
    path = env;
  } else {
    return absl::InvalidArgumentError(
        "no CLI config: pass --config FILE or set GWMIRROR_CONFIG");
  }
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(path));
  gwmirror::v1::CliConfig config;
  RETURN_IF_ERROR(ParseJson(json, path, &config));
  if (config.coordinator().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": \"coordinator\" (host:port) is required"));
  }
  return config;
}

absl::Status HealthCommand(const Args& a) {
  ASSIGN_OR_RETURN(gwmirror::v1::CliConfig config, LoadCliConfig(a));
  // By default the coordinator; a node with --address and --name.
  std::string address = a.Get("address").value_or(config.coordinator());
  std::string name = a.Get("name").value_or(config.coordinator_identity());
  ASSIGN_OR_RETURN(auto channel, DialMutualTls(config.tls(), address, name));
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(a.Get("service").value_or(""));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(
      FromGrpc(stub->Check(WithDeadline(&ctx, absl::Seconds(5)), req, &resp)));
  std::string status =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  std::cout << name << " at " << address
            << (req.service().empty() ? "" : " service " + req.service())
            << ": " << status << "\n";
  if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrCat(name, " is ", status));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<gwmirror::v1::Control::Stub>> DialControl(
    const gwmirror::v1::CliConfig& config) {
  const std::string identity = config.coordinator_identity().empty()
                                   ? "coordinator"
                                   : config.coordinator_identity();
  std::vector<std::string> addresses = {config.coordinator()};
  addresses.insert(addresses.end(), config.more_coordinators().begin(),
                   config.more_coordinators().end());
  // Several coordinators: the leader is the one whose Control service is
  // SERVING; a follower says NOT_SERVING, and is used only when no leader
  // answers (it gives the status the store holds and refuses the rest,
  // saying why).
  std::vector<std::string> tried;
  std::shared_ptr<grpc::Channel> follower;
  for (const std::string& address : addresses) {
    ASSIGN_OR_RETURN(auto ch, DialMutualTls(config.tls(), address, identity));
    if (addresses.size() == 1) return gwmirror::v1::Control::NewStub(ch);
    auto health = grpc::health::v1::Health::NewStub(ch);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(gwmirror::v1::Control::service_full_name());
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    absl::Status st = FromGrpc(
        health->Check(WithDeadline(&ctx, absl::Seconds(3)), req, &resp));
    if (st.ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return gwmirror::v1::Control::NewStub(ch);
    }
    if (st.ok() && follower == nullptr) follower = ch;
    tried.push_back(absl::StrCat(
        address, ": ", st.ok() ? "follows, does not lead" : st.message()));
  }
  if (follower != nullptr) return gwmirror::v1::Control::NewStub(follower);
  return absl::UnavailableError(absl::StrCat(
      "no coordinator answers (none leads: their sites lost, or etcd without "
      "a majority?): ",
      absl::StrJoin(tried, "; "),
      ". A promote can still be forced from the standby side: `gwmirror "
      "promote --force` (docs/OPERATIONS.md)"));
}

namespace {

// The coordinator's Control service, from --config or $GWMIRROR_CONFIG.
absl::StatusOr<std::unique_ptr<gwmirror::v1::Control::Stub>> ControlFor(
    const Args& a) {
  ASSIGN_OR_RETURN(auto config, LoadCliConfig(a));
  return DialControl(config);
}

}  // namespace

absl::Status StatusCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  if (!a.Has("watch")) return PrintStatus(stub.get(), a.Has("json"));
  // Refresh in place until interrupted.
  for (;;) {
    std::cout << "\033[H\033[2J" << UnixMsText(absl::ToUnixMillis(absl::Now()))
              << "\n";
    absl::Status st = PrintStatus(stub.get(), a.Has("json"));
    if (!st.ok()) std::cout << "coordinator: " << st.message() << "\n";
    std::cout.flush();
    absl::SleepFor(absl::Seconds(1));
  }
}

absl::Status CoverageCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  ASSIGN_OR_RETURN(gwmirror::v1::ClusterStatus s, FetchStatus(stub.get()));
  if (a.Has("json")) {
    gwmirror::v1::ClusterStatus only;
    *only.mutable_coverage() = s.coverage();
    only.set_unprotected_connections(s.unprotected_connections());
    std::cout << ToJson(only) << "\n";
    return absl::OkStatus();
  }
  if (s.coverage().empty()) {
    std::cout << "No external connections: production's deployments name "
                 "none (or no production node has reported yet).\n";
    return absl::OkStatus();
  }
  // One block per slot, group and deployment, one line per connection.
  std::string block;
  for (const auto& row : s.coverage()) {
    const auto& c = row.connection();
    std::string head =
        absl::StrCat(row.slot(), " ", c.group(), " deployment ", c.archive(),
                     " (", absl::StrJoin(c.instances(), ", "), ")");
    if (head != block) {
      std::cout << head << "\n";
      block = head;
    }
    std::cout << absl::StrFormat(
        "  %-11s %s \"%s\" %s%s%s\n", row.state(), c.type(), c.name(),
        c.url().empty() ? "(no URL)" : c.url(),
        c.has_password() ? " [password set]" : "",
        !row.covered_by().empty() ? absl::StrCat(" <- ", row.covered_by())
        : !c.problem().empty()    ? absl::StrCat(": ", c.problem())
                                  : "");
  }
  std::cout << absl::StrFormat(
      "%d connection(s), %d holding state that nothing protects%s\n",
      s.coverage_size(), s.unprotected_connections(),
      s.unprotected_connections() > 0
          ? ": add a dump job, or declare what protects it in the "
            "coordinator's \"external\" list (docs/OPERATIONS.md)"
          : "");
  return absl::OkStatus();
}

absl::StatusOr<int> StatusCheckCommand(const Args& a) {
  auto stub = ControlFor(a);
  absl::StatusOr<gwmirror::v1::ClusterStatus> got =
      stub.ok() ? FetchStatus(stub->get()) : stub.status();
  if (!got.ok()) {
    std::cout << "gwmirror UNKNOWN: " << got.status().message() << "\n";
    return 3;
  }
  const gwmirror::v1::ClusterStatus& s = *got;
  std::cout << absl::StrFormat(
      "gwmirror %s%s | rpo=%ds slots_not_ok=%d\n", s.state(),
      s.state_reason().empty() ? "" : ": " + s.state_reason(),
      s.rpo_ms() < 0 ? 0 : s.rpo_ms() / 1000,
      std::count_if(s.slots().begin(), s.slots().end(),
                    [](const auto& slot) { return slot.state() != "OK"; }));
  return CheckExitCode(s.state());
}

namespace {

// While alive, asks the coordinator for its status once a second on a
// thread of its own and hands each answer to `on_status`: the progress
// lines of commands that wait for long work.
class StatusPoller {
 public:
  StatusPoller(
      const Args& a,
      std::function<void(const gwmirror::v1::ClusterStatus&)> on_status)
      : thread_([this, &a, on_status = std::move(on_status)] {
          auto stub = ControlFor(a);
          while (stub.ok() &&
                 !done_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
            gwmirror::v1::ClusterStatus s;
            grpc::ClientContext c;
            if ((*stub)
                    ->Status(WithDeadline(&c, absl::Seconds(5)),
                             gwmirror::v1::StatusRequest(), &s)
                    .ok()) {
              on_status(s);
            }
          }
        }) {}
  ~StatusPoller() {
    done_.Notify();
    thread_.join();
  }

 private:
  absl::Notification done_;
  std::thread thread_;
};

// The slots' pushes (or drills) under way, summed; the step is the least
// advanced slot's.
gwmirror::v1::SyncProgress SumProgress(const gwmirror::v1::ClusterStatus& s,
                                       bool drills) {
  static const std::map<std::string, int> kOrder = {
      {"push", 0}, {"restore", 0}, {"databases", 1}, {"smoke", 2}};
  gwmirror::v1::SyncProgress sum;
  int rank = 3;
  for (const auto& slot : s.slots()) {
    if (drills ? !slot.has_drill() : !slot.has_progress()) continue;
    const auto& p = drills ? slot.drill() : slot.progress();
    sum.set_files_done(sum.files_done() + p.files_done());
    sum.set_files_total(sum.files_total() + p.files_total());
    sum.set_bytes_done(sum.bytes_done() + p.bytes_done());
    sum.set_bytes_total(sum.bytes_total() + p.bytes_total());
    if (sum.started_unix_ms() == 0 ||
        p.started_unix_ms() < sum.started_unix_ms()) {
      sum.set_started_unix_ms(p.started_unix_ms());
    }
    auto it = kOrder.find(p.step());
    if (it != kOrder.end() && it->second < rank) {
      rank = it->second;
      sum.set_step(p.step());
    }
  }
  return sum;
}

}  // namespace

absl::Status CheckpointCreateCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::CreateCheckpointRequest req;
  req.set_wait(a.Has("wait"));
  gwmirror::v1::CheckpointInfo info;
  grpc::ClientContext ctx;
  absl::Status st;
  {
    // While waiting: the pushes under way (an initial sync or a large
    // change).
    std::optional<Progress> line;
    std::optional<StatusPoller> poll;
    if (req.wait()) {
      line.emplace("checkpoint");
      poll.emplace(a, [&](const gwmirror::v1::ClusterStatus& s) {
        gwmirror::v1::SyncProgress sum = SumProgress(s, /*drills=*/false);
        line->Set(sum.files_total() > 0
                      ? "sending " + ProgressLine(sum, absl::Now())
                      : "");
      });
    }
    st = FromGrpc(
        stub->CreateCheckpoint(WithDeadline(&ctx, absl::Hours(1)), req, &info));
  }
  RETURN_IF_ERROR(st);
  if (a.Has("json")) {
    std::cout << ToJson(info) << "\n";
  } else if (!req.wait()) {
    std::cout << "checkpoint requested\n";
  } else {
    std::cout << absl::StrFormat("checkpoint %d %s (cut %s)\n", info.id(),
                                 StateName(info.state()),
                                 UnixMsText(info.cut_unix_ms()));
  }
  return absl::OkStatus();
}

absl::Status ReleaseCommand(const Args& a) {
  ASSIGN_OR_RETURN(std::string slot, a.Require("slot"));
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::ReleaseRequest req;
  req.set_slot(slot);
  gwmirror::v1::ReleaseResponse resp;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(FromGrpc(
      stub->Release(WithDeadline(&ctx, absl::Seconds(20)), req, &resp)));
  std::cout << "released: the next checkpoint applies slot " << slot
            << "'s deletions\n";
  return absl::OkStatus();
}

absl::Status CheckpointsCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::ListCheckpointsRequest req;
  req.set_retained(!a.Has("all"));
  gwmirror::v1::CheckpointList list;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(FromGrpc(
      stub->ListCheckpoints(WithDeadline(&ctx, absl::Minutes(2)), req, &list)));
  if (a.Has("json")) {
    std::cout << ToJson(list) << "\n";
    return absl::OkStatus();
  }
  if (!req.retained()) {
    for (const auto& c : list.checkpoints()) {
      std::cout << absl::StrFormat("%d %s epoch %d cut %s applied %s\n", c.id(),
                                   StateName(c.state()), c.epoch(),
                                   UnixMsText(c.cut_unix_ms()),
                                   UnixMsText(c.applied_unix_ms()));
    }
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat("%-6s %-10s %-20s %-20s %10s  %s\n", "ID",
                               "STATE", "CUT", "ON STANDBY", "ON DISK",
                               "CHANGES (added ~changed -removed)");
  for (const auto& c : list.checkpoints()) {
    std::cout << absl::StrFormat(
        "%-6d %-10s %-20s %-20s %10s  +%d ~%d -%d%s\n", c.id(),
        StateName(c.state()), UnixMsText(c.cut_unix_ms()),
        UnixMsText(c.committed_unix_ms()),
        absl::StrFormat("%.1f KiB", c.bytes_on_disk() / 1024.0), c.added(),
        c.changed(), c.removed(), c.pinned() ? "  pinned" : "");
  }
  return absl::OkStatus();
}

absl::Status PinCommand(const Args& a) {
  ASSIGN_OR_RETURN(uint64_t n, a.RequireUint("checkpoint"));
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::PinRequest req;
  req.set_checkpoint(n);
  req.set_unpin(a.Has("unpin"));
  gwmirror::v1::PinResponse resp;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(
      FromGrpc(stub->Pin(WithDeadline(&ctx, absl::Minutes(2)), req, &resp)));
  std::cout << "pinned checkpoints: "
            << (resp.pinned().empty() ? "none"
                                      : absl::StrJoin(resp.pinned(), ", "))
            << "\n";
  return absl::OkStatus();
}

absl::Status VerifyCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::VerifyClusterRequest req;
  req.set_repair(a.Has("repair"));
  gwmirror::v1::VerifyReport r;
  {
    Progress progress("verify");
    grpc::ClientContext ctx;
    RETURN_IF_ERROR(
        FromGrpc(stub->Verify(WithDeadline(&ctx, absl::Hours(4)), req, &r)));
  }
  if (a.Has("json")) {
    std::cout << ToJson(r) << "\n";
  } else {
    for (const auto& s : r.slots()) {
      if (!s.error().empty()) {
        std::cout << absl::StrFormat("%s (%s): NOT VERIFIED: %s\n", s.slot(),
                                     s.identity(), s.error());
        continue;
      }
      const auto& v = s.result();
      std::cout << absl::StrFormat(
          "%s (%s): checkpoint %d, %d files and %d stored versions re-read, "
          "%d problem(s)\n",
          s.slot(), s.identity(), v.committed_checkpoint(), v.files_checked(),
          v.versions_checked(), v.problems_size());
      for (const auto& p : v.problems()) std::cout << "  - " << p << "\n";
      for (const auto& p : v.repaired()) {
        std::cout << "  repaired: " << p << "\n";
      }
    }
    if (r.repair_checkpoint() != 0) {
      std::cout << "checkpoint " << r.repair_checkpoint()
                << " brought good copies from the sources\n";
    }
    for (const auto& u : r.unrepaired()) {
      std::cout << "NOT REPAIRED: " << u << "\n";
    }
  }
  if (r.ok()) return absl::OkStatus();
  bool fixed = req.repair() && r.unrepaired().empty();
  for (const auto& s : r.slots()) fixed = fixed && s.error().empty();
  if (fixed) return absl::OkStatus();
  return absl::DataLossError(req.repair() ? "verify found damage it could "
                                            "not repair"
                                          : "verify found problems; "
                                            "`gwmirror verify --repair` "
                                            "fixes what can be fixed");
}

absl::Status DrillCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::StartDrillRequest req;
  ASSIGN_OR_RETURN(uint64_t checkpoint, a.UintOr("checkpoint", 0));
  req.set_checkpoint(checkpoint);
  if (auto smoke = a.Get("smoke")) {
    if (smoke->empty()) {
      return absl::InvalidArgumentError("--smoke needs a command");
    }
    for (const char* s : {"/bin/sh", "-c"}) req.add_smoke(s);
    req.add_smoke(*smoke);
  }
  gwmirror::v1::DrillReport report;
  {
    // While waiting: how far the standby nodes' drills are.
    Progress progress("drill");
    StatusPoller poll(a, [&](const gwmirror::v1::ClusterStatus& s) {
      progress.Set(DrillLine(SumProgress(s, /*drills=*/true), absl::Now()));
    });
    grpc::ClientContext ctx;
    RETURN_IF_ERROR(FromGrpc(
        stub->Drill(WithDeadline(&ctx, absl::Hours(2)), req, &report)));
  }
  if (a.Has("json")) {
    std::cout << ToJson(report) << "\n";
  } else {
    PrintDrill(report);
  }
  if (!report.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("drill ", report.id(), " failed: ", report.error()));
  }
  return absl::OkStatus();
}

absl::Status DrillsCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::DrillList list;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(
      FromGrpc(stub->ListDrills(WithDeadline(&ctx, absl::Seconds(20)),
                                gwmirror::v1::ListDrillsRequest(), &list)));
  if (a.Has("json")) {
    std::cout << ToJson(list) << "\n";
    return absl::OkStatus();
  }
  for (const auto& d : list.drills()) PrintDrill(d);
  return absl::OkStatus();
}

absl::Status AuditCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::AuditRequest req;
  ASSIGN_OR_RETURN(uint64_t limit, a.UintOr("limit", 100));
  req.set_limit(limit);
  gwmirror::v1::AuditList list;
  grpc::ClientContext ctx;
  RETURN_IF_ERROR(
      FromGrpc(stub->Audit(WithDeadline(&ctx, absl::Seconds(20)), req, &list)));
  if (a.Has("json")) {
    std::cout << ToJson(list) << "\n";
  } else {
    for (const auto& r : list.records()) {
      std::cout << absl::StrFormat(
          "%s  %s (%s)%s  %s%s  %s  [epoch %d]\n", UnixMsText(r.unix_ms()),
          r.identity(), r.role(),
          r.node().empty() ? "" : absl::StrCat(" on ", r.node()), r.action(),
          r.detail().empty() ? "" : absl::StrCat(": ", r.detail()), r.outcome(),
          r.epoch());
    }
    std::cout << (list.chain_intact()
                      ? "audit log chain intact\n"
                      : absl::StrCat("AUDIT LOG CHAIN BROKEN: ",
                                     list.chain_problem(), "\n"));
  }
  if (!list.chain_intact()) {
    return absl::DataLossError(list.chain_problem());
  }
  return absl::OkStatus();
}

namespace {

void PrintSwitch(const gwmirror::v1::PromoteReport& r, const char* done) {
  for (const auto& step : r.steps()) {
    std::cout << step.name() << " (" << SecondsText(step.ms(), "never")
              << ")\n";
    for (const auto& line : step.done()) std::cout << "  " << line << "\n";
  }
  std::cout << absl::StrFormat(
      "%s: checkpoint %d, RTO %s, RPO %s; epoch %d, active %s, fenced %s\n",
      r.dry_run() ? "dry run, nothing changed"
                  : (r.error().empty() ? done : "SWITCH INCOMPLETE"),
      r.checkpoint(), SecondsText(r.rto_ms(), "never"),
      SecondsText(r.rpo_ms(), "never"), r.epoch(), r.active_site(),
      r.fenced_site().empty() ? "-" : r.fenced_site());
}

// Asks on a terminal (unless --yes or --dry-run) for the name of the site
// that becomes active.
absl::Status Confirm(const Args& a, gwmirror::v1::Control::Stub* stub,
                     const char* what) {
  if (a.Has("dry-run") || a.Has("yes")) return absl::OkStatus();
  if (!isatty(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     " changes which site is production: confirm with --yes "
                     "when not on a terminal (or try --dry-run)"));
  }
  ASSIGN_OR_RETURN(gwmirror::v1::ClusterStatus s, FetchStatus(stub));
  std::string target;
  for (const auto& site : s.sites()) {
    if (site != s.active_site() && target.empty()) target = site;
  }
  std::cout << absl::StrCat(what, ": make site ", target, " active and fence ",
                            s.active_site(), " (epoch ", s.epoch(), " -> ",
                            s.epoch() + 1, ")? Type \"", target,
                            "\" to confirm: ")
            << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != target) return absl::CancelledError("not confirmed");
  return absl::OkStatus();
}

absl::Status SwitchResult(const Args& a, const gwmirror::v1::PromoteReport& r,
                          const char* done) {
  if (a.Has("json")) {
    std::cout << ToJson(r) << "\n";
  } else {
    PrintSwitch(r, done);
  }
  if (!r.error().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the switch stands (", r.active_site(), " is active, ", r.fenced_site(),
        " fenced) but a step failed: ", r.error()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PromoteCommand(const Args& a) {
  if (a.Has("force")) return ForcePromoteCommand(a);
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::PromoteRequest req;
  req.set_dry_run(a.Has("dry-run"));
  ASSIGN_OR_RETURN(uint64_t checkpoint, a.UintOr("checkpoint", 0));
  req.set_checkpoint(checkpoint);
  RETURN_IF_ERROR(Confirm(a, stub.get(), "promote"));
  gwmirror::v1::PromoteReport r;
  {
    Progress progress("promote");
    StatusPoller poll(a, [&](const gwmirror::v1::ClusterStatus& s) {
      progress.Set(s.operation());
    });
    grpc::ClientContext ctx;
    RETURN_IF_ERROR(
        FromGrpc(stub->Promote(WithDeadline(&ctx, absl::Hours(2)), req, &r)));
  }
  return SwitchResult(a, r, "promoted");
}

absl::Status FailbackCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto stub, ControlFor(a));
  gwmirror::v1::FailbackRequest req;
  req.set_dry_run(a.Has("dry-run"));
  RETURN_IF_ERROR(Confirm(a, stub.get(), "failback"));
  gwmirror::v1::PromoteReport r;
  {
    Progress progress("failback");
    StatusPoller poll(a, [&](const gwmirror::v1::ClusterStatus& s) {
      progress.Set(s.operation());
    });
    grpc::ClientContext ctx;
    RETURN_IF_ERROR(
        FromGrpc(stub->Failback(WithDeadline(&ctx, absl::Hours(2)), req, &r)));
  }
  return SwitchResult(a, r, "failed back");
}

}  // namespace gwmirror
