// A node's side of cluster membership: registers with the coordinator
// (site, slot, address, what it serves, its topology report) and heartbeats
// with a fresh report, re-registering whenever the coordinator no longer
// knows it (a coordinator restart) or the epoch moved on. Learns the
// current epoch from Register. One background thread.
#ifndef GWMIRROR_NODE_MEMBERSHIP_H_
#define GWMIRROR_NODE_MEMBERSHIP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/audit.h"
#include "common/epoch.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"

namespace gwmirror {

class Membership {
 public:
  // `fill` adds what the node reports beyond its topology (pending
  // changes, drift); `on_response` sees every heartbeat answer (the node's
  // role, the slot's current replica) and, as one, every registration's. Both
  // run on the membership thread; either may be empty.
  using Fill = std::function<void(gwmirror::v1::HeartbeatRequest*)>;
  using OnResponse =
      std::function<void(const gwmirror::v1::HeartbeatResponse&)>;
  // `audit` (may be null) holds the operators' acts on this node: each
  // heartbeat forwards what is not sent yet. It and `epoch` outlive this.
  Membership(gwmirror::v1::NodeConfig config, std::string address,
             EpochFile* epoch, AuditLog* audit, Fill fill,
             OnResponse on_response);
  ~Membership();  // Stops the thread.
  absl::Status Start();
  // Heartbeat now (a change arrived) instead of at the next period.
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  absl::Status Register();
  absl::Status Heartbeat();
  // Waits a period, or less when woken; false once stopping.
  bool WaitPeriod(absl::Duration period) ABSL_LOCKS_EXCLUDED(mu_);

  const gwmirror::v1::NodeConfig config_;
  const std::string address_;
  EpochFile* const epoch_;
  AuditLog* const audit_;
  const Fill fill_;
  const OnResponse on_response_;
  // One gRPC client per coordinator (several share their state on
  // etcd; only the leader takes nodes, followers refuse them naming it):
  // the membership thread calls stubs_[current_] and moves to the next
  // whenever that one does not answer or refuses.
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<gwmirror::v1::Coordinator::Stub>> stubs_;
  size_t current_ = 0;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_MEMBERSHIP_H_
