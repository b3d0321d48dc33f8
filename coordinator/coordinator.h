// The coordinator: cluster membership, the checkpoint protocol across every
// slot, topology parity and group coherence, and the operator's view. Its
// rooms: the node registry (node_registry.h), the checkpoint runner
// (checkpoint_runner.h) and the cut scheduler (cut_scheduler.h) are classes
// with their own state and locks; this class composes them and is itself
// the operator's face over them, in files by job: failover (failover.cc:
// promote, failback), operations (operations.cc: drills, pins, verify,
// lists), the status view (status_view.cc, status_page.cc), epochs, grants
// and the audit log (coordinator.cc). The gRPC services are in service.h.
// Nodes are reached through a NodeClient and time through a Clock, both
// injected (tests use simulated ones).
//
// Checkpoint N (DESIGN.md, "Control plane"), one at a time:
//   1. record "cut N" durably (StateStore::BeginCut);
//   2. Source.Cut(N) on every slot's source, in parallel: each freezes a
//      stable manifest and stages it at its replica;
//   3. Replica.GetState on every replica: staged(N, digest) must equal the
//      digest its source froze;
//   4. group coherence (every instance of a group runs one deployment
//      archive) and topology parity (strict policy) must hold;
//   5. record "N consistent" with the per-slot digests: the commit point;
//   6. Replica.Commit(N) everywhere, recording each slot's "applied".
// A failure before 5 aborts N (durably, then Replica.Abort best effort);
// after 5, N stays consistent and its commit is retried until every replica
// has applied it, before any new cut. At start, unfinished checkpoints are
// settled the same way, so a coordinator killed at any step resumes with no
// lost and no doubled commit.
//
// Thread-safe.
#ifndef GWMIRROR_COORDINATOR_COORDINATOR_H_
#define GWMIRROR_COORDINATOR_COORDINATOR_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/audit.h"
#include "common/authz.h"
#include "common/clock.h"
#include "common/epoch.h"
#include "common/tls.h"
#include "common/worker_pool.h"
#include "coordinator/checkpoint_runner.h"
#include "coordinator/cut_scheduler.h"
#include "coordinator/node_client.h"
#include "coordinator/node_registry.h"
#include "coordinator/parity.h"
#include "coordinator/state_store.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"

namespace gwmirror {

// Checks a coordinator config; INVALID_ARGUMENT naming the field.
absl::Status ValidateCoordinatorConfig(
    const gwmirror::v1::CoordinatorConfig& c);

// What a coordinator runs with besides its config: the clock and the nodes'
// client (by default the real clock and gRPC).
struct CoordinatorOptions {
  const Clock* clock = Clock::Real();
  std::unique_ptr<NodeClient> nodes;
  // The state, already open (an etcd store whose lead this process won);
  // by default Open opens the one the config names.
  std::unique_ptr<StateStore> store;
};

class Coordinator {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Open(
      gwmirror::v1::CoordinatorConfig config, CoordinatorOptions options = {});
  ~Coordinator();

  // Node-facing (Coordinator service); `identity` is the verified
  // certificate name.
  absl::StatusOr<gwmirror::v1::RegisterResponse> Register(
      const std::string& identity, const gwmirror::v1::RegisterRequest& req);
  absl::StatusOr<gwmirror::v1::HeartbeatResponse> Heartbeat(
      const std::string& identity, const gwmirror::v1::HeartbeatRequest& req);

  // The coordinator's own certificate changed (a reload): status and
  // metrics show the new one, and new grants are signed with it.
  void NoteOwnCertificate(const CertificateInfo& info);
  // Notes when the certificate a node registered with expires (status and
  // metrics show it).
  void NoteCertificate(const std::string& identity, absl::Time not_after);

  // Operator-facing (Control service).
  gwmirror::v1::ClusterStatus Status();
  // The Prometheus text exposition of Status() and checkpoint outcomes.
  std::string RenderMetrics();
  // The read-only status page (HTML, no scripts; status_page.cc): both
  // sites side by side with their hosts, groups and instances, each slot's
  // state, RPO and lag over the last hour, the last checkpoints and drills.
  std::string RenderStatusPage();
  // `automatic` (a change or the interval, not an operator): when a node
  // is down no checkpoint is recorded, it just does not run.
  absl::StatusOr<gwmirror::v1::CheckpointInfo> RunCheckpoint(
      bool automatic = false);
  void RequestCheckpoint();
  // The operator confirms a held mass deletion on `slot`.
  absl::Status Release(const std::string& slot);
  // A restore drill on every standby node, recorded (also when it fails);
  // an error only when it could not start (a node down).
  absl::StatusOr<gwmirror::v1::DrillReport> Drill(
      const gwmirror::v1::StartDrillRequest& req);
  absl::StatusOr<gwmirror::v1::DrillList> ListDrills(uint32_t limit);
  // Promote (or its dry run): see Control.Promote. An error only when it
  // did not change anything; a failure after the epoch raise is in the
  // report's `error`.
  // `final_pending`: a failback's dry run, before the final checkpoint
  // that brings the returning site up to date.
  absl::StatusOr<gwmirror::v1::PromoteReport> Promote(
      const gwmirror::v1::PromoteRequest& req, bool final_pending = false);
  absl::StatusOr<gwmirror::v1::CheckpointList> List(size_t limit);
  // See Control.Failback.
  absl::StatusOr<gwmirror::v1::PromoteReport> Failback(
      const gwmirror::v1::FailbackRequest& req);
  // Every checkpoint all standby nodes retain, with sizes and changes.
  absl::StatusOr<gwmirror::v1::CheckpointList> ListRetained();
  absl::StatusOr<gwmirror::v1::PinResponse> Pin(
      const gwmirror::v1::PinRequest& req);
  absl::StatusOr<gwmirror::v1::VerifyReport> Verify(
      const gwmirror::v1::VerifyClusterRequest& req);

