// A coordinator that does not lead: with the etcd store, one waiting while
// another holds the lead. It listens all the same, so that operators see
// it and what it knows: it answers `status` from the store (epoch, sites,
// checkpoints, every coordinator and etcd member), refuses every other
// call with UNAVAILABLE naming the leader (a node goes on to its next
// coordinator on that), and its health service says NOT_SERVING for the
// Control and Coordinator services, so the CLI prefers the leader.
//
// What the store alone says (StoreStatus) and the leadership metrics are
// shared with the leader's own status and /metrics.
#ifndef GWMIRROR_COORDINATOR_FOLLOWER_H_
#define GWMIRROR_COORDINATOR_FOLLOWER_H_

#include <cstdint>
#include <string>

#include "common/authz.h"
#include "coordinator/etcd_state_store.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"

namespace gwmirror {

// Epoch, active and fenced sites, configured sites, the last consistent
// checkpoint with the RPO at `now_ms`, the last attempt, the coordinators
// and the store's members, as `store` has them.
gwmirror::v1::ClusterStatus StoreStatus(
    const StateStore& store, const gwmirror::v1::CoordinatorConfig& config,
    int64_t now_ms);

// gwmirror_coordinator_leader (1 when this process leads),
// gwmirror_coordinators{state}, gwmirror_etcd_members and
// gwmirror_etcd_members_up (both 0 with the SQLite store), in Prometheus
// text.
std::string RenderLeadershipMetrics(bool leads,
                                    const gwmirror::v1::ClusterStatus& s);

// Why a follower does not act, naming the leader as the store has it.
std::string NotLeading(const std::string& me,
                       const gwmirror::v1::ClusterStatus& s);

class FollowerServices {
 public:
  FollowerServices(const gwmirror::v1::CoordinatorConfig& config,
                   EtcdStateStore* store);
  // The status a follower gives: StoreStatus, its state FOLLOWER and why.
  gwmirror::v1::ClusterStatus Status();
  std::string RenderMetrics();
  grpc::Service* coordinator() { return &coordinator_; }
  grpc::Service* control() { return &control_; }

 private:
  class NodeFacing final : public gwmirror::v1::Coordinator::Service {
   public:
    explicit NodeFacing(FollowerServices* f) : f_(f) {}
    grpc::Status Register(grpc::ServerContext* ctx,
                          const gwmirror::v1::RegisterRequest*,
                          gwmirror::v1::RegisterResponse*) override;
    grpc::Status Heartbeat(grpc::ServerContext* ctx,
                           const gwmirror::v1::HeartbeatRequest*,
                           gwmirror::v1::HeartbeatResponse*) override;

   private:
    FollowerServices* f_;
  };
  class OperatorFacing final : public gwmirror::v1::Control::Service {
   public:
    explicit OperatorFacing(FollowerServices* f) : f_(f) {}
    grpc::Status Status(grpc::ServerContext* ctx,
                        const gwmirror::v1::StatusRequest*,
                        gwmirror::v1::ClusterStatus* resp) override;
    grpc::Status Audit(grpc::ServerContext* ctx,
                       const gwmirror::v1::AuditRequest*,
                       gwmirror::v1::AuditList*) override;
    grpc::Status CreateCheckpoint(grpc::ServerContext* ctx,
                                  const gwmirror::v1::CreateCheckpointRequest*,
                                  gwmirror::v1::CheckpointInfo*) override;
    grpc::Status ListCheckpoints(grpc::ServerContext* ctx,
                                 const gwmirror::v1::ListCheckpointsRequest*,
                                 gwmirror::v1::CheckpointList*) override;
    grpc::Status Release(grpc::ServerContext* ctx,
                         const gwmirror::v1::ReleaseRequest*,
                         gwmirror::v1::ReleaseResponse*) override;
    grpc::Status Drill(grpc::ServerContext* ctx,
                       const gwmirror::v1::StartDrillRequest*,
                       gwmirror::v1::DrillReport*) override;
    grpc::Status ListDrills(grpc::ServerContext* ctx,
                            const gwmirror::v1::ListDrillsRequest*,
                            gwmirror::v1::DrillList*) override;
    grpc::Status Promote(grpc::ServerContext* ctx,
                         const gwmirror::v1::PromoteRequest*,
                         gwmirror::v1::PromoteReport*) override;
    grpc::Status Failback(grpc::ServerContext* ctx,
                          const gwmirror::v1::FailbackRequest*,
                          gwmirror::v1::PromoteReport*) override;
    grpc::Status Pin(grpc::ServerContext* ctx, const gwmirror::v1::PinRequest*,
                     gwmirror::v1::PinResponse*) override;
    grpc::Status Verify(grpc::ServerContext* ctx,
                        const gwmirror::v1::VerifyClusterRequest*,
                        gwmirror::v1::VerifyReport*) override;

   private:
    FollowerServices* f_;
  };
  // Admits the call (the same roles as on the leader), then refuses it.
  grpc::Status Refuse(grpc::ServerContext* ctx, const char* method);

  const gwmirror::v1::CoordinatorConfig& config_;
  EtcdStateStore* const store_;
  CallGate gate_;
  NodeFacing coordinator_{this};
  OperatorFacing control_{this};
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_FOLLOWER_H_
