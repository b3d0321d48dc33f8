#include "coordinator/checkpoint_runner.h"

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fault.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_internal.h"

namespace gwmirror {

using coordinator_internal::Or;

CheckpointRunner::CheckpointRunner(Parts parts)
    : config_(*parts.config),
      clock_(parts.clock),
      store_(parts.store),
      registry_(parts.registry),
      nodes_(parts.nodes),
      pool_(parts.pool) {}
using coordinator_internal::Short;
using gwmirror::v1::CheckpointInfo;
using gwmirror::v1::TopologyReport;

ParityVerdict CheckpointRunner::Parity(
    const std::vector<PlacedReport>* fresh) const {
  std::string active = store_->ActiveSite();
  // Instances on a standby host are only judged once a checkpoint was
  // applied, and only from reports read after the node held it (a report
  // read before its apply, arriving after it, must not count).
  uint64_t applied = 0;
  if (auto last = store_->Newest(/*committed_only=*/true);
      last.ok() && last->applied_unix_ms() > 0) {
    applied = last->id();
  }
  bool check_instances = applied != 0;
  const std::vector<NodeView> nodes = registry_->Snapshot();
  const absl::Time now = clock_->Now();
  std::vector<PlacedReport> reports;
  reports.reserve(nodes.size());
  for (const NodeView& node : nodes) {
    const NodeRecord& n = *node;
    // A node that is gone serves nothing: its absence is the finding.
    if (!registry_->Healthy(n, now)) continue;
    bool production = n.member->site() == active;
    if (production && fresh != nullptr) continue;
    if (!production && n.report_checkpoint < applied) check_instances = false;
    reports.push_back(PlacedReport{production ? "production" : "standby",
                                   n.member->slot(), n.report.get()});
  }
  if (fresh != nullptr) {
    reports.insert(reports.end(), fresh->begin(), fresh->end());
  }
  return ComputeParity(reports, check_instances);
}

void CheckpointRunner::Abort(uint64_t id, const std::vector<NodeRef>& replicas,
                             const std::string& reason) {
  Logf(LogLevel::kWarning, "coordinator", "checkpoint=%d aborted: %s", id,
       reason);
  absl::Status st = store_->RecordAborted(id, reason);
  if (!st.ok()) {
    Logf(LogLevel::kError, "coordinator", "checkpoint=%d: %s", id,
         st.ToString());
  }
  uint64_t epoch = store_->Epoch();
  pool_->ParallelFor(replicas.size(), [&](size_t i) {
    // Best effort: a replica that misses this discards the staging at its
    // next push (a newer checkpoint) anyway.
    (void)nodes_->Abort(replicas[i], epoch, id);
  });
}

namespace {

// Groups whose gateway instances run different deployment archives (a
// deployment half done), in words: 'group "G" runs different deployment
// archives (instance-1 on A; instance-2 on B)'.
std::vector<std::string> SplitGroups(const std::vector<PlacedReport>& reports) {
  std::map<std::string, std::string> group_of;  // Service id -> group.
  for (const PlacedReport& r : reports) {
    for (const auto& g : r.report->topology().groups()) {
      for (const auto& s : g.services()) {
        if (s.type() == "gateway")
          group_of[s.id()] = g.name().empty() ? g.id() : g.name();
      }
    }
  }
  std::map<std::string, std::map<std::string, std::vector<std::string>>>
      archives;
  for (const PlacedReport& r : reports) {
    for (const auto& [instance, archive] : r.report->deployments()) {
      auto g = group_of.find(instance);
      if (g != group_of.end()) archives[g->second][archive].push_back(instance);
    }
  }
  std::vector<std::string> split;
  for (const auto& [group, by_archive] : archives) {
    if (by_archive.size() < 2) continue;
    std::vector<std::string> parts;
    for (const auto& [archive, instances] : by_archive) {
      parts.push_back(
          absl::StrCat(absl::StrJoin(instances, ", "), " on ", archive));
    }
    split.push_back(absl::StrCat("group \"", group,
                                 "\" runs different deployment "
                                 "archives (",
                                 absl::StrJoin(parts, "; "), ")"));
  }
  return split;
}

}  // namespace

absl::StatusOr<CheckpointInfo> CheckpointRunner::Attempt(bool automatic,
                                                         bool* incoherent) {
  *incoherent = false;
  uint64_t epoch = store_->Epoch();
  absl::Time deadline =
      clock_->Now() +
      absl::Milliseconds(Or(config_.checkpoint_timeout_ms(), 600000u));
  auto healthy = registry_->HealthySlots(store_->ActiveSite());
  if (!healthy.ok() && automatic) return healthy.status();
  std::set<std::string> released;
  {
    absl::MutexLock l(&state_mu_);
    // A held slot waits for its operator; automatic cuts would only pile
    // up the same refusal.
    for (const auto& [slot, why] : held_) {
      if (automatic && !released_.count(slot)) {
        return absl::FailedPreconditionError(absl::StrCat(slot, ": ", why));
      }
    }
    released = released_;
  }
  // A deployment half done, as the sources' heartbeats report it: held
  // before a checkpoint id is spent (the cut checks again with its own
  // reports, for a deployment that began since).
  if (healthy.ok()) {
    std::vector<PlacedReport> reports;
    reports.reserve(healthy->size());
    for (const SlotPeers& p : *healthy) {
      reports.push_back({"production", p.slot, p.source->report.get()});
    }
    if (std::vector<std::string> split = SplitGroups(reports); !split.empty()) {
      *incoherent = true;
      std::string reason =
          absl::StrCat("deployment in progress: ", absl::StrJoin(split, "; "));
      HoldForDeployment(reason);
      return absl::AbortedError(reason);
    }
  }
  ASSIGN_OR_RETURN(uint64_t id,
                   store_->BeginCut(epoch, absl::ToUnixMillis(clock_->Now())));
  RETURN_IF_ERROR(FaultPoint("coordinator:cut"));
  if (!healthy.ok()) {
    std::string reason = std::string(healthy.status().message());
    Abort(id, {}, reason);
    return absl::UnavailableError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  const std::vector<SlotPeers>& slots = *healthy;
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d cut on %d slots", id,
       slots.size());

  // 2. Sources stage N at their replicas.
  std::vector<NodeClient::CutCall> calls;
  std::vector<NodeRef> replicas;
  calls.reserve(slots.size());
  replicas.reserve(slots.size());
  for (const SlotPeers& p : slots) {
    replicas.push_back(p.replica->ref());
    calls.push_back(
        {p.source->ref(), replicas.back(), released.count(p.slot) > 0});
  }
  std::vector<absl::StatusOr<gwmirror::v1::CutResult>> cuts =
      nodes_->CutAll(epoch, id, calls, deadline);
  {
    absl::MutexLock l(&state_mu_);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (cuts[i].ok() && !cuts[i]->held().empty()) {
        held_[slots[i].slot] = cuts[i]->held();
        cuts[i] = absl::FailedPreconditionError(cuts[i]->held());
      }
    }
  }
  std::vector<std::string> failures;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!cuts[i].ok()) {
      failures.push_back(
          absl::StrCat(slots[i].slot, ": ", cuts[i].status().message()));
    } else if (cuts[i]->checkpoint() != id ||
               cuts[i]->manifest_digest().size() != 32) {
      failures.push_back(
          absl::StrCat(slots[i].slot, ": source answered for checkpoint ",
                       cuts[i]->checkpoint(), " with a ",
                       cuts[i]->manifest_digest().size(), "-byte digest"));
      cuts[i] = absl::InvalidArgumentError("bad cut result");
    }
  }
  if (failures.empty()) {
    absl::Status st = FaultPoint("coordinator:staged");
    if (!st.ok()) return st;
  }
  // 3. Every replica holds staged(N, the digest its source froze).
  std::map<std::string, std::string> digests;
  if (failures.empty()) {
    std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> states =
        nodes_->StateAll(replicas, epoch, absl::Seconds(10));
    for (size_t i = 0; i < slots.size(); ++i) {
      const std::string& want = cuts[i]->manifest_digest();
      if (!states[i].ok()) {
        failures.push_back(absl::StrCat(slots[i].slot, ": replica ",
                                        states[i].status().message()));
      } else if (states[i]->staged_checkpoint() != id ||
                 states[i]->staged_digest() != want) {
        failures.push_back(absl::StrCat(
            slots[i].slot, ": replica holds staged checkpoint ",
            states[i]->staged_checkpoint(), " (",
            Short(states[i]->staged_digest()), ") but its source froze ", id,
            " (", Short(want), ")"));
      } else {
        digests[slots[i].slot] = want;
      }
    }
  }
  if (!failures.empty()) {
    std::string reason = absl::StrJoin(failures, "; ");
    Abort(id, replicas, reason);
    return absl::AbortedError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  // 4. Group coherence, with the sources' reports of this very cut.
  std::vector<PlacedReport> fresh;
  fresh.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    fresh.push_back({"production", slots[i].slot, &cuts[i]->topology()});
  }
  std::vector<std::string> split = SplitGroups(fresh);
  if (!split.empty()) {
    *incoherent = true;
    std::string reason =
        absl::StrCat("deployment in progress: ", absl::StrJoin(split, "; "));
    HoldForDeployment(reason);
    Abort(id, replicas, reason);
    return absl::AbortedError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  {
    absl::MutexLock l(&state_mu_);
    deployment_hold_.clear();
  }
  // Topology parity, with the sources' reports of this very cut.
  ParityVerdict verdict = Parity(&fresh);
  if (!verdict.parity && config_.parity_policy() != "warn") {
    std::string reason = absl::StrCat("topology parity fails (strict policy): ",
                                      absl::StrJoin(verdict.differences, "; "));
    Abort(id, replicas, reason);
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  // 5. The commit point.
  RETURN_IF_ERROR(
      store_->RecordConsistent(id, digests, absl::ToUnixMillis(clock_->Now())));
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d consistent", id);
  RETURN_IF_ERROR(FaultPoint("coordinator:consistent"));
  // 6. Apply.
  {
    // What was held went through with the operator's release.
    absl::MutexLock l(&state_mu_);
    for (const std::string& slot : released) {
      held_.erase(slot);
      released_.erase(slot);
    }
  }
  // Every slot is yet to apply it.
  std::vector<std::string> pending;
  pending.reserve(slots.size());
  for (const SlotPeers& p : slots) pending.push_back(p.slot);
  RETURN_IF_ERROR(ApplyConsistent(id, digests, pending));
  return store_->Get(id);
}

absl::Status CheckpointRunner::ApplyConsistent(
    uint64_t id, const std::map<std::string, std::string>& digests,
    const std::vector<std::string>& pending) {
  const std::string active = store_->ActiveSite();
  const std::vector<NodeView> nodes = registry_->Snapshot();
  // The standby site's members, by slot.
  absl::flat_hash_map<absl::string_view, const NodeRecord*> standby;
  standby.reserve(nodes.size());
  for (const NodeView& n : nodes) {
    if (n->member->site() != active) standby[n->member->slot()] = n.get();
  }
  std::vector<const NodeRecord*> replicas;
  replicas.reserve(pending.size());
  for (const std::string& slot : pending) {
    if (auto it = standby.find(slot); it != standby.end()) {
      replicas.push_back(it->second);
    }
  }
  uint64_t epoch = store_->Epoch();
  const std::vector<uint64_t> pins = store_->Pins();
  std::vector<absl::Status> results(replicas.size());
  std::vector<NodeClient::CommitCall> calls;
  std::vector<size_t> called;  // Index into replicas of each call.
  for (size_t i = 0; i < replicas.size(); ++i) {
    const std::string& slot = replicas[i]->member->slot();
    auto d = digests.find(slot);
    if (d == digests.end()) {
      // The commit point recorded every slot's digest: a slot without one
      // is a broken invariant, never a reason to commit something else.
      results[i] = absl::InternalError(absl::StrCat(
          "checkpoint ", id, " recorded no digest for slot ", slot));
      Logf(LogLevel::kError, "coordinator", "%s", results[i].ToString());
    } else if (replicas[i]->address.empty()) {
      results[i] = absl::UnavailableError("replica not registered");
    } else {
      calls.push_back({replicas[i]->ref(), d->second});
      called.push_back(i);
    }
  }
  std::vector<absl::Status> answers = nodes_->CommitAll(epoch, id, calls, pins);
  for (size_t k = 0; k < called.size(); ++k) results[called[k]] = answers[k];
  // What was applied, recorded in one transaction (a slot missing from the
  // record is committed again after a restart: a no-op on its replica).
  std::vector<std::string> applied;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (results[i].ok()) applied.push_back(replicas[i]->member->slot());
  }
  if (!applied.empty()) {
    absl::Status st =
        store_->RecordApplied(id, applied, absl::ToUnixMillis(clock_->Now()));
    if (st.ok()) st = FaultPoint("coordinator:applied-slot");
    if (!st.ok()) return st;
  }
  std::vector<std::string> failures;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (!results[i].ok()) {
      failures.push_back(absl::StrCat(replicas[i]->member->slot(), ": ",
                                      results[i].message()));
    }
  }
  if (replicas.size() != pending.size()) {
    failures.push_back("a slot has no replica member");
  }
  if (!failures.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "checkpoint ", id, " is consistent but not applied everywhere yet (",
        absl::StrJoin(failures, "; "),
        "); its commit is retried before the "
        "next cut"));
  }
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d applied on every replica",
       id);
  return absl::OkStatus();
}

