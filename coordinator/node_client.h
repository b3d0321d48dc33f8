// What the coordinator asks of the nodes, behind a seam: one implementation
// speaks gRPC over mutual TLS (a channel per node, reconnecting fast after
// a node restarts); tests put simulated nodes in its place, so the
// checkpoint protocol runs with failures and time of their choosing and no
// processes. Every call names the node, the fencing epoch it is made under
// (the gRPC client stamps it with the coordinator's proof), and takes a
// deadline. Thread-safe.
#ifndef GWMIRROR_COORDINATOR_NODE_CLIENT_H_
#define GWMIRROR_COORDINATOR_NODE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

// A node as the coordinator reaches it.
struct NodeRef {
  std::string identity;  // its certificate name
  std::string address;   // host:port it registered with
};

class NodeClient {
 public:
  virtual ~NodeClient() = default;
  // A checkpoint's phases, each to every slot at once: the calls are all
  // in flight together and the answers come back in the calls' order (the
  // gRPC client issues them from the calling thread and counts their
  // completions: no thread is blocked per node).
  struct CutCall {
    NodeRef source, replica;
    bool release_mass_deletion = false;
  };
  // Source.Cut: each source stages checkpoint `id` at its replica.
  virtual std::vector<absl::StatusOr<gwmirror::v1::CutResult>> CutAll(
      uint64_t epoch, uint64_t id, const std::vector<CutCall>& calls,
      absl::Time deadline) = 0;
  virtual std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> StateAll(
      const std::vector<NodeRef>& nodes, uint64_t epoch,
      absl::Duration timeout) = 0;
  struct CommitCall {
    NodeRef replica;
    std::string digest;
  };
  virtual std::vector<absl::Status> CommitAll(
      uint64_t epoch, uint64_t id, const std::vector<CommitCall>& calls,
      const std::vector<uint64_t>& pins) = 0;
  // Replica calls, one node.
  virtual absl::StatusOr<gwmirror::v1::ReplicaState> State(
      const NodeRef& n, uint64_t epoch, absl::Duration timeout) = 0;
  virtual absl::Status Abort(const NodeRef& n, uint64_t epoch, uint64_t id) = 0;
  virtual absl::StatusOr<std::vector<std::string>> Activate(
      const NodeRef& n, uint64_t epoch, gwmirror::v1::ActivationPhase phase,
      uint64_t checkpoint) = 0;
  virtual absl::StatusOr<gwmirror::v1::DrillResult> Drill(
      const NodeRef& n, uint64_t epoch, uint64_t id,
      const gwmirror::v1::StartDrillRequest& start) = 0;
  // With `set_pins`, the pins are replaced first.
  virtual absl::StatusOr<gwmirror::v1::HistoryList> History(
      const NodeRef& n, uint64_t epoch,
      const std::vector<uint64_t>* set_pins) = 0;
  virtual absl::StatusOr<gwmirror::v1::VerifyResult> Verify(const NodeRef& n,
                                                            uint64_t epoch,
                                                            bool repair) = 0;
  // The node registered again: its process may be new, connect afresh.
  virtual void Forget(const NodeRef& n) {}
};

// The gRPC client: mutual TLS from `tls`; `stamp` gives the envelope (the
// epoch with its proof) each call carries.
std::unique_ptr<NodeClient> NewGrpcNodeClient(
    gwmirror::v1::TlsConfig tls,
    std::function<gwmirror::v1::Envelope(uint64_t)> stamp);

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_NODE_CLIENT_H_
