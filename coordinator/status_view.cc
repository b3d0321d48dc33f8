// The status view: what operators see (`gwmirror status`) and what
// Prometheus scrapes, derived from the registry and the durable state.
#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/cluster_state.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/coverage.h"
#include "coordinator/follower.h"

namespace gwmirror {

using coordinator_internal::Or;
using coordinator_internal::Short;
using gwmirror::v1::CheckpointInfo;
using gwmirror::v1::TopologyReport;

gwmirror::v1::ClusterStatus Coordinator::Status() {
  gwmirror::v1::ClusterStatus s =
      StoreStatus(*store_, config_, absl::ToUnixMillis(clock_->Now()));
  *s.mutable_epoch_grant() = Stamp(s.epoch()).grant();
  {
    absl::MutexLock l(&grant_mu_);
    if (own_cert_.has_value()) {
      s.set_coordinator_identity(own_cert_->subject);
      s.set_coordinator_certificate_expires_unix_ms(
          absl::ToUnixMillis(own_cert_->not_after));
    }
  }
  ParityVerdict verdict = runner_.Parity(nullptr);
  s.set_parity(verdict.parity);
  for (const auto& d : verdict.differences) s.add_differences(d);
  const std::vector<NodeView> nodes = registry_.Snapshot();
  std::map<std::string, bool> healthy;
  const absl::Time now = clock_->Now();
  for (const NodeView& n : nodes) {
    healthy[n->member->identity()] = registry_.Healthy(*n, now);
  }
  const CheckpointRunner::Holds holds = runner_.CurrentHolds();
  const std::map<std::string, std::string>& held_slots = holds.slots;
  if (!holds.deployment.empty()) {
    s.set_held(holds.deployment);
    s.set_held_since_unix_ms(absl::ToUnixMillis(holds.deployment_since));
  }
  {
    absl::MutexLock l(&mu_);
    if (!operation_.empty()) {
      s.set_operation(absl::StrFormat(
          "%s: step %d, %s, %.1f s", operation_, operation_steps_,
          operation_step_.empty() ? "starting" : operation_step_,
          absl::ToDoubleSeconds(clock_->Now() - operation_since_)));
    }
  }
  std::map<std::string, gwmirror::v1::SlotStatus> slots;
  std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> states(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    if (nodes[i]->member->site() != s.active_site() &&
        healthy[nodes[i]->member->identity()]) {
      states[i] =
          nodes_client_->State(nodes[i]->ref(), s.epoch(), absl::Seconds(2));
    }
  });
  std::map<std::string, bool> replica_answered;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeRecord& n = *nodes[i];
    gwmirror::v1::SlotStatus& slot = slots[n.member->slot()];
    slot.set_name(n.member->slot());
    bool is_source = n.member->site() == s.active_site();
    gwmirror::v1::NodeStatus* ns =
        is_source ? slot.mutable_source() : slot.mutable_replica();
    ns->set_identity(n.member->identity());
    ns->set_site(n.member->site());
    ns->set_address(n.address);
    ns->set_healthy(healthy[n.member->identity()]);
    ns->set_heartbeat_age_ms(
        n.registered
            ? absl::ToInt64Milliseconds(clock_->Now() - n.last_heartbeat)
            : -1);
    ns->set_installed_version(n.report->installed_version());
    ns->set_send_rate(n.send_rate);
    ns->set_send_cap(n.send_cap);
    if (n.cert_not_after != absl::InfinitePast()) {
      ns->set_certificate_expires_unix_ms(absl::ToUnixMillis(n.cert_not_after));
    }
    if (!is_source) replica_answered[n.member->slot()] = states[i].ok();
    if (!is_source && n.progress) *slot.mutable_drill() = *n.progress;
    if (!is_source && states[i].ok()) {
      ns->set_applied_checkpoint(states[i]->committed_checkpoint());
      ns->set_staged_checkpoint(states[i]->staged_checkpoint());
      ns->set_drifted_entries(states[i]->drifted_entries());
    }
    if (auto it = held_slots.find(n.member->slot());
        is_source && it != held_slots.end()) {
      slot.set_held(it->second);
    }
    if (is_source && n.unstaged_since != absl::InfinitePast()) {
      slot.set_lag_ms(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(clock_->Now() - n.unstaged_since)));
    }
    if (is_source) {
      slot.set_pending_files(n.pending_files);
      slot.set_pending_bytes(n.pending_bytes);
      if (n.progress) *slot.mutable_progress() = *n.progress;
    }
  }
  const StateThresholds thresholds = StateThresholds::From(config_);
  for (auto& [name, slot] : slots) {
    auto it = verdict.by_slot.find(name);
    if (it != verdict.by_slot.end()) {
      for (const auto& d : it->second) slot.add_differences(d);
    }
    ClassifySlot(thresholds, replica_answered[name], &slot);
    *s.add_slots() = slot;
  }
  // Coverage of the External Connections production runs, from the
  // active site's latest reports (a node gone keeps its last).
  std::vector<TopologyReport> production;
  std::vector<gwmirror::v1::ExternalDeclaration> declarations;
  {
    absl::MutexLock l(&mu_);
    declarations = declarations_;
  }
  for (const NodeView& n : nodes) {
    if (n->member->site() != s.active_site() || !n->registered) continue;
    TopologyReport r = *n->report;
    r.set_slot(n->member->slot());
    production.push_back(std::move(r));
  }
  Coverage coverage = ComputeCoverage(production, declarations);
  for (auto& row : coverage.rows) *s.add_coverage() = std::move(row);
  s.set_unprotected_connections(coverage.unprotected);
  ClassifyCluster(&s);
  NoteHistory(s);
  return s;
}