absl::Status CheckpointRunner::ResumeLocked() {
  ASSIGN_OR_RETURN(std::vector<CheckpointInfo> open, store_->Unfinished());
  for (const CheckpointInfo& c : open) {
    if (c.state() == gwmirror::v1::CHECKPOINT_STATE_CUT) {
      // Not yet consistent: it never will be. Replicas drop its staging.
      std::vector<NodeRef> replicas;
      const std::string active = store_->ActiveSite();
      for (const NodeView& n : registry_->Snapshot()) {
        if (n->member->site() != active && !n->address.empty()) {
          replicas.push_back(n->ref());
        }
      }
      Abort(c.id(), replicas,
            "interrupted before it was consistent (coordinator restart)");
      continue;
    }
    std::map<std::string, std::string> digests;
    for (const auto& [slot, hex] : c.digests()) {
      digests[slot] = absl::HexStringToBytes(hex);
    }
    ASSIGN_OR_RETURN(std::vector<std::string> pending,
                     store_->UnappliedSlots(c.id()));
    RETURN_IF_ERROR(ApplyConsistent(c.id(), digests, pending));
  }
  return absl::OkStatus();
}

absl::Status CheckpointRunner::Resume() {
  absl::MutexLock l(&serial_mu_);
  return ResumeLocked();
}

