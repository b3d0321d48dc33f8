// Who may call what, and how much of a server one caller may take: every
// gRPC method of the cluster has one row in AuthorizationTable() naming the
// roles allowed to call it (docs/ARCHITECTURE.md, "Who may call what",
// shows the same table; tests/e2e/authz_test.cc checks the running servers
// against the document both ways). A server's CallGate turns the verified
// peer certificate into roles, refuses a call no role allows with
// PERMISSION_DENIED before the handler does any work, and bounds what one
// identity can hold: calls in flight, expensive calls in flight, and the
// rate of expensive calls (RESOURCE_EXHAUSTED, retry later). Thread-safe.
#ifndef GWMIRROR_COMMON_AUTHZ_H_
#define GWMIRROR_COMMON_AUTHZ_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// What a certificate is to the server it calls.
enum Role : uint32_t {
  kRoleSource = 1,       // the slot's source, on its replica
  kRoleCoordinator = 2,  // the cluster's coordinator, on a node
  kRoleOperator = 4,     // an operator (may act)
  kRoleViewer = 8,       // a read-only operator (may look)
  kRoleMember = 16,      // a configured node, on the coordinator
};
using Roles = uint32_t;

// "source", "coordinator, operator", ...; "nobody" for 0.
std::string RoleNames(Roles roles);

struct MethodRule {
  // "Service.Method", e.g. "Replica.Push".
  const char* method;
  Roles allowed;
  // Reads or writes much (a whole tree, history or manifest), or runs
  // long: bounded more tightly per identity.
  bool expensive;
};

const std::vector<MethodRule>& AuthorizationTable();

// The roles of certificate `identity` on a node of `config`: the slot's
// source (replica.source_identity), the coordinator, operators (the
// replica's controller_identities other than the coordinator).
Roles NodeRoles(const gwmirror::v1::NodeConfig& config,
                const std::string& identity);
// On the coordinator: members, operators, viewers.
Roles CoordinatorRoles(const gwmirror::v1::CoordinatorConfig& config,
                       const std::string& identity);

class CallGate {
 public:
  struct Limits {
    // Calls one identity may have in flight on this server.
    int max_in_flight = 32;
    // Expensive calls one identity may have in flight.
    int max_expensive_in_flight = 4;
    // Expensive calls one identity may start: a token bucket.
    double expensive_per_second = 50;
    double expensive_burst = 100;
  };

  // `classify` gives the roles of a verified certificate name ("" for a
  // peer without one).
  CallGate(std::function<Roles(const std::string&)> classify, Limits limits,
           const Clock* clock = Clock::Real());

  // Holds a call's place until destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept { *this = std::move(o); }
    Ticket& operator=(Ticket&& o) noexcept;
    ~Ticket();
    // The caller's certificate name and roles.
    const std::string& identity() const { return identity_; }
    Roles roles() const { return roles_; }

   private:
    friend class CallGate;
    CallGate* gate_ = nullptr;
    std::string identity_;
    Roles roles_ = 0;
    bool expensive_ = false;
  };

  // Admits a call of `method` (a row of the table) from the peer of `ctx`.
  absl::StatusOr<Ticket> Admit(const grpc::ServerContext& ctx,
                               absl::string_view method);
  // The same for a known identity (tests, and callers without a context).
  absl::StatusOr<Ticket> AdmitIdentity(const std::string& identity,
                                       absl::string_view method);

 private:
  struct PerIdentity {
    int in_flight = 0;
    int expensive_in_flight = 0;
    double tokens = 0;
    absl::Time refilled = absl::InfinitePast();
  };
  void Release(const Ticket& t) ABSL_LOCKS_EXCLUDED(mu_);

  const std::function<Roles(const std::string&)> classify_;
  const Limits limits_;
  const Clock* const clock_;
  std::map<std::string, const MethodRule*> rules_;
  absl::Mutex mu_;
  std::map<std::string, PerIdentity> callers_ ABSL_GUARDED_BY(mu_);
};

// A handler's first line: the ticket, or the refusal as a grpc::Status.
#define GWM_ADMIT_OR_RETURN(ticket, gate, ctx, method)        \
  auto ticket##_or = (gate).Admit(*(ctx), (method));          \
  if (!ticket##_or.ok()) return ToGrpc(ticket##_or.status()); \
  CallGate::Ticket ticket = std::move(ticket##_or).value()

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_AUTHZ_H_
