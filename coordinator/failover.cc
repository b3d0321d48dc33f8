// Failover: promote (the standby site becomes active, fenced by the epoch)
// and failback (a final checkpoint, then the promote back).
#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"

namespace gwmirror {

using coordinator_internal::Or;
using coordinator_internal::Short;
using gwmirror::v1::CheckpointInfo;
using gwmirror::v1::TopologyReport;

Coordinator::OperationScope::OperationScope(Coordinator* c,
                                            const std::string& kind)
    : c_(c) {
  absl::MutexLock l(&c->mu_);
  owner_ = c->operation_.empty();
  if (!owner_) return;
  c->operation_ = kind;
  c->operation_step_.clear();
  c->operation_steps_ = 0;
  c->operation_since_ = c->clock_->Now();
}

Coordinator::OperationScope::~OperationScope() {
  if (!owner_) return;
  absl::MutexLock l(&c_->mu_);
  c_->operation_.clear();
}

void Coordinator::NoteStep(const std::string& name) {
  absl::MutexLock l(&mu_);
  operation_step_ = name;
  ++operation_steps_;
}

absl::StatusOr<gwmirror::v1::PromoteReport> Coordinator::Promote(
    const gwmirror::v1::PromoteRequest& req, bool final_pending) {
  OperationScope operation(this, "promote");
  // No checkpoint runs meanwhile; a consistent one is applied first.
  absl::MutexLock cl(&runner_.serial());
  RETURN_IF_ERROR(runner_.ResumeLocked());
  const absl::Time start = clock_->Now();
  const std::string active = store_->ActiveSite();
  const std::string target = StandbySite();
  if (target.empty()) {
    return absl::FailedPreconditionError("no other site to promote");
  }
  ASSIGN_OR_RETURN(std::vector<NodeView> nodes, registry_.SiteNodes(target));
  gwmirror::v1::CheckpointInfo cp;
  if (req.checkpoint() != 0) {
    auto known = store_->Get(req.checkpoint());
    if (!known.ok() ||
        (known->state() != gwmirror::v1::CHECKPOINT_STATE_CONSISTENT &&
         known->state() != gwmirror::v1::CHECKPOINT_STATE_APPLIED)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", req.checkpoint(), " is not a consistent checkpoint",
          known.ok() ? absl::StrCat(" (", StateName(known->state()), ")")
                     : ""));
    }
    ASSIGN_OR_RETURN(auto retained, Retained(nodes, nullptr));
    if (retained.count(req.checkpoint()) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", req.checkpoint(),
                       " is not retained on every standby node; "
                       "`gwmirror checkpoints` lists those that are"));
    }
    cp = *std::move(known);
  } else {
    ASSIGN_OR_RETURN(auto last, store_->List(1, /*committed_only=*/true));
    if (last.empty()) {
      return absl::FailedPreconditionError(
          "no consistent checkpoint yet: nothing to promote to");
    }
    cp = last.front();
  }
  gwmirror::v1::PromoteReport report;
  report.set_dry_run(req.dry_run());
  report.set_checkpoint(cp.id());
  report.set_rpo_ms(
      std::max<int64_t>(0, absl::ToUnixMillis(start) - cp.cut_unix_ms()));
  uint64_t epoch = store_->Epoch();
  auto step = [&](const std::string& name) {
    NoteStep(name);
    gwmirror::v1::PromoteStep* s = report.add_steps();
    s->set_name(name);
    return s;
  };
  // One activation phase on every standby node.
  auto phase = [&](const std::string& name,
                   gwmirror::v1::ActivationPhase what) {
    return ActivateAll(nodes, epoch, what, cp.id(), step(name));
  };
  // 1. The standby trees hold the checkpoint.
  {
    absl::Time t = clock_->Now();
    gwmirror::v1::PromoteStep* s = step("check standby trees");
    for (const NodeView& node : nodes) {
      const NodeRecord& n = *node;
      auto got = nodes_client_->State(n.ref(), epoch, absl::Seconds(10));
      if (!got.ok()) {
        // A partition between this coordinator and the standby site: the
        // epoch is not raised, nothing changed, production stays active.
        return absl::UnavailableError(absl::StrCat(
            "standby ", n.member->slot(), " (", n.member->identity(),
            ") cannot be reached: ", got.status().message(),
            ". Nothing changed; ", active,
            " is still active. Retry once the link is back; if the site of "
            "this coordinator is lost, promote from the standby side with "
            "`gwmirror promote --force`"));
      }
      const gwmirror::v1::ReplicaState& state = *got;
      if (req.checkpoint() != 0) {
        s->add_done(absl::StrCat(
            n.member->slot(), ": ", n.member->identity(), " holds checkpoint ",
            state.committed_checkpoint(), ", retains ", cp.id()));
        continue;
      }
      if (state.committed_checkpoint() != cp.id() && final_pending) {
        s->add_done(
            absl::StrCat(n.member->slot(), ": ", n.member->identity(),
                         " holds checkpoint ", state.committed_checkpoint(),
                         "; the final checkpoint brings it up to date"));
        continue;
      }
      if (state.committed_checkpoint() != cp.id()) {
        return absl::FailedPreconditionError(
            absl::StrCat("standby ", n.member->slot(), " holds checkpoint ",
                         state.committed_checkpoint(),
                         ", not the last consistent ", cp.id()));
      }
      s->add_done(absl::StrCat(n.member->slot(), ": ", n.member->identity(),
                               " holds checkpoint ", cp.id()));
    }
    s->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
  }
  if (req.dry_run()) {
    step("raise epoch")
        ->add_done(absl::StrCat("epoch ", epoch + 1, ": ", target, " active, ",
                                active, " fenced"));
    if (req.checkpoint() != 0) {
      step("bring trees to checkpoint")
          ->add_done(absl::StrCat("every standby tree back to checkpoint ",
                                  cp.id(), " from its history"));
    }
    RETURN_IF_ERROR(phase("would run", gwmirror::v1::ACTIVATION_PHASE_DRY_RUN));
    if (!config_.traffic_switch().empty()) {
      step("traffic switch")
          ->add_done(absl::StrJoin(config_.traffic_switch(), " "));
    }
    report.set_epoch(epoch);
    report.set_active_site(active);
    report.set_fenced_site(store_->FencedSite());
    report.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
    return report;
  }
  // 2. The commit point of a promote: one transaction.
  {
    absl::Time t = clock_->Now();
    gwmirror::v1::PromoteStep* s = step("raise epoch");
    ASSIGN_OR_RETURN(epoch, store_->SwitchActive(target));
    runner_.NoteRolesSwitched();
    // Without its proof the nodes would refuse the new epoch: the raise
    // stands in the state (a restart signs it), but say so now.
    RETURN_IF_ERROR(SignGrant());
    s->add_done(absl::StrCat("epoch ", epoch, ": ", target, " active, ", active,
                             " fenced"));
    s->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
    Logf(LogLevel::kWarning, "coordinator",
         "promote: epoch %d, %s active, %s fenced (checkpoint %d)", epoch,
         target, active, cp.id());
  }
  report.set_epoch(epoch);
  report.set_active_site(target);
  report.set_fenced_site(active);
  absl::Status st;
  if (req.checkpoint() != 0) {
    st = phase("bring trees to checkpoint",
               gwmirror::v1::ACTIVATION_PHASE_ROLLBACK);
  }
  if (st.ok())
    st = phase("restore databases", gwmirror::v1::ACTIVATION_PHASE_RESTORE);
  if (st.ok())
    st =
        phase("apply site overrides", gwmirror::v1::ACTIVATION_PHASE_OVERRIDES);
  if (st.ok())
    st = phase("start node managers",
               gwmirror::v1::ACTIVATION_PHASE_NODE_MANAGERS);
  if (st.ok())
    st = phase("start instances", gwmirror::v1::ACTIVATION_PHASE_INSTANCES);
  if (st.ok() && !config_.traffic_switch().empty()) {
    absl::Time t = clock_->Now();
    gwmirror::v1::PromoteStep* s = step("traffic switch");
    ProcessSpec spec;
    spec.argv.assign(config_.traffic_switch().begin(),
                     config_.traffic_switch().end());
    spec.timeout = absl::Seconds(120);
    spec.env.emplace_back("GWMIRROR_ACTIVE_SITE", target);
    auto r = RunProcess(spec);
    if (!r.ok()) {
      st = r.status();
    } else if (r->exit_code != 0 || r->timed_out) {
      st = absl::FailedPreconditionError(
          absl::StrCat("traffic switch failed: ", Describe(*r)));
    } else {
      s->add_done(absl::StrJoin(config_.traffic_switch(), " "));
    }
    s->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
  }
  if (!st.ok()) report.set_error(std::string(st.message()));
  report.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
  Logf(st.ok() ? LogLevel::kInfo : LogLevel::kError, "coordinator",
       "promote to %s %s in %d ms%s", target, st.ok() ? "done" : "INCOMPLETE",
       report.rto_ms(), st.ok() ? "" : absl::StrCat(": ", st.message()));
  return report;
}