absl::StatusOr<CheckpointInfo> CheckpointRunner::Run(bool automatic) {
  static MetricFamily& runs = DefaultMetrics().Counter(
      "gwmirror_checkpoints_total",
      "Checkpoint attempts since the coordinator started, by outcome.",
      {"outcome"});
  static MetricFamily& duration = DefaultMetrics().Histogram(
      "gwmirror_checkpoint_duration_seconds",
      "Time from a checkpoint's start to its commit on every standby.",
      DurationBuckets());
  static const bool declared = [] {
    for (const char* o : {"ok", "failed"}) runs.Add(0, {o});
    return true;
  }();
  (void)declared;
  absl::Time start = clock_->Now();
  absl::StatusOr<CheckpointInfo> r = RunOnce(automatic);
  runs.Add(1, {r.ok() ? "ok" : "failed"});
  if (r.ok()) duration.Observe(absl::ToDoubleSeconds(clock_->Now() - start));
  return r;
}

void CheckpointRunner::HoldForDeployment(const std::string& reason) {
  absl::MutexLock l(&state_mu_);
  if (deployment_hold_.empty()) deployment_hold_since_ = clock_->Now();
  deployment_hold_ = reason;
}

absl::StatusOr<CheckpointInfo> CheckpointRunner::RunOnce(bool automatic) {
  absl::MutexLock l(&serial_mu_);
  {
    absl::MutexLock m(&state_mu_);
    cut_started_ = clock_->Now();
  }
  // Heartbeats during the run report changes it is about to cover; once it
  // ends, the next ones say what is still pending.
  auto done = absl::MakeCleanup([this] {
    absl::MutexLock m(&state_mu_);
    cut_started_ = absl::InfinitePast();
  });
  RETURN_IF_ERROR(ResumeLocked());
  WaitForStaleReplicas();
  absl::Time give_up =
      clock_->Now() +
      absl::Milliseconds(Or(config_.coherence_wait_ms(), 60000u));
  for (;;) {
    bool incoherent = false;
    auto r = Attempt(automatic, &incoherent);
    if (r.ok()) ForgetRecords(r->id());
    if (r.ok() || !incoherent || clock_->Now() >= give_up) {
      if (!r.ok() && incoherent) {
        return absl::AbortedError(absl::StrCat(
            r.status().message(), "; still so after ",
            absl::FormatDuration(
                absl::Milliseconds(Or(config_.coherence_wait_ms(), 60000u))),
            ": finish or roll back the deployment"));
      }
      return r;
    }
    clock_->SleepFor(
        absl::Milliseconds(Or(config_.coherence_retry_ms(), 1000u)));
  }
}

