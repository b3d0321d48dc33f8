// gwmirror promote --force: the break-glass promote for the day the
// coordinator is gone with the production site. The CLI speaks to the
// standby nodes directly (operator certificate), works from what they hold
// locally, and refuses when they disagree on the last committed checkpoint
// unless told which retained one to use. Each node records its claim of
// the active role at the new epoch; a coordinator that comes back adopts it.
#include <unistd.h>

#include <iostream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/epoch.h"
#include "common/grpc_status.h"
#include "common/replica_call.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gwmirror/v1/replica.grpc.pb.h"

namespace gwmirror {
namespace {

struct StandbyNode {
  std::string identity, address;
  std::unique_ptr<gwmirror::v1::Replica::Stub> stub;
  gwmirror::v1::ReplicaState state;
  gwmirror::v1::HistoryList history;
};

template <typename Resp, typename Req, typename Method>
absl::StatusOr<Resp> Call(StandbyNode& n,
                          const gwmirror::v1::Envelope& envelope, Req req,
                          absl::Duration timeout, Method method) {
  return CallReplica<Resp>(*n.stub, method, std::move(req), envelope, timeout,
                           n.identity);
}

gwmirror::v1::Envelope AtEpoch(uint64_t epoch) {
  gwmirror::v1::Envelope e;
  e.set_epoch(epoch);
  return e;
}

}  // namespace

absl::Status ForcePromoteCommand(const Args& a) {
  ASSIGN_OR_RETURN(auto listed, a.RequireNodes("standby-node"));
  ASSIGN_OR_RETURN(uint64_t wanted, a.UintOr("checkpoint", 0));
  ASSIGN_OR_RETURN(auto config, LoadCliConfig(a));
  const bool dry_run = a.Has("dry-run");
  const absl::Time start = absl::Now();
  std::vector<StandbyNode> nodes;
  for (auto& [identity, address] : listed) {
    StandbyNode n;
    n.identity = identity;
    n.address = address;
    ASSIGN_OR_RETURN(auto ch,
                     DialMutualTls(config.tls(), n.address, n.identity));
    n.stub = gwmirror::v1::Replica::NewStub(ch);
    nodes.push_back(std::move(n));
  }
  // What each node holds, read without knowing the epoch.
  uint64_t max_epoch = 0;
  std::map<uint64_t, std::vector<std::string>> committed;
  std::set<std::string> sites;
  for (StandbyNode& n : nodes) {
    ASSIGN_OR_RETURN(
        n.state,
        Call<gwmirror::v1::ReplicaState>(
            n, AtEpoch(0), gwmirror::v1::GetStateRequest(), absl::Seconds(20),
            &gwmirror::v1::Replica::Stub::GetState));
    ASSIGN_OR_RETURN(
        n.history,
        Call<gwmirror::v1::HistoryList>(
            n, AtEpoch(0), gwmirror::v1::ListHistoryRequest(), absl::Minutes(2),
            &gwmirror::v1::Replica::Stub::ListHistory));
    max_epoch = std::max(max_epoch, n.state.epoch());
    committed[n.state.committed_checkpoint()].push_back(n.identity);
    sites.insert(n.state.site());
  }
  if (sites.size() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the nodes named are on different sites (", absl::StrJoin(sites, ", "),
        "): a forced promote makes one site active"));
  }
  uint64_t target = wanted;
  if (target == 0) {
    if (committed.size() > 1) {
      std::vector<std::string> who;
      for (const auto& [cp, ids] : committed) {
        who.push_back(absl::StrCat(absl::StrJoin(ids, ", "), ": ", cp));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "the standby nodes disagree on the last committed checkpoint (",
          absl::StrJoin(who, "; "),
          "): name the one to promote to with --checkpoint N (every node "
          "must retain it; `gwmirror replica` or the nodes' logs show what "
          "they hold)"));
    }
    target = committed.begin()->first;
  }
  int64_t committed_ms = 0;
  for (StandbyNode& n : nodes) {
    bool retained = false;
    for (const auto& p : n.history.points()) {
      if (p.checkpoint() != target) continue;
      retained = true;
      committed_ms = std::max(committed_ms, p.committed_unix_ms());
    }
    if (!retained) {
      return absl::FailedPreconditionError(
          absl::StrCat(n.identity, " does not retain checkpoint ", target,
                       ": it cannot be promoted to it"));
    }
  }
  const uint64_t epoch = max_epoch + 1;
  if (!dry_run && !a.Has("yes")) {
    if (!isatty(0)) {
      return absl::InvalidArgumentError(
          "a forced promote makes these nodes production without the "
          "coordinator: confirm with --yes when not on a terminal (or try "
          "--dry-run)");
    }
    std::cout << "FORCED promote of " << nodes.size()
              << " standby node(s) to checkpoint " << target << " at epoch "
              << epoch
              << ". Make sure the production site is really down. Type "
                 "\"force\" to confirm: "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "force") return absl::CancelledError("not confirmed");
  }
  gwmirror::v1::PromoteReport report;
  report.set_dry_run(dry_run);
  report.set_checkpoint(target);
  // The standby's commit time: the cut was earlier, so the true data-loss
  // window is at least this.
  report.set_rpo_ms(
      std::max<int64_t>(0, absl::ToUnixMillis(start) - committed_ms));
  {
    gwmirror::v1::PromoteStep* s = report.add_steps();
    s->set_name("check standby nodes");
    for (const StandbyNode& n : nodes) {
      s->add_done(absl::StrCat(n.identity, " holds checkpoint ",
                               n.state.committed_checkpoint(), ", retains ",
                               target, ", epoch ", n.state.epoch()));
    }
    s->set_ms(absl::ToInt64Milliseconds(absl::Now() - start));
  }
  // The proof of the new epoch: this operator's signed grant, which every
  // node checks before adopting it and the coordinator before it adopts
  // the claim.
  gwmirror::v1::Envelope raised = AtEpoch(epoch);
  if (!dry_run) {
    ASSIGN_OR_RETURN(
        *raised.mutable_grant(),
        SignEpochGrant(config.tls(), epoch, *sites.begin(), absl::Now()));
  }
  Progress progress("forced promote");
  // One phase on every node before the next.
  auto phase = [&](const std::string& name, gwmirror::v1::ActivationPhase what,
                   bool only_behind) -> absl::Status {
    absl::Time t = absl::Now();
    progress.Set(name);
    gwmirror::v1::PromoteStep* s = report.add_steps();
    s->set_name(name);
    for (StandbyNode& n : nodes) {
      if (only_behind && n.state.committed_checkpoint() == target) continue;
      gwmirror::v1::ActivateRequest req;
      req.set_phase(what);
      req.set_checkpoint(target);
      // A dry run leaves every epoch as it is.
      ASSIGN_OR_RETURN(
          auto r, Call<gwmirror::v1::ActivateResult>(
                      n, dry_run ? AtEpoch(n.state.epoch()) : raised, req,
                      absl::Hours(1), &gwmirror::v1::Replica::Stub::Activate));
      for (const std::string& line : r.done()) {
        s->add_done(absl::StrCat(n.identity, ": ", line));
      }
    }
    s->set_ms(absl::ToInt64Milliseconds(absl::Now() - t));
    return absl::OkStatus();
  };
  absl::Status st;
  if (dry_run) {
    report.add_steps()->set_name("raise epoch");
    report.mutable_steps()->rbegin()->add_done(absl::StrCat(
        "epoch ", epoch, ": these nodes' site active, claimed on each node"));
    st = phase("would run", gwmirror::v1::ACTIVATION_PHASE_DRY_RUN, false);
  } else {
    // The commit point: every node claims the active role at the new epoch
    // and refuses the old one from then on.
    st = phase("raise epoch and claim the active role",
               gwmirror::v1::ACTIVATION_PHASE_CLAIM_ACTIVE, false);
    if (st.ok()) {
      st = phase("bring trees to checkpoint",
                 gwmirror::v1::ACTIVATION_PHASE_ROLLBACK, /*only_behind=*/true);
    }
    if (st.ok())
      st = phase("restore databases", gwmirror::v1::ACTIVATION_PHASE_RESTORE,
                 false);
    if (st.ok())
      st = phase("apply site overrides",
                 gwmirror::v1::ACTIVATION_PHASE_OVERRIDES, false);
    if (st.ok())
      st = phase("start node managers",
                 gwmirror::v1::ACTIVATION_PHASE_NODE_MANAGERS, false);
    if (st.ok())
      st = phase("start instances", gwmirror::v1::ACTIVATION_PHASE_INSTANCES,
                 false);
  }
  if (!st.ok()) report.set_error(std::string(st.message()));
  report.set_epoch(dry_run ? max_epoch : epoch);
  report.set_active_site(dry_run ? "" : "this standby site");
  report.set_rto_ms(absl::ToInt64Milliseconds(absl::Now() - start));
  if (a.Has("json")) {
    std::cout << ToJson(report) << "\n";
  } else {
    for (const auto& step : report.steps()) {
      std::cout << step.name() << " (" << step.ms() << " ms)\n";
      for (const auto& line : step.done()) std::cout << "  " << line << "\n";
    }
    std::cout << absl::StrFormat(
        "%s: checkpoint %d, RTO %.1f s, RPO at least %.1f s; epoch %d\n",
        dry_run ? "dry run, nothing changed"
                : (st.ok() ? "promoted (forced)" : "FORCED PROMOTE INCOMPLETE"),
        target, report.rto_ms() / 1000.0, report.rpo_ms() / 1000.0,
        report.epoch());
    if (!dry_run) {
      std::cout << "the coordinator adopts epoch " << epoch
                << " and this site as active when it comes back; run any "
                   "traffic switch yourself\n";
    }
  }
  if (!st.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("forced promote incomplete: ", st.message()));
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
