// gwmirror-node serve: the parts of a node, who owns them, and the order in
// which they start and stop. Start builds them in dependency order (TLS,
// epoch, audit, the replica store and its services, the source's watcher,
// tree, pre-stager and cut service, the drift checker, the gRPC server,
// metrics, then membership); Stop takes them down in the order that lets
// nothing run against a part already gone: first the callbacks of worker
// threads are cut off (they reach the membership and the pre-stager only
// through this object, under its lock), then membership, the server
// (draining calls that still use the parts below it), the drift checker,
// the pre-stager, the source tree (saving its index) and the watcher.
// Thread-safe: Start, Stop and Reload from one thread; the callbacks from
// any.
#ifndef GWMIRROR_NODE_DAEMON_H_
#define GWMIRROR_NODE_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/audit.h"
#include "common/authz.h"
#include "common/epoch.h"
#include "common/metrics_server.h"
#include "common/send_budget.h"
#include "common/state_lock.h"
#include "common/tls.h"
#include "gwmirror/v1/config.pb.h"
#include "node/membership.h"
#include "node/replica/activation.h"
#include "node/replica/drift_checker.h"
#include "node/replica/drill.h"
#include "node/replica/service.h"
#include "node/replica/store.h"
#include "node/source/cut_service.h"
#include "node/source/prestager.h"
#include "node/source/source_tree.h"
#include "node/source/watcher.h"

namespace gwmirror {

class NodeDaemon {
 public:
  // INVALID_ARGUMENT for a config that cannot serve; whatever a part's
  // start says otherwise (nothing is left running then).
  static absl::StatusOr<std::unique_ptr<NodeDaemon>> Start(
      gwmirror::v1::NodeConfig config);
  ~NodeDaemon();  // Stop().

  // SIGHUP: renewed TLS material, and the bandwidth of `fresh` (the config
  // file read again; null when it could not be).
  void Reload(const gwmirror::v1::NodeConfig* fresh);
  // Idempotent.
  void Stop();

 private:
  explicit NodeDaemon(gwmirror::v1::NodeConfig config);
  absl::Status StartParts();
  // What worker threads call: a change to report now, content to pre-stage.
  void Wake() ABSL_LOCKS_EXCLUDED(hub_mu_);
  void Poke() ABSL_LOCKS_EXCLUDED(hub_mu_);
  void Fill(gwmirror::v1::HeartbeatRequest* req);
  void OnResponse(const gwmirror::v1::HeartbeatResponse& resp);

  // The node's role: fixed by the config when it has one side only,
  // otherwise told by the coordinator (and changed by a promote).
  enum Role : int { kUnknown, kSource, kReplica };

  const gwmirror::v1::NodeConfig config_;
  // In start order; stopped in reverse, except as Stop says.
  std::optional<StateDirLock> state_lock_;
  std::unique_ptr<TlsReloader> tls_;
  std::unique_ptr<EpochFile> epoch_;
  std::unique_ptr<CallGate> gate_;
  // What the node sends draws from this (config "bandwidth").
  SendBudget send_budget_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<ReplicaStore> store_;
  std::unique_ptr<DrillRunner> drills_;
  std::unique_ptr<Activation> activation_;
  std::unique_ptr<ReplicaService> replica_;
  std::unique_ptr<ChangeWatcher> watcher_;
  std::unique_ptr<SourceTree> tree_;
  std::unique_ptr<Prestager> prestager_;
  std::unique_ptr<CutService> source_;
  std::unique_ptr<DriftChecker> drift_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<Membership> membership_;
  std::atomic<int> role_{kUnknown};
  bool stopped_ = false;

  // The parts worker threads' callbacks may reach; cleared first at Stop.
  absl::Mutex hub_mu_;
  Membership* wake_target_ ABSL_GUARDED_BY(hub_mu_) = nullptr;
  Prestager* poke_target_ ABSL_GUARDED_BY(hub_mu_) = nullptr;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_DAEMON_H_
