// The coordinator's gRPC faces: nodes call Coordinator (register,
// heartbeat), operators call Control. Each call is admitted by the
// coordinator's CallGate first (common/authz.h), then translated and
// delegated; acting calls are written to the audit log. Thread-safe.
#ifndef GWMIRROR_COORDINATOR_SERVICE_H_
#define GWMIRROR_COORDINATOR_SERVICE_H_

#include "coordinator/coordinator.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"

namespace gwmirror {

class CoordinatorService final : public gwmirror::v1::Coordinator::Service {
 public:
  explicit CoordinatorService(Coordinator* c) : c_(c) {}
  grpc::Status Register(grpc::ServerContext* ctx,
                        const gwmirror::v1::RegisterRequest* req,
                        gwmirror::v1::RegisterResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx,
                         const gwmirror::v1::HeartbeatRequest* req,
                         gwmirror::v1::HeartbeatResponse* resp) override;

 private:
  Coordinator* c_;
};

class ControlService final : public gwmirror::v1::Control::Service {
 public:
  explicit ControlService(Coordinator* c) : c_(c) {}
  grpc::Status Status(grpc::ServerContext* ctx,
                      const gwmirror::v1::StatusRequest* req,
                      gwmirror::v1::ClusterStatus* resp) override;
  grpc::Status CreateCheckpoint(
      grpc::ServerContext* ctx,
      const gwmirror::v1::CreateCheckpointRequest* req,
      gwmirror::v1::CheckpointInfo* resp) override;
  grpc::Status Failback(grpc::ServerContext* ctx,
                        const gwmirror::v1::FailbackRequest* req,
                        gwmirror::v1::PromoteReport* resp) override;
  grpc::Status Pin(grpc::ServerContext* ctx,
                   const gwmirror::v1::PinRequest* req,
                   gwmirror::v1::PinResponse* resp) override;
  grpc::Status Verify(grpc::ServerContext* ctx,
                      const gwmirror::v1::VerifyClusterRequest* req,
                      gwmirror::v1::VerifyReport* resp) override;
  grpc::Status ListCheckpoints(grpc::ServerContext* ctx,
                               const gwmirror::v1::ListCheckpointsRequest* req,
                               gwmirror::v1::CheckpointList* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx,
                       const gwmirror::v1::ReleaseRequest* req,
                       gwmirror::v1::ReleaseResponse* resp) override;
  grpc::Status Drill(grpc::ServerContext* ctx,
                     const gwmirror::v1::StartDrillRequest* req,
                     gwmirror::v1::DrillReport* resp) override;
  grpc::Status Promote(grpc::ServerContext* ctx,
                       const gwmirror::v1::PromoteRequest* req,
                       gwmirror::v1::PromoteReport* resp) override;
  grpc::Status ListDrills(grpc::ServerContext* ctx,
                          const gwmirror::v1::ListDrillsRequest* req,
                          gwmirror::v1::DrillList* resp) override;
  grpc::Status Audit(grpc::ServerContext* ctx,
                     const gwmirror::v1::AuditRequest* req,
                     gwmirror::v1::AuditList* resp) override;

 private:
  // Appends an acting call to the audit log.
  void Record(const CallGate::Ticket& t, const char* method, std::string detail,
              const absl::Status& outcome);
  Coordinator* c_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_SERVICE_H_
