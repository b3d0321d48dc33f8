// gRPC face of ReplicaStore: admits each call through the node's CallGate
// (who may call what, common/authz.h), checks its epoch, translates
// messages, and delegates. Thread-safe (the store serialises what must
// be).
#ifndef GWMIRROR_NODE_REPLICA_SERVICE_H_
#define GWMIRROR_NODE_REPLICA_SERVICE_H_

#include <set>
#include <string>

#include "common/audit.h"
#include "common/authz.h"
#include "common/send_budget.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/replica/activation.h"
#include "node/replica/drill.h"
#include "node/replica/store.h"

namespace gwmirror {

class ReplicaService final : public gwmirror::v1::Replica::Service {
 public:
  // `gate` admits calls (NodeCallGate); it, `drills` and `activation`
  // (either may be null: Drill and Activate are then UNIMPLEMENTED)
  // outlive the service.
  // `audit` (may be null) records operators' acting calls on this node.
  // `budget` (may be null: no cap) is the node's outgoing bandwidth, which
  // the answers that carry bulk (manifests, signatures, exports) draw from
  // like the node's pushes.
  ReplicaService(ReplicaStore* store, std::string state_dir, CallGate* gate,
                 DrillRunner* drills = nullptr,
                 Activation* activation = nullptr, AuditLog* audit = nullptr,
                 SendBudget* budget = nullptr);

  grpc::Status GetState(grpc::ServerContext* ctx,
                        const gwmirror::v1::GetStateRequest* req,
                        gwmirror::v1::ReplicaState* resp) override;
  grpc::Status GetManifest(
      grpc::ServerContext* ctx, const gwmirror::v1::GetManifestRequest* req,
      grpc::ServerWriter<gwmirror::v1::ManifestBatch>* writer) override;
  grpc::Status GetSignature(
      grpc::ServerContext* ctx, const gwmirror::v1::GetSignatureRequest* req,
      grpc::ServerWriter<gwmirror::v1::SignatureChunk>* writer) override;
  grpc::Status SampleContent(grpc::ServerContext* ctx,
                             const gwmirror::v1::SampleContentRequest* req,
                             gwmirror::v1::ContentSamples* resp) override;
  grpc::Status Push(grpc::ServerContext* ctx,
                    grpc::ServerReader<gwmirror::v1::PushMessage>* reader,
                    gwmirror::v1::PushResult* resp) override;
  grpc::Status Commit(grpc::ServerContext* ctx,
                      const gwmirror::v1::CommitRequest* req,
                      gwmirror::v1::CommitResult* resp) override;
  grpc::Status Abort(grpc::ServerContext* ctx,
                     const gwmirror::v1::AbortRequest* req,
                     gwmirror::v1::AbortResult* resp) override;
  grpc::Status Activate(grpc::ServerContext* ctx,
                        const gwmirror::v1::ActivateRequest* req,
                        gwmirror::v1::ActivateResult* resp) override;
  grpc::Status Drill(grpc::ServerContext* ctx,
                     const gwmirror::v1::DrillRequest* req,
                     gwmirror::v1::DrillResult* resp) override;
  grpc::Status ListHistory(grpc::ServerContext* ctx,
                           const gwmirror::v1::ListHistoryRequest* req,
                           gwmirror::v1::HistoryList* resp) override;
  grpc::Status Export(
      grpc::ServerContext* ctx, const gwmirror::v1::ExportRequest* req,
      grpc::ServerWriter<gwmirror::v1::ExportChunk>* writer) override;
  grpc::Status Verify(grpc::ServerContext* ctx,
                      const gwmirror::v1::VerifyRequest* req,
                      gwmirror::v1::VerifyResult* resp) override;

 private:
  // A read by the coordinator or an operator that does not know the epoch
  // (0): answered without an epoch check, adopting nothing.
  static bool ControllerRead(const CallGate::Ticket& t,
                             const gwmirror::v1::Envelope& e);
  // Waits until `bytes` more fit under the node's bandwidth cap.
  void Pace(size_t bytes);
  // Records an operator's acting call (the coordinator's are recorded
  // where it runs them).
  void Record(const CallGate::Ticket& t, const char* method, std::string detail,
              const absl::Status& outcome);
  absl::Status DoPush(grpc::ServerReader<gwmirror::v1::PushMessage>* reader,
                      gwmirror::v1::PushResult* resp);

  ReplicaStore* store_;
  const std::string state_dir_;
  CallGate& gate_;
  DrillRunner* const drills_;
  Activation* const activation_;
  AuditLog* const audit_;
  SendBudget* const budget_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_SERVICE_H_
