#include "coordinator/follower.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace gwmirror {

namespace {

// The coordinators and the store's members, the rest left empty.
gwmirror::v1::ClusterStatus Peers(const StateStore& store) {
  gwmirror::v1::ClusterStatus s;
  for (auto& c : store.Coordinators()) *s.add_coordinators() = std::move(c);
  for (auto& m : store.StoreHealth()) *s.add_etcd_members() = std::move(m);
  return s;
}

}  // namespace

gwmirror::v1::ClusterStatus StoreStatus(
    const StateStore& store, const gwmirror::v1::CoordinatorConfig& config,
    int64_t now_ms) {
  gwmirror::v1::ClusterStatus s = Peers(store);
  s.set_epoch(store.Epoch());
  s.set_active_site(store.ActiveSite());
  s.set_fenced_site(store.FencedSite());
  for (const auto& site : config.sites()) s.add_sites(site);
  s.set_parity_policy(config.parity_policy().empty() ? "strict"
                                                     : config.parity_policy());
  if (auto last = store.List(1, true); last.ok() && !last->empty()) {
    *s.mutable_last_consistent() = last->front();
    s.set_rpo_ms(now_ms - last->front().cut_unix_ms());
  } else {
    s.set_rpo_ms(-1);
  }
  if (auto last = store.List(1, false); last.ok() && !last->empty()) {
    *s.mutable_last_attempt() = last->front();
  }
  return s;
}

std::string RenderLeadershipMetrics(bool leads,
                                    const gwmirror::v1::ClusterStatus& s) {
  // One coordinator with SQLite: it leads, alone.
  int leading = s.coordinators_size() == 0 ? 1 : 0, following = 0;
  for (const auto& c : s.coordinators()) {
    (c.state() == "leading" ? leading : following)++;
  }
  const int up = std::count_if(s.etcd_members().begin(), s.etcd_members().end(),
                               [](const auto& m) { return m.up(); });
  return absl::StrCat(
      "# HELP gwmirror_coordinator_leader 1 when this coordinator leads (acts "
      "on the state), 0 while it follows.\n"
      "# TYPE gwmirror_coordinator_leader gauge\n"
      "gwmirror_coordinator_leader ",
      leads ? 1 : 0,
      "\n# HELP gwmirror_coordinators Coordinators sharing the state, by "
      "state (leading, following).\n"
      "# TYPE gwmirror_coordinators gauge\n"
      "gwmirror_coordinators{state=\"leading\"} ",
      leading, "\ngwmirror_coordinators{state=\"following\"} ", following,
      "\n# HELP gwmirror_etcd_members etcd members configured (0: the state is "
      "in SQLite).\n"
      "# TYPE gwmirror_etcd_members gauge\n"
      "gwmirror_etcd_members ",
      s.etcd_members_size(),
      "\n# HELP gwmirror_etcd_members_up etcd members that answered their "
      "last status call (every 5 s).\n"
      "# TYPE gwmirror_etcd_members_up gauge\n"
      "gwmirror_etcd_members_up ",
      up, "\n");
}

std::string NotLeading(const std::string& me,
                       const gwmirror::v1::ClusterStatus& s) {
  for (const auto& c : s.coordinators()) {
    if (c.state() == "leading") {
      return absl::StrCat("coordinator ", me, " does not lead; ", c.name(),
                          " does (at ", c.address(), "): ask it");
    }
  }
  return absl::StrCat(
      "coordinator ", me,
      " does not lead, and no coordinator leads now (etcd without a "
      "majority, or the lead just changing hands). A promote can still be "
      "forced from the standby side: `gwmirror promote --force` "
      "(docs/OPERATIONS.md)");
}

FollowerServices::FollowerServices(
    const gwmirror::v1::CoordinatorConfig& config, EtcdStateStore* store)
    : config_(config),
      store_(store),
      gate_(
          [this](const std::string& id) {
            return CoordinatorRoles(config_, id);
          },
          CallGate::Limits{}) {}

gwmirror::v1::ClusterStatus FollowerServices::Status() {
  // A prefix no coordinator has led yet has no state: the rest says so.
  absl::Status fresh = store_->Refresh();
  gwmirror::v1::ClusterStatus s =
      StoreStatus(*store_, config_, absl::ToUnixMillis(absl::Now()));
  s.set_state("FOLLOWER");
  s.set_answered_by_follower(store_->name());
  s.set_state_reason(absl::StrCat(
      NotLeading(store_->name(), s),
      fresh.ok() ? "" : absl::StrCat(" (the state: ", fresh.message(), ")"),
      ". This answer holds what the state store has; the nodes' live state "
      "is the leader's"));
  return s;
}

std::string FollowerServices::RenderMetrics() {
  return RenderLeadershipMetrics(false, Peers(*store_));
}

grpc::Status FollowerServices::Refuse(grpc::ServerContext* ctx,
                                      const char* method) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, method);
  return ToGrpc(
      absl::UnavailableError(NotLeading(store_->name(), Peers(*store_))));
}

grpc::Status FollowerServices::NodeFacing::Register(
    grpc::ServerContext* ctx, const gwmirror::v1::RegisterRequest*,
    gwmirror::v1::RegisterResponse*) {
  return f_->Refuse(ctx, "Coordinator.Register");
}

grpc::Status FollowerServices::NodeFacing::Heartbeat(
    grpc::ServerContext* ctx, const gwmirror::v1::HeartbeatRequest*,
    gwmirror::v1::HeartbeatResponse*) {
  return f_->Refuse(ctx, "Coordinator.Heartbeat");
}

grpc::Status FollowerServices::OperatorFacing::Status(
    grpc::ServerContext* ctx, const gwmirror::v1::StatusRequest*,
    gwmirror::v1::ClusterStatus* resp) {
  GWM_ADMIT_OR_RETURN(ticket, f_->gate_, ctx, "Control.Status");
  *resp = f_->Status();
  return grpc::Status::OK;
}

// Every acting or log-reading call: the leader's.
#define GWM_FOLLOWER_REFUSES(Method, Request, Response)       \
  grpc::Status FollowerServices::OperatorFacing::Method(      \
      grpc::ServerContext* ctx, const gwmirror::v1::Request*, \
      gwmirror::v1::Response*) {                              \
    return f_->Refuse(ctx, "Control." #Method);               \
  }
GWM_FOLLOWER_REFUSES(Audit, AuditRequest, AuditList)
GWM_FOLLOWER_REFUSES(CreateCheckpoint, CreateCheckpointRequest, CheckpointInfo)
GWM_FOLLOWER_REFUSES(ListCheckpoints, ListCheckpointsRequest, CheckpointList)
GWM_FOLLOWER_REFUSES(Release, ReleaseRequest, ReleaseResponse)
GWM_FOLLOWER_REFUSES(Drill, StartDrillRequest, DrillReport)
GWM_FOLLOWER_REFUSES(ListDrills, ListDrillsRequest, DrillList)
GWM_FOLLOWER_REFUSES(Promote, PromoteRequest, PromoteReport)
GWM_FOLLOWER_REFUSES(Failback, FailbackRequest, PromoteReport)
GWM_FOLLOWER_REFUSES(Pin, PinRequest, PinResponse)
GWM_FOLLOWER_REFUSES(Verify, VerifyClusterRequest, VerifyReport)
#undef GWM_FOLLOWER_REFUSES

}  // namespace gwmirror
