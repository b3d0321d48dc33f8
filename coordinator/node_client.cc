#include "coordinator/node_client.h"

#include <map>

#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/replica_call.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"
#include "gwmirror/v1/replica.grpc.pb.h"

namespace gwmirror {
namespace {

// One channel per (address, identity).
class GrpcNodeClient final : public NodeClient {
 public:
  GrpcNodeClient(gwmirror::v1::TlsConfig tls,
                 std::function<gwmirror::v1::Envelope(uint64_t)> stamp)
      : tls_(std::move(tls)), stamp_(std::move(stamp)) {}

  absl::StatusOr<gwmirror::v1::CutResult> Cut(const NodeRef& n, uint64_t epoch,
                                              uint64_t id,
                                              const NodeRef& replica,
                                              bool release,
                                              absl::Time deadline) override {
    ASSIGN_OR_RETURN(auto ch, Channel(n));
    gwmirror::v1::CutRequest req;
    *req.mutable_envelope() = stamp_(epoch);
    req.set_checkpoint(id);
    req.set_replica_address(replica.address);
    req.set_replica_identity(replica.identity);
    req.set_release_mass_deletion(release);
    gwmirror::v1::CutResult resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    RETURN_IF_ERROR(
        FromGrpc(gwmirror::v1::Source::NewStub(ch)->Cut(&ctx, req, &resp)));
    return resp;
  }

  absl::StatusOr<gwmirror::v1::ReplicaState> State(
      const NodeRef& n, uint64_t epoch, absl::Duration timeout) override {
    return Call<gwmirror::v1::ReplicaState>(
        n, epoch, gwmirror::v1::GetStateRequest(), timeout,
        &gwmirror::v1::Replica::Stub::GetState);
  }

  absl::Status Commit(const NodeRef& n, uint64_t epoch, uint64_t id,
                      const std::string& digest,
                      const std::vector<uint64_t>& pins) override {
    gwmirror::v1::CommitRequest req;
    req.set_checkpoint(id);
    req.set_manifest_digest(digest);
    for (uint64_t p : pins) req.add_pinned(p);
    return Call<gwmirror::v1::CommitResult>(
               n, epoch, req, absl::Minutes(10),
               &gwmirror::v1::Replica::Stub::Commit)
        .status();
  }

  absl::Status Abort(const NodeRef& n, uint64_t epoch, uint64_t id) override {
    gwmirror::v1::AbortRequest req;
    req.set_checkpoint(id);
    return Call<gwmirror::v1::AbortResult>(n, epoch, req, absl::Seconds(10),
                                           &gwmirror::v1::Replica::Stub::Abort)
        .status();
  }

  absl::StatusOr<std::vector<std::string>> Activate(
      const NodeRef& n, uint64_t epoch, gwmirror::v1::ActivationPhase phase,
      uint64_t checkpoint) override {
    gwmirror::v1::ActivateRequest req;
    req.set_phase(phase);
    req.set_checkpoint(checkpoint);
    ASSIGN_OR_RETURN(auto resp, Call<gwmirror::v1::ActivateResult>(
                                    n, epoch, req, absl::Hours(1),
                                    &gwmirror::v1::Replica::Stub::Activate));
    return std::vector<std::string>(resp.done().begin(), resp.done().end());
  }

  absl::StatusOr<gwmirror::v1::DrillResult> Drill(
      const NodeRef& n, uint64_t epoch, uint64_t id,
      const gwmirror::v1::StartDrillRequest& start) override {
    gwmirror::v1::DrillRequest req;
    req.set_drill_id(id);
    *req.mutable_smoke() = start.smoke();
    req.set_checkpoint(start.checkpoint());
    return Call<gwmirror::v1::DrillResult>(n, epoch, req, absl::Hours(2),
                                           &gwmirror::v1::Replica::Stub::Drill);
  }

  absl::StatusOr<gwmirror::v1::HistoryList> History(
      const NodeRef& n, uint64_t epoch,
      const std::vector<uint64_t>* set_pins) override {
    gwmirror::v1::ListHistoryRequest req;
    if (set_pins != nullptr) {
      req.set_set_pins(true);
      for (uint64_t p : *set_pins) req.add_pinned(p);
    }
    return Call<gwmirror::v1::HistoryList>(
        n, epoch, req, absl::Minutes(2),
        &gwmirror::v1::Replica::Stub::ListHistory);
  }

  absl::StatusOr<gwmirror::v1::VerifyResult> Verify(const NodeRef& n,
                                                    uint64_t epoch,
                                                    bool repair) override {
    gwmirror::v1::VerifyRequest req;
    req.set_repair(repair);
    return Call<gwmirror::v1::VerifyResult>(
        n, epoch, req, absl::Hours(2), &gwmirror::v1::Replica::Stub::Verify);
  }

  void Forget(const NodeRef& n) override {
    absl::MutexLock l(&mu_);
    channels_.erase(std::make_pair(n.address, n.identity));
  }

 private:
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(const NodeRef& n) {
    absl::MutexLock l(&mu_);
    auto key = std::make_pair(n.address, n.identity);
    auto it = channels_.find(key);
    // A channel that failed (the node was down) waits out its reconnect
    // backoff; the node may be back already, so dial afresh.
    if (it != channels_.end() &&
        it->second->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      return it->second;
    }
    ASSIGN_OR_RETURN(auto ch, DialMutualTls(tls_, n.address, n.identity));
    channels_[key] = ch;
    return ch;
  }

  // One unary Replica call under `epoch`.
  template <typename Resp, typename Req, typename Method>
  absl::StatusOr<Resp> Call(const NodeRef& n, uint64_t epoch, Req req,
                            absl::Duration timeout, Method method) {
    ASSIGN_OR_RETURN(auto ch, Channel(n));
    auto stub = gwmirror::v1::Replica::NewStub(ch);
    return CallReplica<Resp>(*stub, method, std::move(req), stamp_(epoch),
                             timeout);
  }

  const gwmirror::v1::TlsConfig tls_;
  const std::function<gwmirror::v1::Envelope(uint64_t)> stamp_;
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<grpc::Channel>>
      channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<NodeClient> NewGrpcNodeClient(
    gwmirror::v1::TlsConfig tls,
    std::function<gwmirror::v1::Envelope(uint64_t)> stamp) {
  return std::make_unique<GrpcNodeClient>(std::move(tls), std::move(stamp));
}

}  // namespace gwmirror
