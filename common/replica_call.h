// One unary gwmirror.v1.Replica call: the request stamped with the caller's
// epoch, a deadline, the status mapped to absl (prefixed with the callee's
// name when one is given). Shared by the coordinator, the forced promote and
// the coordinator's state recovery.
#ifndef GWMIRROR_COMMON_REPLICA_CALL_H_
#define GWMIRROR_COMMON_REPLICA_CALL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "gwmirror/v1/replica.grpc.pb.h"

namespace gwmirror {

template <typename Resp, typename Req, typename Method>
absl::StatusOr<Resp> CallReplica(gwmirror::v1::Replica::Stub& stub,
                                 Method method, Req req,
                                 const gwmirror::v1::Envelope& envelope,
                                 absl::Duration timeout,
                                 const std::string& who = "") {
  *req.mutable_envelope() = envelope;
  Resp resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  absl::Status st = FromGrpc((stub.*method)(&ctx, req, &resp));
  if (!st.ok()) {
    if (who.empty()) return st;
    return absl::Status(st.code(), absl::StrCat(who, ": ", st.message()));
  }
  return resp;
}

// The same under a bare epoch (reads at epoch 0, epoch 1): no proof.
template <typename Resp, typename Req, typename Method>
absl::StatusOr<Resp> CallReplica(gwmirror::v1::Replica::Stub& stub,
                                 Method method, Req req, uint64_t epoch,
                                 absl::Duration timeout,
                                 const std::string& who = "") {
  gwmirror::v1::Envelope envelope;
  envelope.set_epoch(epoch);
  return CallReplica<Resp>(stub, method, std::move(req), envelope, timeout,
                           who);
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_REPLICA_CALL_H_
