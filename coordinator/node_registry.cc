#include "coordinator/node_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gwmirror {

NodeRegistry::NodeRegistry(
    const Clock* clock, absl::Duration heartbeat_timeout,
    const std::vector<gwmirror::v1::ClusterMember>& members)
    : clock_(clock), heartbeat_timeout_(heartbeat_timeout) {
  std::map<std::string, std::vector<NodeView*>> slots;
  for (const auto& m : members) {
    auto record = std::make_shared<NodeRecord>();
    record->member = std::make_shared<const gwmirror::v1::ClusterMember>(m);
    nodes_[m.identity()] = std::move(record);
  }
  for (auto& [id, n] : nodes_) slots[n->member->slot()].push_back(&n);
  slots_.assign(slots.begin(), slots.end());
}

template <typename Change>
NodeView NodeRegistry::Publish(NodeView& record, Change change) {
  auto next = std::make_shared<NodeRecord>(*record);
  change(*next);
  record = std::move(next);
  return record;
}

absl::Status NodeRegistry::CheckMember(const std::string& identity,
                                       const std::string& site,
                                       const std::string& slot) const {
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(identity);
  if (it == nodes_.end() || it->second->member->site() != site ||
      it->second->member->slot() != slot) {
    return absl::PermissionDeniedError(
        absl::StrCat("unknown node \"", identity, "\" (site \"", site,
                     "\", slot \"", slot, "\"): not a member of this cluster"));
  }
  return absl::OkStatus();
}

void NodeRegistry::Registered(const std::string& identity,
                              const std::string& address,
                              const gwmirror::v1::TopologyReport& topology) {
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(identity);
  if (it == nodes_.end()) return;  // CheckMember refused it.
  Publish(it->second, [&](NodeRecord& n) {
    n.address = address;
    n.registered = true;
    n.last_heartbeat = clock_->Now();
    n.report = std::make_shared<const gwmirror::v1::TopologyReport>(topology);
  });
}

absl::StatusOr<NodeView> NodeRegistry::Heartbeat(
    const std::string& identity, const gwmirror::v1::HeartbeatRequest& req,
    uint64_t epoch) {
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(identity);
  if (it == nodes_.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "unknown node \"", identity, "\": not a member of this cluster"));
  }
  if (!it->second->registered) {
    return absl::NotFoundError(absl::StrCat(
        "node \"", identity, "\" is not registered; register first"));
  }
  if (req.envelope().epoch() != epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        req.envelope().epoch() < epoch ? "stale epoch " : "unknown epoch ",
        req.envelope().epoch(), ": the coordinator is at epoch ", epoch));
  }
  auto time_of = [](int64_t ms) {
    return ms > 0 ? absl::FromUnixMillis(ms) : absl::InfinitePast();
  };
  return Publish(it->second, [&](NodeRecord& n) {
    n.last_heartbeat = clock_->Now();
    n.report =
        std::make_shared<const gwmirror::v1::TopologyReport>(req.topology());
    n.pending_since = time_of(req.pending_since_unix_ms());
    n.unstaged_since = time_of(req.unstaged_since_unix_ms());
    n.pending_files = req.pending_files();
    n.pending_bytes = req.pending_bytes();
    n.prestaging = req.prestaging();
    n.progress.reset();
    if (req.has_progress()) n.progress = req.progress();
    n.send_rate = req.send_rate();
    n.send_cap = req.send_cap();
    n.drifted = req.drifted_entries();
    n.report_checkpoint = req.report_checkpoint();
    n.stale = req.replica_stale();
  });
}

void NodeRegistry::NoteCertificate(const std::string& identity,
                                   absl::Time not_after) {
  absl::MutexLock l(&mu_);
  if (auto it = nodes_.find(identity); it != nodes_.end()) {
    Publish(it->second, [&](NodeRecord& n) { n.cert_not_after = not_after; });
  }
}

bool NodeRegistry::Healthy(const NodeRecord& n, absl::Time now) const {
  return n.registered && now - n.last_heartbeat < heartbeat_timeout_;
}

