// The coordinator's gRPC faces: every call admitted by the CallGate (who
// may call what), translated, delegated, and the acting ones audited.
#include "coordinator/service.h"

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"

namespace gwmirror {
namespace {

// A promote's or failback's audit detail.
std::string PromoteDetail(
    bool dry_run, const absl::StatusOr<gwmirror::v1::PromoteReport>& r) {
  if (!r.ok()) return dry_run ? "dry run" : "";
  return absl::StrCat(dry_run ? "dry run: " : "", "checkpoint ",
                      r->checkpoint(), ", epoch ", r->epoch(), ", ",
                      r->active_site(), " active",
                      r->error().empty() ? "" : ", INCOMPLETE: ", r->error());
}

}  // namespace

grpc::Status CoordinatorService::Register(
    grpc::ServerContext* ctx, const gwmirror::v1::RegisterRequest* req,
    gwmirror::v1::RegisterResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Coordinator.Register");
  auto r = c_->Register(ticket.identity(), *req);
  if (r.ok()) {
    *resp = *std::move(r);
    if (auto cert = PeerCertificate(*ctx); cert.ok()) {
      c_->NoteCertificate(cert->subject, cert->not_after);
      RecordCertificateExpiry(*cert);
    }
  }
  return ToGrpc(r.status());
}

grpc::Status CoordinatorService::Heartbeat(
    grpc::ServerContext* ctx, const gwmirror::v1::HeartbeatRequest* req,
    gwmirror::v1::HeartbeatResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Coordinator.Heartbeat");
  if (req->audit_size() > 64) {
    return ToGrpc(absl::InvalidArgumentError(
        "a heartbeat forwards at most 64 audit records"));
  }
  auto r = c_->Heartbeat(ticket.identity(), *req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  // The operators' acts on that node, into the cluster's log; the node
  // marks them sent once this answer arrives.
  for (gwmirror::v1::AuditRecord a : req->audit()) {
    a.set_node(ticket.identity());
    c_->Audit(std::move(a));
  }
  return grpc::Status::OK;
}

void ControlService::Record(const CallGate::Ticket& t, const char* method,
                            std::string detail, const absl::Status& outcome) {
  gwmirror::v1::AuditRecord r;
  r.set_identity(t.identity());
  r.set_role(RoleNames(t.roles()));
  r.set_action(method);
  r.set_detail(std::move(detail));
  r.set_outcome(outcome.ok() ? "ok" : outcome.ToString());
  c_->Audit(std::move(r));
}

grpc::Status ControlService::Status(grpc::ServerContext* ctx,
                                    const gwmirror::v1::StatusRequest* req,
                                    gwmirror::v1::ClusterStatus* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Status");
  *resp = c_->Status();
  return grpc::Status::OK;
}

grpc::Status ControlService::Audit(grpc::ServerContext* ctx,
                                   const gwmirror::v1::AuditRequest* req,
                                   gwmirror::v1::AuditList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Audit");
  auto r = c_->ReadAudit(req->limit());
  if (r.ok()) *resp = *std::move(r);
  return ToGrpc(r.status());
}

grpc::Status ControlService::CreateCheckpoint(
    grpc::ServerContext* ctx, const gwmirror::v1::CreateCheckpointRequest* req,
    gwmirror::v1::CheckpointInfo* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.CreateCheckpoint");
  if (!req->wait()) {
    c_->RequestCheckpoint();
    resp->set_state(gwmirror::v1::CHECKPOINT_STATE_REQUESTED);
    Record(ticket, "Control.CreateCheckpoint", "requested", absl::OkStatus());
    return grpc::Status::OK;
  }
  auto r = c_->RunCheckpoint();
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.CreateCheckpoint",
         r.ok() ? absl::StrCat("checkpoint ", resp->id(), " ",
                               StateName(resp->state()))
                : "wait",
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::Release(grpc::ServerContext* ctx,
                                     const gwmirror::v1::ReleaseRequest* req,
                                     gwmirror::v1::ReleaseResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Release");
  absl::Status st = c_->Release(req->slot());
  Record(ticket, "Control.Release", absl::StrCat("slot ", req->slot()), st);
  return ToGrpc(st);
}

grpc::Status ControlService::Drill(grpc::ServerContext* ctx,
                                   const gwmirror::v1::StartDrillRequest* req,
                                   gwmirror::v1::DrillReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Drill");
  auto r = c_->Drill(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Drill",
         absl::StrCat(req->checkpoint()
                          ? absl::StrCat("checkpoint ", req->checkpoint())
                          : "last checkpoint",
                      req->smoke().empty() ? "" : ", with a smoke command",
                      r.ok() ? absl::StrCat(", drill ", resp->id(),
                                            resp->ok() ? " passed" : " FAILED")
                             : ""),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::ListDrills(
    grpc::ServerContext* ctx, const gwmirror::v1::ListDrillsRequest* req,
    gwmirror::v1::DrillList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.ListDrills");
  auto r = c_->ListDrills(req->limit());
  if (r.ok()) *resp = *std::move(r);
  return ToGrpc(r.status());
}

grpc::Status ControlService::Promote(grpc::ServerContext* ctx,
                                     const gwmirror::v1::PromoteRequest* req,
                                     gwmirror::v1::PromoteReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Promote");
  auto r = c_->Promote(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Promote", PromoteDetail(req->dry_run(), r),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::ListCheckpoints(
    grpc::ServerContext* ctx, const gwmirror::v1::ListCheckpointsRequest* req,
    gwmirror::v1::CheckpointList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.ListCheckpoints");
  auto r = req->retained() ? c_->ListRetained() : c_->List(req->limit());
  if (r.ok()) *resp = *std::move(r);
  return ToGrpc(r.status());
}

grpc::Status ControlService::Failback(grpc::ServerContext* ctx,
                                      const gwmirror::v1::FailbackRequest* req,
                                      gwmirror::v1::PromoteReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Failback");
  auto r = c_->Failback(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Failback", PromoteDetail(req->dry_run(), r),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::Pin(grpc::ServerContext* ctx,
                                 const gwmirror::v1::PinRequest* req,
                                 gwmirror::v1::PinResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Pin");
  auto r = c_->Pin(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Pin",
         absl::StrCat(req->unpin() ? "unpin" : "pin", " checkpoint ",
                      req->checkpoint()),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::Verify(
    grpc::ServerContext* ctx, const gwmirror::v1::VerifyClusterRequest* req,
    gwmirror::v1::VerifyReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Verify");
  auto r = c_->Verify(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(
      ticket, "Control.Verify",
      absl::StrCat(
          req->repair() ? "repair" : "check",
          r.ok() ? (resp->ok() ? ", all verified" : ", problems found") : ""),
      r.status());
  return ToGrpc(r.status());
}

}  // namespace gwmirror
