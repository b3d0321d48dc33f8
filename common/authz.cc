#include "common/authz.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/tls.h"

namespace gwmirror {

std::string RoleNames(Roles roles) {
  std::vector<std::string> out;
  for (auto [bit, name] : {std::pair{kRoleSource, "source"},
                           {kRoleCoordinator, "coordinator"},
                           {kRoleOperator, "operator"},
                           {kRoleViewer, "viewer"},
                           {kRoleMember, "member"}}) {
    if (roles & bit) out.push_back(name);
  }
  return out.empty() ? "nobody" : absl::StrJoin(out, ", ");
}

const std::vector<MethodRule>& AuthorizationTable() {
  constexpr Roles kReaders = kRoleSource | kRoleCoordinator | kRoleOperator;
  constexpr Roles kControllers = kRoleCoordinator | kRoleOperator;
  constexpr Roles kLookers = kRoleOperator | kRoleViewer;
  static const auto* const kTable = new std::vector<MethodRule>{
      // Data plane, on each replica.
      {"Replica.GetState", kReaders, false},
      {"Replica.GetManifest", kReaders, true},
      {"Replica.GetSignature", kRoleSource, false},
      {"Replica.SampleContent", kRoleSource, false},
      {"Replica.Push", kRoleSource, false},
      {"Replica.Commit", kControllers, false},
      {"Replica.Abort", kControllers, false},
      {"Replica.Activate", kControllers, true},
      {"Replica.Drill", kControllers, true},
      {"Replica.ListHistory", kControllers, false},
      {"Replica.Export", kControllers, true},
      {"Replica.Verify", kControllers, true},
      // On each source.
      {"Source.Cut", kRoleCoordinator, false},
      // Nodes on the coordinator.
      {"Coordinator.Register", kRoleMember, false},
      {"Coordinator.Heartbeat", kRoleMember, false},
      // Operators on the coordinator: looking, then acting.
      {"Control.Status", kLookers, false},
      {"Control.ListCheckpoints", kLookers, false},
      {"Control.ListDrills", kLookers, false},
      {"Control.Audit", kLookers, false},
      {"Control.CreateCheckpoint", kRoleOperator, true},
      {"Control.Release", kRoleOperator, false},
      {"Control.Drill", kRoleOperator, true},
      {"Control.Promote", kRoleOperator, true},
      {"Control.Failback", kRoleOperator, true},
      {"Control.Pin", kRoleOperator, false},
      {"Control.Verify", kRoleOperator, true},
  };
  return *kTable;
}

Roles NodeRoles(const gwmirror::v1::NodeConfig& config,
                const std::string& identity) {
  Roles r = 0;
  if (config.has_replica() && identity == config.replica().source_identity()) {
    r |= kRoleSource;
  }
  const bool coordinator =
      config.has_coordinator() && identity == config.coordinator().identity();
  if (coordinator) r |= kRoleCoordinator;
  for (const std::string& c : config.replica().controller_identities()) {
    if (identity == c && !coordinator) r |= kRoleOperator;
  }
  return r;
}

Roles CoordinatorRoles(const gwmirror::v1::CoordinatorConfig& config,
                       const std::string& identity) {
  Roles r = 0;
  for (const auto& m : config.members()) {
    if (identity == m.identity()) r |= kRoleMember;
  }
  for (const std::string& o : config.operator_identities()) {
    if (identity == o) r |= kRoleOperator;
  }
  for (const std::string& v : config.viewer_identities()) {
    if (identity == v) r |= kRoleViewer;
  }
  return r;
}

CallGate::CallGate(std::function<Roles(const std::string&)> classify,
                   Limits limits, const Clock* clock)
    : classify_(std::move(classify)), limits_(limits), clock_(clock) {
  for (const MethodRule& r : AuthorizationTable()) rules_[r.method] = &r;
}

CallGate::Ticket& CallGate::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    if (gate_ != nullptr) gate_->Release(*this);
    gate_ = std::exchange(o.gate_, nullptr);
    identity_ = std::move(o.identity_);
    roles_ = o.roles_;
    expensive_ = o.expensive_;
  }
  return *this;
}

CallGate::Ticket::~Ticket() {
  if (gate_ != nullptr) gate_->Release(*this);
}

absl::StatusOr<CallGate::Ticket> CallGate::Admit(const grpc::ServerContext& ctx,
                                                 absl::string_view method) {
  return AdmitIdentity(PeerIdentity(ctx), method);
}

absl::StatusOr<CallGate::Ticket> CallGate::AdmitIdentity(
    const std::string& identity, absl::string_view method) {
  auto rule = rules_.find(std::string(method));
  if (rule == rules_.end()) {
    // A method the table lacks is a programming error: refuse it loudly
    // rather than let it through.
    return absl::InternalError(
        absl::StrCat(method, " has no row in the authorization table"));
  }
  const Roles roles = identity.empty() ? 0 : classify_(identity);
  if ((roles & rule->second->allowed) == 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "certificate \"", identity, "\" (", RoleNames(roles), ") may not call ",
        method, " here (allowed: ", RoleNames(rule->second->allowed), ")"));
  }
  const bool expensive = rule->second->expensive;
  absl::MutexLock l(&mu_);
  PerIdentity& p = callers_[identity];
  if (p.in_flight >= limits_.max_in_flight) {
    return absl::ResourceExhaustedError(
        absl::StrCat("certificate \"", identity, "\" has ", p.in_flight,
                     " calls in flight on this server (at most ",
                     limits_.max_in_flight, "); retry when they finished"));
  }
  if (expensive) {
    const absl::Time now = clock_->Now();
    if (p.refilled == absl::InfinitePast()) {
      p.tokens = limits_.expensive_burst;
    } else {
      p.tokens = std::min(limits_.expensive_burst,
                          p.tokens + absl::ToDoubleSeconds(now - p.refilled) *
                                         limits_.expensive_per_second);
    }
    p.refilled = now;
    if (p.expensive_in_flight >= limits_.max_expensive_in_flight ||
        p.tokens < 1) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "certificate \"", identity, "\" calls ", method,
          " and other expensive methods faster than this server allows (",
          limits_.max_expensive_in_flight, " at a time, ",
          limits_.expensive_per_second, " a second); retry later"));
    }
    p.tokens -= 1;
    ++p.expensive_in_flight;
  }
  ++p.in_flight;
  Ticket t;
  t.gate_ = this;
  t.identity_ = identity;
  t.roles_ = roles;
  t.expensive_ = expensive;
  return t;
}

void CallGate::Release(const Ticket& t) {
  absl::MutexLock l(&mu_);
  auto it = callers_.find(t.identity_);
  if (it == callers_.end()) return;
  --it->second.in_flight;
  if (t.expensive_) --it->second.expensive_in_flight;
  // Idle callers are forgotten once their bucket would be full again, so
  // the map holds only those calling now (certificate names are bounded
  // by the CA anyway).
  if (it->second.in_flight == 0 &&
      clock_->Now() - it->second.refilled >
          absl::Seconds(limits_.expensive_burst /
                        std::max(limits_.expensive_per_second, 1e-9))) {
    callers_.erase(it);
  }
}

}  // namespace gwmirror