void CheckpointRunner::ForgetRecords(uint64_t newest) {
  const uint64_t keep = Or(config_.checkpoint_records(), 10000u);
  if (newest <= keep || newest < forget_next_) return;
  forget_next_ = newest + std::max<uint64_t>(1, keep / 10);
  // What any node's history still holds keeps its record (an operator
  // lists, pins, drills or promotes to it by the coordinator's record).
  const std::vector<NodeView> nodes = registry_->Snapshot();
  const uint64_t epoch = store_->Epoch();
  std::vector<absl::StatusOr<gwmirror::v1::HistoryList>> lists(
      nodes.size(), absl::UnavailableError("never registered"));
  pool_->ParallelFor(nodes.size(), [&](size_t i) {
    if (!nodes[i]->address.empty()) {
      lists[i] = nodes_->History(nodes[i]->ref(), epoch, nullptr);
    }
  });
  std::set<uint64_t> kept;
  for (size_t i = 0; i < nodes.size(); ++i) {
    // A node without a replica store keeps no history.
    if (absl::IsUnimplemented(lists[i].status())) continue;
    if (!lists[i].ok()) {
      Logf(LogLevel::kWarning, "coordinator",
           "checkpoint records older than %d not forgotten: %s did not list "
           "its history (%s)",
           newest - keep + 1, nodes[i]->member->identity(),
           lists[i].status().message());
      return;
    }
    for (const auto& p : lists[i]->points()) kept.insert(p.checkpoint());
  }
  absl::StatusOr<uint64_t> n = store_->Forget(newest - keep + 1, kept);
  if (!n.ok()) {
    Logf(LogLevel::kWarning, "coordinator",
         "checkpoint records not forgotten: %s", n.status().ToString());
  } else if (*n > 0) {
    Logf(LogLevel::kInfo, "coordinator",
         "forgot the records of %d finished checkpoints older than %d (%d "
         "kept for the nodes' histories)",
         *n, newest - keep + 1, kept.size());
  }
}

