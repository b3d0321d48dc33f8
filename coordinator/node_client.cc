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

  std::vector<absl::StatusOr<gwmirror::v1::CutResult>> CutAll(
      uint64_t epoch, uint64_t id, const std::vector<CutCall>& calls,
      absl::Time deadline) override {
    std::vector<NodeRef> sources;
    std::vector<gwmirror::v1::CutRequest> reqs;
    for (const CutCall& c : calls) {
      sources.push_back(c.source);
      gwmirror::v1::CutRequest& req = reqs.emplace_back();
      req.set_checkpoint(id);
      req.set_replica_address(c.replica.address);
      req.set_replica_identity(c.replica.identity);
      req.set_release_mass_deletion(c.release_mass_deletion);
    }
    return FanOut<gwmirror::v1::Source, gwmirror::v1::CutResult>(
        sources, std::move(reqs), epoch, deadline,
        &gwmirror::v1::Source::Stub::async::Cut);
  }

  std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> StateAll(
      const std::vector<NodeRef>& nodes, uint64_t epoch,
      absl::Duration timeout) override {
    return FanOut<gwmirror::v1::Replica, gwmirror::v1::ReplicaState>(
        nodes, std::vector<gwmirror::v1::GetStateRequest>(nodes.size()), epoch,
        absl::Now() + timeout, &gwmirror::v1::Replica::Stub::async::GetState);
  }

  std::vector<absl::Status> CommitAll(
      uint64_t epoch, uint64_t id, const std::vector<CommitCall>& calls,
      const std::vector<uint64_t>& pins) override {
    std::vector<NodeRef> replicas;
    std::vector<gwmirror::v1::CommitRequest> reqs;
    for (const CommitCall& c : calls) {
      replicas.push_back(c.replica);
      gwmirror::v1::CommitRequest& req = reqs.emplace_back();
      req.set_checkpoint(id);
      req.set_manifest_digest(c.digest);
      for (uint64_t p : pins) req.add_pinned(p);
    }
    std::vector<absl::Status> out;
    for (const auto& r :
         FanOut<gwmirror::v1::Replica, gwmirror::v1::CommitResult>(
             replicas, std::move(reqs), epoch, absl::Now() + absl::Minutes(10),
             &gwmirror::v1::Replica::Stub::async::Commit)) {
      out.push_back(r.status());
    }
    return out;
  }

  absl::StatusOr<gwmirror::v1::ReplicaState> State(
      const NodeRef& n, uint64_t epoch, absl::Duration timeout) override {
    return Call<gwmirror::v1::ReplicaState>(
        n, epoch, gwmirror::v1::GetStateRequest(), timeout,
        &gwmirror::v1::Replica::Stub::GetState);
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

  // One unary call of `Service` to each of `nodes`, every request stamped
  // with `epoch`'s envelope, all in flight at once through gRPC's callback
  // API (`method`). Waits for every completion; answers in the nodes'
  // order.
  template <typename Service, typename Resp, typename Req>
  std::vector<absl::StatusOr<Resp>> FanOut(
      const std::vector<NodeRef>& nodes, std::vector<Req> reqs, uint64_t epoch,
      absl::Time deadline,
      void (Service::Stub::async::*method)(grpc::ClientContext*, const Req*,
                                           Resp*,
                                           std::function<void(grpc::Status)>)) {
    struct Pending {
      std::unique_ptr<typename Service::Stub> stub;
      grpc::ClientContext ctx;
      Req req;
      Resp resp;
      grpc::Status status;
    };
    const gwmirror::v1::Envelope envelope = stamp_(epoch);
    absl::Mutex mu;
    size_t left = nodes.size();
    auto done = [&mu, &left] {
      absl::MutexLock l(&mu);
      --left;
    };
    std::vector<absl::StatusOr<Resp>> out(nodes.size(),
                                          absl::UnknownError("not called"));
    std::vector<std::unique_ptr<Pending>> calls(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      auto ch = Channel(nodes[i]);
      if (!ch.ok()) {
        out[i] = ch.status();
        done();
        continue;
      }
      calls[i] = std::make_unique<Pending>();
      Pending* p = calls[i].get();
      p->stub = Service::NewStub(*ch);
      p->req = std::move(reqs[i]);
      *p->req.mutable_envelope() = envelope;
      p->ctx.set_deadline(absl::ToChronoTime(deadline));
      (p->stub->async()->*method)(&p->ctx, &p->req, &p->resp,
                                  [p, &done](grpc::Status st) {
                                    p->status = std::move(st);
                                    done();
                                  });
    }
    {
      absl::MutexLock l(&mu);
      auto all = [&left]() { return left == 0; };
      mu.Await(absl::Condition(&all));
    }
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (calls[i] == nullptr) continue;
      absl::Status st = FromGrpc(calls[i]->status);
      if (st.ok()) {
        out[i] = std::move(calls[i]->resp);
      } else {
        out[i] = st;
      }
    }
    return out;
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