absl::Status Coordinator::ActivateAll(const std::vector<NodeView>& nodes,
                                      uint64_t epoch,
                                      gwmirror::v1::ActivationPhase phase,
                                      uint64_t checkpoint,
                                      gwmirror::v1::PromoteStep* step) {
  const absl::Time t = clock_->Now();
  std::vector<absl::StatusOr<std::vector<std::string>>> out(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    out[i] = nodes_client_->Activate(nodes[i]->ref(), epoch, phase, checkpoint);
  });
  absl::Status st;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& slot = nodes[i]->member->slot();
    if (!out[i].ok()) {
      st.Update(
          absl::Status(out[i].status().code(),
                       absl::StrCat(slot, ": ", out[i].status().message())));
      continue;
    }
    for (const std::string& line : *out[i]) {
      step->add_done(absl::StrCat(slot, ": ", line));
    }
  }
  step->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
  return st;
}

absl::StatusOr<gwmirror::v1::PromoteReport> Coordinator::Failback(
    const gwmirror::v1::FailbackRequest& req) {
  OperationScope operation(this, "failback");
  const std::string back = store_->FencedSite();
  const std::string active = store_->ActiveSite();
  if (back.empty()) {
    return absl::FailedPreconditionError(
        "no promote fenced a site yet: nothing to fail back to (promote "
        "is the way to switch sites)");
  }
  ASSIGN_OR_RETURN(std::vector<NodeView> returning, registry_.SiteNodes(back));
  ASSIGN_OR_RETURN(std::vector<NodeView> current, registry_.SiteNodes(active));
  const absl::Time start = clock_->Now();
  const uint64_t epoch = store_->Epoch();
  // The returning nodes must take pushes before anything stops: a node
  // that was a source re-reads its tree first.
  for (const NodeView& node : returning) {
    const NodeRecord& n = *node;
    for (absl::Time give_up = clock_->Now() + absl::Seconds(60);;) {
      ASSIGN_OR_RETURN(gwmirror::v1::ReplicaState state,
                       nodes_client_->State(n.ref(), epoch, absl::Seconds(10)));
      if (!state.stale()) break;
      if (clock_->Now() > give_up) {
        return absl::UnavailableError(
            absl::StrCat(n.member->identity(),
                         " is still re-reading its tree as a "
                         "replica; fail back once it is done"));
      }
      clock_->SleepFor(absl::Milliseconds(200));
    }
  }
  std::vector<gwmirror::v1::PromoteStep> before;
  // One activation phase on every node of the active site.
  auto on_active = [&](const std::string& name,
                       gwmirror::v1::ActivationPhase phase) {
    NoteStep(name);
    before.emplace_back().set_name(name);
    return ActivateAll(current, epoch, phase, 0, &before.back());
  };
  if (req.dry_run()) {
    gwmirror::v1::PromoteStep step;
    step.set_name("quiesce and final checkpoint");
    step.add_done(absl::StrCat("stop instances, then Node Managers, on ",
                               active, "; a final checkpoint to ", back));
    before.push_back(step);
  } else {
    absl::Status st = on_active("stop instances",
                                gwmirror::v1::ACTIVATION_PHASE_STOP_INSTANCES);
    if (st.ok())
      st = on_active("stop node managers",
                     gwmirror::v1::ACTIVATION_PHASE_STOP_NODE_MANAGERS);
    absl::Time t = clock_->Now();
    if (st.ok()) NoteStep("final checkpoint");
    absl::StatusOr<gwmirror::v1::CheckpointInfo> final_cp =
        st.ok() ? RunCheckpoint()
                : absl::StatusOr<gwmirror::v1::CheckpointInfo>(st);
    if (!final_cp.ok()) {
      // Nothing switched: the active site runs again.
      absl::Status restart =
          on_active("restart node managers",
                    gwmirror::v1::ACTIVATION_PHASE_NODE_MANAGERS);
      if (restart.ok())
        restart = on_active("restart instances",
                            gwmirror::v1::ACTIVATION_PHASE_INSTANCES);
      return absl::AbortedError(absl::StrCat(
          "failback aborted, nothing switched: ", final_cp.status().message(),
          restart.ok()
              ? absl::StrCat("; ", active, "'s gateway restarted")
              : absl::StrCat("; restarting ", active,
                             "'s gateway FAILED too: ", restart.message())));
    }
    gwmirror::v1::PromoteStep step;
    step.set_name("final checkpoint");
    step.add_done(
        absl::StrCat("checkpoint ", final_cp->id(), " applied on ", back));
    step.set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
    before.push_back(step);
  }
  gwmirror::v1::PromoteRequest promote;
  promote.set_dry_run(req.dry_run());
  ASSIGN_OR_RETURN(gwmirror::v1::PromoteReport report,
                   Promote(promote, /*final_pending=*/req.dry_run()));
  gwmirror::v1::PromoteReport out = report;
  out.clear_steps();
  for (auto& s : before) *out.add_steps() = std::move(s);
  for (const auto& s : report.steps()) *out.add_steps() = s;
  out.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
  // Nothing written on the active site was left behind.
  if (!req.dry_run()) out.set_rpo_ms(0);
  return out;
}

std::string Coordinator::StandbySite() const {
  const std::string active = store_->ActiveSite();
  for (const auto& s : config_.sites()) {
    if (s != active) return s;
  }
  return "";
}

}  // namespace gwmirror