void CheckpointRunner::WaitForStaleReplicas() {
  for (absl::Time until = clock_->Now() + absl::Seconds(30);
       clock_->Now() < until;) {
    const std::string active = store_->ActiveSite();
    bool stale = false;
    bool ask = false;
    std::vector<NodeRef> replicas;
    const absl::Time now = clock_->Now();
    {
      absl::MutexLock m(&state_mu_);
      ask = now - switched_ < absl::Minutes(2);
    }
    for (const NodeView& n : registry_->Snapshot()) {
      if (n->member->site() == active || !registry_->Healthy(*n, now)) {
        continue;
      }
      stale |= n->stale;
      if (ask) replicas.push_back(n->ref());
    }
    // Heartbeats lag a role switch: ask the replicas themselves then, all
    // at once.
    if (ask && !stale) {
      for (const auto& state :
           nodes_->StateAll(replicas, store_->Epoch(), absl::Seconds(5))) {
        stale |= state.ok() && state->stale();
      }
    }
    if (!stale) break;
    clock_->SleepFor(absl::Milliseconds(100));
  }
}

absl::Status CheckpointRunner::Release(const std::string& slot) {
  absl::MutexLock l(&state_mu_);
  auto it = held_.find(slot);
  if (it == held_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "slot ", slot, " holds nothing (no mass deletion, no anomaly)"));
  }
  released_.insert(slot);
  Logf(LogLevel::kWarning, "coordinator",
       "slot=%s hold released by an operator: %s", slot, it->second);
  return absl::OkStatus();
}

CheckpointRunner::Holds CheckpointRunner::CurrentHolds() const {
  absl::MutexLock l(&state_mu_);
  return Holds{held_, deployment_hold_, deployment_hold_since_};
}

absl::Time CheckpointRunner::CutStarted() const {
  absl::MutexLock l(&state_mu_);
  return cut_started_;
}

void CheckpointRunner::NoteRolesSwitched() {
  absl::MutexLock l(&state_mu_);
  switched_ = clock_->Now();
}

}  // namespace gwmirror