const std::shared_ptr<const gwmirror::v1::ClusterMember>&
NodeRecord::NoMember() {
  static const auto* none =
      new std::shared_ptr<const gwmirror::v1::ClusterMember>(
          std::make_shared<const gwmirror::v1::ClusterMember>());
  return *none;
}

std::vector<NodeView> NodeRegistry::Snapshot() const {
  absl::MutexLock l(&mu_);
  std::vector<NodeView> out;
  out.reserve(nodes_.size());
  for (const auto& [id, n] : nodes_) out.push_back(n);
  return out;
}

const std::vector<NodeView*>* NodeRegistry::MembersOf(
    const std::string& slot) const {
  auto it = std::lower_bound(
      slots_.begin(), slots_.end(), slot,
      [](const auto& s, const std::string& name) { return s.first < name; });
  return it != slots_.end() && it->first == slot ? &it->second : nullptr;
}

bool NodeRegistry::HasSlot(const std::string& slot) const {
  absl::MutexLock l(&mu_);
  return MembersOf(slot) != nullptr;
}

NodeView NodeRegistry::HealthyPeer(const NodeRecord& n) const {
  const absl::Time now = clock_->Now();
  absl::MutexLock l(&mu_);
  if (const auto* members = MembersOf(n.member->slot())) {
    for (const NodeView* peer : *members) {
      if ((*peer)->member->site() != n.member->site() && Healthy(**peer, now)) {
        return *peer;
      }
    }
  }
  return nullptr;
}

absl::StatusOr<std::vector<SlotPeers>> NodeRegistry::HealthySlots(
    const std::string& active) const {
  // Stands for an end no member fills.
  static const NodeView* const kNone =
      new NodeView(std::make_shared<const NodeRecord>());
  const absl::Time now = clock_->Now();
  std::vector<SlotPeers> out;
  {
    absl::MutexLock l(&mu_);
    out.reserve(slots_.size());
    for (const auto& [slot, members] : slots_) {
      SlotPeers& s = out.emplace_back(SlotPeers{slot, *kNone, *kNone});
      for (const NodeView* n : members) {
        ((*n)->member->site() == active ? s.source : s.replica) = *n;
      }
    }
  }
  std::vector<std::string> problems;
  for (const SlotPeers& s : out) {
    for (const NodeView* n : {&s.source, &s.replica}) {
      const char* end = n == &s.source ? "source" : "replica";
      const NodeRecord& r = **n;
      if (r.member->identity().empty()) {
        problems.push_back(
            absl::StrCat("slot ", s.slot, " has no ", end, " member"));
      } else if (!Healthy(r, now)) {
        problems.push_back(absl::StrCat(
            s.slot, ": ", end, " ", r.member->identity(),
            r.registered ? absl::StrCat(" lost (last heartbeat ",
                                        absl::FormatDuration(absl::Trunc(
                                            now - r.last_heartbeat,
                                            absl::Milliseconds(100))),
                                        " ago)")
                         : " never registered"));
      }
    }
  }
  if (!problems.empty()) {
    return absl::UnavailableError(absl::StrJoin(problems, "; "));
  }
  return out;
}

absl::StatusOr<std::vector<NodeView>> NodeRegistry::SiteNodes(
    const std::string& site) const {
  const absl::Time now = clock_->Now();
  std::vector<NodeView> nodes;
  absl::MutexLock l(&mu_);
  for (const auto& [id, n] : nodes_) {
    if (n->member->site() != site) continue;
    if (!Healthy(*n, now)) {
      return absl::FailedPreconditionError(
          absl::StrCat(site, " node ", id, " (", n->member->slot(),
                       ") is not heartbeating"));
    }
    nodes.push_back(n);
  }
  if (nodes.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no node of site ", site, " has registered"));
  }
  return nodes;
}

absl::Time NodeRegistry::PrestageWaitEnds(absl::Duration max_delay) const {
  const absl::Time now = clock_->Now();
  absl::MutexLock l(&mu_);
  absl::Time until = absl::InfinitePast();
  for (const auto& [id, n] : nodes_) {
    if (n->prestaging && n->unstaged_since != absl::InfinitePast() &&
        Healthy(*n, now)) {
      until = std::max(until, n->unstaged_since + max_delay);
    }
  }
  return until;
}

}  // namespace gwmirror
