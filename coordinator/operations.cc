// Operations on the standby: restore drills, pins, verify and repair,
// releases of held cuts (mass deletions, anomalies), and the checkpoint
// lists.
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

absl::StatusOr<gwmirror::v1::DrillReport> Coordinator::Drill(
    const gwmirror::v1::StartDrillRequest& req) {
  // Every standby node takes part: a drill that skips one proves nothing
  // about it.
  ASSIGN_OR_RETURN(std::vector<SlotPeers> slots,
                   registry_.HealthySlots(store_->ActiveSite()));
  uint64_t epoch = store_->Epoch();
  absl::Time start = clock_->Now();
  ASSIGN_OR_RETURN(uint64_t id, store_->BeginDrill(absl::ToUnixMillis(start)));
  Logf(LogLevel::kInfo, "coordinator", "drill=%d on %d standby nodes", id,
       slots.size());
  std::vector<absl::StatusOr<gwmirror::v1::DrillResult>> results(
      slots.size(), absl::UnknownError(""));
  pool_.ParallelFor(slots.size(), [&](size_t i) {
    results[i] = nodes_client_->Drill(slots[i].replica->ref(), epoch, id, req);
  });
  gwmirror::v1::DrillReport report;
  report.set_id(id);
  report.set_started_unix_ms(absl::ToUnixMillis(start));
  report.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
  report.set_ok(true);
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!results[i].ok()) {
      report.set_ok(false);
      absl::StrAppend(report.mutable_error(),
                      report.error().empty() ? "" : "; ", slots[i].slot, ": ",
                      results[i].status().message());
      continue;
    }
    const gwmirror::v1::DrillResult& r = *results[i];
    gwmirror::v1::SlotDrill* s = report.add_slots();
    s->set_slot(slots[i].slot);
    s->set_checkpoint(r.checkpoint());
    s->set_entries(r.entries());
    s->set_bytes(r.bytes());
    s->set_copy_ms(r.copy_ms());
    s->set_restore_ms(r.restore_ms());
    s->set_smoke_ms(r.smoke_ms());
    *s->mutable_restored() = r.restored();
    if (report.checkpoint() == 0 || r.checkpoint() < report.checkpoint()) {
      report.set_checkpoint(r.checkpoint());
    }
  }
  if (report.checkpoint() > 0) {
    auto cp = store_->Get(report.checkpoint());
    if (cp.ok()) {
      report.set_rpo_ms(
          std::max<int64_t>(0, absl::ToUnixMillis(start) - cp->cut_unix_ms()));
    }
  }
  RETURN_IF_ERROR(store_->RecordDrill(report));
  Logf(report.ok() ? LogLevel::kInfo : LogLevel::kWarning, "coordinator",
       "drill=%d %s: checkpoint %d, RTO %d ms, RPO %d ms%s", id,
       report.ok() ? "passed" : "FAILED", report.checkpoint(), report.rto_ms(),
       report.rpo_ms(), report.ok() ? "" : absl::StrCat(": ", report.error()));
  return report;
}

absl::StatusOr<gwmirror::v1::DrillList> Coordinator::ListDrills(
    uint32_t limit) {
  ASSIGN_OR_RETURN(auto drills, store_->ListDrills(limit ? limit : 100));
  gwmirror::v1::DrillList out;
  for (auto& d : drills) *out.add_drills() = std::move(d);
  return out;
}

absl::Status Coordinator::Release(const std::string& slot) {
  if (!registry_.HasSlot(slot)) {
    return absl::NotFoundError(absl::StrCat("no slot \"", slot, "\""));
  }
  RETURN_IF_ERROR(runner_.Release(slot));
  if (config_.follow_changes()) scheduler_.NoteChange();
  return absl::OkStatus();
}

absl::StatusOr<std::map<uint64_t, gwmirror::v1::CheckpointInfo>>
Coordinator::Retained(const std::vector<NodeView>& nodes,
                      const std::vector<uint64_t>* set_pins) {
  const uint64_t epoch = store_->Epoch();
  std::vector<absl::StatusOr<gwmirror::v1::HistoryList>> lists(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    lists[i] = nodes_client_->History(nodes[i]->ref(), epoch, set_pins);
  });
  std::map<uint64_t, gwmirror::v1::CheckpointInfo> out;
  std::map<uint64_t, size_t> holders;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!lists[i].ok()) {
      return absl::Status(lists[i].status().code(),
                          absl::StrCat(nodes[i]->member->slot(), ": ",
                                       lists[i].status().message()));
    }
    for (const auto& p : lists[i]->points()) {
      gwmirror::v1::CheckpointInfo& c = out[p.checkpoint()];
      ++holders[p.checkpoint()];
      c.set_id(p.checkpoint());
      c.set_bytes_on_disk(c.bytes_on_disk() + p.bytes_on_disk());
      c.set_added(c.added() + p.added());
      c.set_changed(c.changed() + p.changed());
      c.set_removed(c.removed() + p.removed());
      c.set_pinned(c.pinned() || p.pinned());
      if (c.committed_unix_ms() == 0 ||
          p.committed_unix_ms() < c.committed_unix_ms()) {
        c.set_committed_unix_ms(p.committed_unix_ms());
      }
    }
  }
  for (auto it = out.begin(); it != out.end();) {
    it = holders[it->first] == nodes.size() ? std::next(it) : out.erase(it);
  }
  return out;
}

