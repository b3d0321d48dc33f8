// The source side of the checkpoint protocol: on the coordinator's Cut(N),
// take a stable scan of the mirror set (a manifest that equals the tree as
// it was at one instant, not a mix of moments), stage it at the slot's
// replica as checkpoint N, and answer with its digest and the host's
// topology report. One cut at a time; thread-safe.
#ifndef GWMIRROR_NODE_SOURCE_CUT_SERVICE_H_
#define GWMIRROR_NODE_SOURCE_CUT_SERVICE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/authz.h"
#include "common/epoch.h"
#include "common/send_budget.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"
#include "node/databases.h"
#include "node/source/prestager.h"
#include "node/source/source_tree.h"
#include "node/source/watcher.h"
#include "node/topology_report.h"

namespace gwmirror {

// Where this node's TopologyReport comes from.
TopologySource TopologySourceOf(const gwmirror::v1::NodeConfig& config);

class CutService final : public gwmirror::v1::Source::Service {
 public:
  // `gate`, `epoch`, `tree`, `watcher`, `prestager` and `budget` (the last
  // three may be null) outlive the service; pushes draw from `budget`.
  CutService(gwmirror::v1::NodeConfig config, CallGate* gate, EpochFile* epoch,
             SourceTree* tree, ChangeWatcher* watcher, Prestager* prestager,
             SendBudget* budget);

  grpc::Status Cut(grpc::ServerContext* ctx,
                   const gwmirror::v1::CutRequest* req,
                   gwmirror::v1::CutResult* resp) override;

 private:
  absl::StatusOr<gwmirror::v1::CutResult> DoCut(
      const gwmirror::v1::CutRequest& req, absl::Time deadline);

  // The channel to the replica at `address` (certificate `identity`): one
  // per peer, kept from cut to cut, so a cut across a WAN pays no TCP and
  // TLS handshakes.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ReplicaChannel(
      const std::string& address, const std::string& identity)
      ABSL_LOCKS_EXCLUDED(channel_mu_);

  // Runs a pre- or post-cut hook.
  absl::Status Hook(const google::protobuf::RepeatedPtrField<std::string>& argv,
                    const std::string& what);

  const gwmirror::v1::NodeConfig config_;
  DatabaseJobs databases_;
  CallGate& gate_;
  EpochFile* const epoch_;
  SendBudget* const budget_;
  SourceTree* const tree_;
  ChangeWatcher* const watcher_;
  Prestager* const prestager_;
  // The cut's own, without a pre-stager (which shares its memo otherwise).
  ManifestMemo memo_;
  absl::Mutex cut_mu_;
  absl::Mutex channel_mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(channel_mu_);
  std::string channel_peer_ ABSL_GUARDED_BY(channel_mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_CUT_SERVICE_H_