  // Settles checkpoints left unfinished by a previous run or a lost
  // replica: aborts open cuts, commits consistent ones where not applied.
  absl::Status Resume();

  // Background work: periodic checkpoints and requested ones.
  void StartBackground();
  // OK while this coordinator may act (always, with the SQLite store; with
  // etcd, while it holds the lead).
  absl::Status Lead() const { return store_->Lead(); }

  const gwmirror::v1::CoordinatorConfig& config() const { return config_; }

  // Takes `fresh`'s `external` declarations (SIGHUP); the rest of a
  // changed config needs a restart, and the log says so.
  void ReloadDeclarations(const gwmirror::v1::CoordinatorConfig& fresh)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Who may call what on this coordinator (common/authz.h).
  CallGate& gate() { return gate_; }
  // Appends to the audit log (the epoch is filled in); a failure to write
  // it is logged as an error (the act already happened).
  void Audit(gwmirror::v1::AuditRecord r);
  absl::StatusOr<gwmirror::v1::AuditList> ReadAudit(uint32_t limit) const;

 private:
  // The role `site` plays: source when it is the active site.
  gwmirror::v1::NodeRole Role(const std::string& site) const;

  // ---- failover (failover.cc).
  // Activation `phase` on every one of `nodes` in parallel; each line into
  // `step` prefixed with its slot, the step timed; failures named by slot.
  absl::Status ActivateAll(const std::vector<NodeView>& nodes, uint64_t epoch,
                           gwmirror::v1::ActivationPhase phase,
                           uint64_t checkpoint,
                           gwmirror::v1::PromoteStep* step);
  // While alive, status names `kind` ("promote", "failback") as the
  // operation under way; a promote inside a failback stays the failback's.
  class OperationScope {
   public:
    OperationScope(Coordinator* c, const std::string& kind);
    ~OperationScope();

   private:
    Coordinator* c_;
    bool owner_;
  };
  // The operation under way begins its next step, `name`.
  void NoteStep(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // The site a promote would make active (the first one not active now).
  std::string StandbySite() const;

  // ---- operations (operations.cc).
  // Checkpoints every one of `nodes` retains, their history summed (and,
  // with `set_pins`, the pins replaced first).
  absl::StatusOr<std::map<uint64_t, gwmirror::v1::CheckpointInfo>> Retained(
      const std::vector<NodeView>& nodes,
      const std::vector<uint64_t>* set_pins);

  // ---- epochs and their proof (coordinator.cc).
  // The envelope of `epoch`: with this coordinator's grant when it is the
  // epoch the grant proves.
  gwmirror::v1::Envelope Stamp(uint64_t epoch) const
      ABSL_LOCKS_EXCLUDED(grant_mu_);
  // Signs the grant of the state's current epoch and active site.
  absl::Status SignGrant() ABSL_LOCKS_EXCLUDED(grant_mu_);

  Coordinator(gwmirror::v1::CoordinatorConfig config,
              std::unique_ptr<StateStore> store, CoordinatorOptions options);

  const gwmirror::v1::CoordinatorConfig config_;
  const Clock* const clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<NodeClient> nodes_client_;
  CallGate gate_;
  // Fan-out calls to the nodes.
  WorkerPool pool_;
  std::unique_ptr<AuditLog> audit_;  // Set once in Open.

  NodeRegistry registry_;
  CheckpointRunner runner_;

  absl::Mutex mu_;
  // The promote or failback under way ("" when none), its current step,
  // how many steps it has begun, and when it began (ClusterStatus.operation).
  std::string operation_ ABSL_GUARDED_BY(mu_);
  std::string operation_step_ ABSL_GUARDED_BY(mu_);
  int operation_steps_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time operation_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The config's `external` declarations, as last (re)loaded.
  std::vector<gwmirror::v1::ExternalDeclaration> declarations_
      ABSL_GUARDED_BY(mu_);

  // RPO and each slot's lag as Status() saw them, at most one point per
  // 10 s, for the last hour (the status page's chart).
  struct HistoryPoint {
    absl::Time at;
    int64_t rpo_ms = -1;
    std::map<std::string, int64_t> lag_ms;
  };
  void NoteHistory(const gwmirror::v1::ClusterStatus& s)
      ABSL_LOCKS_EXCLUDED(history_mu_);
  absl::Mutex history_mu_;
  std::deque<HistoryPoint> history_ ABSL_GUARDED_BY(history_mu_);

  mutable absl::Mutex grant_mu_ ABSL_ACQUIRED_AFTER(mu_);
  gwmirror::v1::EpochGrant grant_ ABSL_GUARDED_BY(grant_mu_);
  // This coordinator's own certificate, as read at Open or reloaded.
  std::optional<CertificateInfo> own_cert_ ABSL_GUARDED_BY(grant_mu_);

  // Last, so it is destroyed first: its thread runs checkpoints, which use
  // everything above.
  CutScheduler scheduler_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_COORDINATOR_H_