std::string Coordinator::RenderMetrics() {
  gwmirror::v1::ClusterStatus s = Status();
  std::string out;
  auto metric = [&](const std::string& name, const std::string& help,
                    const std::string& type) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  };
  metric("gwmirror_cluster_state",
         "1 for the cluster's state (OK, LAGGING, HELD, DEGRADED, STALLED, "
         "PARTITIONED, BLOCKED), 0 for the others.",
         "gauge");
  for (const std::string& name : StateNames()) {
    absl::StrAppend(&out, "gwmirror_cluster_state{state=\"", name, "\"} ",
                    s.state() == name ? 1 : 0, "\n");
  }
  metric("gwmirror_slot_state", "1 for each slot's state, 0 for the others.",
         "gauge");
  for (const auto& slot : s.slots()) {
    for (const std::string& name : StateNames()) {
      if (name == "BLOCKED") continue;  // A cluster's state only.
      absl::StrAppend(&out, "gwmirror_slot_state{slot=\"",
                      EscapeLabelValue(slot.name()), "\",state=\"", name,
                      "\"} ", slot.state() == name ? 1 : 0, "\n");
    }
  }
  metric("gwmirror_cluster_held_seconds",
         "How long every cut has been held (a deployment in progress); 0 "
         "when none is.",
         "gauge");
  absl::StrAppend(&out, "gwmirror_cluster_held_seconds ",
                  s.held().empty()
                      ? 0.0
                      : std::max<int64_t>(0, absl::ToUnixMillis(clock_->Now()) -
                                                 s.held_since_unix_ms()) /
                            1000.0,
                  "\n");
  metric("gwmirror_cluster_held",
         "1 while every cut is held, with why as the reason label (the "
         "group, which instance runs which archive); 0 with an empty reason "
         "when nothing is held.",
         "gauge");
  absl::StrAppend(&out, "gwmirror_cluster_held{reason=\"",
                  EscapeLabelValue(s.held()), "\"} ", s.held().empty() ? 0 : 1,
                  "\n");
  metric("gwmirror_external_connections",
         "External connections of the deployments production runs, by what "
         "protects them (PROTECTED, DECLARED, STATELESS, UNPROTECTED, "
         "UNRESOLVED).",
         "gauge");
  for (const char* state :
       {"PROTECTED", "DECLARED", "STATELESS", "UNPROTECTED", "UNRESOLVED"}) {
    absl::StrAppend(
        &out, "gwmirror_external_connections{state=\"", state, "\"} ",
        std::count_if(s.coverage().begin(), s.coverage().end(),
                      [&](const auto& row) { return row.state() == state; }),
        "\n");
  }
  metric("gwmirror_epoch", "Current fencing epoch.", "gauge");
  absl::StrAppend(&out, "gwmirror_epoch ", s.epoch(), "\n");
  metric("gwmirror_rpo_seconds",
         "Now minus the cut time of the last consistent checkpoint.", "gauge");
  if (s.rpo_ms() >= 0) {
    absl::StrAppend(&out, "gwmirror_rpo_seconds ", s.rpo_ms() / 1000.0, "\n");
  }
  metric("gwmirror_last_consistent_checkpoint",
         "Id of the last consistent checkpoint.", "gauge");
  absl::StrAppend(&out, "gwmirror_last_consistent_checkpoint ",
                  s.last_consistent().id(), "\n");
  metric("gwmirror_topology_parity",
         "1 when the standby has production's shape.", "gauge");
  absl::StrAppend(&out, "gwmirror_topology_parity ", s.parity() ? 1 : 0, "\n");
  metric("gwmirror_slot_lag_seconds",
         "Age of the oldest source change not yet staged at the replica.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_slot_lag_seconds{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ",
                    slot.lag_ms() / 1000.0, "\n");
  }
  metric("gwmirror_slot_pending_files",
         "Changed files the standby's committed tree does not hold yet.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_slot_pending_files{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ", slot.pending_files(),
                    "\n");
  }
  metric("gwmirror_slot_pending_bytes",
         "Bytes of changed files the standby's committed tree does not hold "
         "yet.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_slot_pending_bytes{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ", slot.pending_bytes(),
                    "\n");
  }
  metric("gwmirror_replica_drifted_entries",
         "Standby entries found differing from the committed checkpoint, "
         "awaiting repair.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_replica_drifted_entries{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ",
                    slot.replica().drifted_entries(), "\n");
  }
  metric("gwmirror_replica_applied_checkpoint",
         "Checkpoint each replica has applied.", "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_replica_applied_checkpoint{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ",
                    slot.replica().applied_checkpoint(), "\n");
  }
  metric("gwmirror_node_up", "1 when the node heartbeats in time.", "gauge");
  for (const auto& slot : s.slots()) {
    for (const auto* n : {&slot.source(), &slot.replica()}) {
      if (n->identity().empty()) continue;
      absl::StrAppend(
          &out, "gwmirror_node_up{slot=\"", EscapeLabelValue(slot.name()),
          "\",site=\"", EscapeLabelValue(n->site()), "\",identity=\"",
          EscapeLabelValue(n->identity()), "\"} ", n->healthy() ? 1 : 0, "\n");
    }
  }
  metric("gwmirror_checkpoints", "Checkpoints recorded, by state.", "gauge");
  if (auto counts = store_->CountByState(); counts.ok()) {
    for (const char* state : {"cut", "consistent", "applied", "aborted"}) {
      auto it = counts->find(state);
      absl::StrAppend(&out, "gwmirror_checkpoints{state=\"", state, "\"} ",
                      it == counts->end() ? 0 : it->second, "\n");
    }
  }
  absl::StrAppend(&out, RenderLeadershipMetrics(true, s));
  return out;
}

}  // namespace gwmirror
