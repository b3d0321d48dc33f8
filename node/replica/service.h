// gRPC face of ReplicaStore: checks who is calling (certificate common
// name) and under which epoch, translates messages, and delegates. Thread-
// safe (the store serialises what must be).
#ifndef GWMIRROR_NODE_REPLICA_SERVICE_H_
#define GWMIRROR_NODE_REPLICA_SERVICE_H_

#include <set>
#include <string>

#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/replica/activation.h"
#include "node/replica/drill.h"
#include "node/replica/store.h"

namespace gwmirror {

class ReplicaService final : public gwmirror::v1::Replica::Service {
 public:
  // `source` may push and read; `controllers` may read, commit, abort,
  // drill, list and export history and verify. `drills` (may be null: Drill is
  // then UNIMPLEMENTED) outlives the service.
  ReplicaService(ReplicaStore* store, std::string state_dir, std::string source,
                 std::set<std::string> controllers,
                 DrillRunner* drills = nullptr,
                 Activation* activation = nullptr);

  grpc::Status GetState(grpc::ServerContext* ctx,
                        const gwmirror::v1::GetStateRequest* req,
                        gwmirror::v1::ReplicaState* resp) override;
  grpc::Status GetManifest(
      grpc::ServerContext* ctx, const gwmirror::v1::GetManifestRequest* req,
      grpc::ServerWriter<gwmirror::v1::ManifestBatch>* writer) override;
  grpc::Status GetSignature(
      grpc::ServerContext* ctx, const gwmirror::v1::GetSignatureRequest* req,
      grpc::ServerWriter<gwmirror::v1::SignatureChunk>* writer) override;
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
  enum class Role { kSource, kController, kReader };
  absl::Status Authorize(const grpc::ServerContext& ctx, Role role) const;
  // A read by a controller that does not know the epoch (0).
  bool ControllerRead(const grpc::ServerContext& ctx,
                      const gwmirror::v1::Envelope& e) const;
  absl::Status DoPush(grpc::ServerReader<gwmirror::v1::PushMessage>* reader,
                      gwmirror::v1::PushResult* resp);

  ReplicaStore* store_;
  const std::string state_dir_;
  const std::string source_;
  const std::set<std::string> controllers_;
  DrillRunner* const drills_;
  Activation* const activation_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_SERVICE_H_