absl::StatusOr<gwmirror::v1::CheckpointList> Coordinator::ListRetained() {
  ASSIGN_OR_RETURN(std::vector<NodeView> nodes,
                   registry_.SiteNodes(StandbySite()));
  ASSIGN_OR_RETURN(auto retained, Retained(nodes, nullptr));
  gwmirror::v1::CheckpointList out;
  for (auto it = retained.rbegin(); it != retained.rend(); ++it) {
    gwmirror::v1::CheckpointInfo* c = out.add_checkpoints();
    auto known = store_->Get(it->first);
    if (known.ok()) {
      *c = *std::move(known);
    } else {
      c->set_state(
          gwmirror::v1::CHECKPOINT_STATE_ADOPTED);  // What the standby held
                                                    // before any cut.
    }
    c->MergeFrom(it->second);
  }
  return out;
}

absl::StatusOr<gwmirror::v1::PinResponse> Coordinator::Pin(
    const gwmirror::v1::PinRequest& req) {
  ASSIGN_OR_RETURN(std::vector<NodeView> nodes,
                   registry_.SiteNodes(StandbySite()));
  if (!req.unpin()) {
    ASSIGN_OR_RETURN(auto retained, Retained(nodes, nullptr));
    if (retained.count(req.checkpoint()) == 0) {
      return absl::NotFoundError(
          absl::StrCat("checkpoint ", req.checkpoint(),
                       " is not retained on every standby node"));
    }
  }
  RETURN_IF_ERROR(store_->Pin(req.checkpoint(), !req.unpin()));
  std::vector<uint64_t> pins = store_->Pins();
  RETURN_IF_ERROR(Retained(nodes, &pins).status());
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d %s by an operator",
       req.checkpoint(), req.unpin() ? "unpinned" : "pinned");
  gwmirror::v1::PinResponse out;
  for (uint64_t p : pins) out.add_pinned(p);
  return out;
}

absl::StatusOr<gwmirror::v1::VerifyReport> Coordinator::Verify(
    const gwmirror::v1::VerifyClusterRequest& req) {
  std::vector<NodeView> nodes;
  const std::string standby = StandbySite();
  for (NodeView& n : registry_.Snapshot()) {
    if (n->member->site() == standby) nodes.push_back(std::move(n));
  }
  const uint64_t epoch = store_->Epoch();
  std::vector<absl::StatusOr<gwmirror::v1::VerifyResult>> results(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    results[i] = nodes_client_->Verify(nodes[i]->ref(), epoch, req.repair());
  });
  gwmirror::v1::VerifyReport report;
  report.set_ok(true);
  uint64_t differences = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    gwmirror::v1::SlotVerify* s = report.add_slots();
    s->set_slot(nodes[i]->member->slot());
    s->set_identity(nodes[i]->member->identity());
    if (!results[i].ok()) {
      s->set_error(std::string(results[i].status().message()));
      report.set_ok(false);
      continue;
    }
    *s->mutable_result() = *results[i];
    report.set_ok(report.ok() && results[i]->problems().empty());
    differences += results[i]->tree_differences();
    for (const std::string& p : results[i]->unrepairable()) {
      report.add_unrepaired(absl::StrCat(s->slot(), ": ", p));
    }
  }
  if (req.repair() && differences > 0) {
    // The replicas recorded what differs; a checkpoint brings good copies.
    auto cp = RunCheckpoint();
    if (cp.ok()) {
      report.set_repair_checkpoint(cp->id());
    } else {
      report.add_unrepaired(
          absl::StrCat(differences,
                       " standby entries wait for a checkpoint from their "
                       "sources, which failed: ",
                       cp.status().message()));
    }
  }
  Logf(report.ok() ? LogLevel::kInfo : LogLevel::kWarning, "coordinator",
       "verify%s: %s", req.repair() ? " --repair" : "",
       report.ok() ? "clean" : "problems found");
  return report;
}

absl::StatusOr<gwmirror::v1::CheckpointList> Coordinator::List(size_t limit) {
  ASSIGN_OR_RETURN(auto v, store_->List(limit ? limit : 100, true));
  gwmirror::v1::CheckpointList out;
  for (auto& c : v) *out.add_checkpoints() = std::move(c);
  return out;
}

}  // namespace gwmirror
