// The node registry: which members are registered and healthy, what they
// report, and which of them form each slot's source and replica.
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

gwmirror::v1::NodeRole Coordinator::Role(const std::string& site) const {
  return site == store_->ActiveSite() ? gwmirror::v1::NODE_ROLE_SOURCE
                                      : gwmirror::v1::NODE_ROLE_REPLICA;
}

bool Coordinator::Healthy(const Node& n) const {
  return n.registered &&
         clock_->Now() - n.last_heartbeat <
             absl::Milliseconds(Or(config_.heartbeat_timeout_ms(), 5000u));
}

absl::Time Coordinator::PrestageWaitEnds(absl::Duration max_delay) const {
  absl::Time until = absl::InfinitePast();
  for (const auto& [id, n] : nodes_) {
    if (n.prestaging && n.unstaged_since != absl::InfinitePast() &&
        Healthy(n)) {
      until = std::max(until, n.unstaged_since + max_delay);
    }
  }
  return until;
}

absl::StatusOr<std::vector<Coordinator::SlotPeers>>
Coordinator::HealthySlots() {
  std::string active = store_->ActiveSite();
  absl::MutexLock l(&mu_);
  std::map<std::string, SlotPeers> slots;
  std::vector<std::string> problems;
  for (const auto& [id, n] : nodes_) {
    SlotPeers& s = slots[n.member.slot()];
    s.slot = n.member.slot();
    (n.member.site() == active ? s.source : s.replica) = n;
  }
  std::vector<SlotPeers> out;
  for (auto& [name, s] : slots) {
    for (const Node* n : {&s.source, &s.replica}) {
      bool is_source = n == &s.source;
      if (n->member.identity().empty()) {
        problems.push_back(absl::StrCat("slot ", name, " has no ",
                                        is_source ? "source" : "replica",
                                        " member"));
      } else if (!Healthy(*n)) {
        problems.push_back(absl::StrCat(
            name, ": ", is_source ? "source" : "replica", " ",
            n->member.identity(),
            n->registered ? absl::StrCat(" lost (last heartbeat ",
                                         absl::FormatDuration(absl::Trunc(
                                             clock_->Now() - n->last_heartbeat,
                                             absl::Milliseconds(100))),
                                         " ago)")
                          : " never registered"));
      }
    }
    out.push_back(s);
  }
  if (!problems.empty()) {
    return absl::UnavailableError(absl::StrJoin(problems, "; "));
  }
  return out;
}

absl::StatusOr<std::vector<Coordinator::Node>> Coordinator::SiteNodes(
    const std::string& site) {
  std::vector<Node> nodes;
  absl::MutexLock l(&mu_);
  for (const auto& [id, n] : nodes_) {
    if (n.member.site() != site) continue;
    if (!Healthy(n)) {
      return absl::FailedPreconditionError(absl::StrCat(
          site, " node ", id, " (", n.member.slot(), ") is not heartbeating"));
    }
    nodes.push_back(n);
  }
  if (nodes.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no node of site ", site, " has registered"));
  }
  return nodes;
}

void Coordinator::NoteCertificate(const std::string& identity,
                                  absl::Time not_after) {
  absl::MutexLock l(&mu_);
  if (auto it = nodes_.find(identity); it != nodes_.end()) {
    it->second.cert_not_after = not_after;
  }
}

}  // namespace gwmirror
