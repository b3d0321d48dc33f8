// A restore drill on a replica (Replica.Drill): the committed checkpoint,
// or an older retained one, is restored from the history into a scratch
// root under the state directory with every file's SHA-256 checked against
// the manifest (a file a commit replaces meanwhile is read from the version
// the commit preserved; a file that differs without a commit is DATA_LOSS
// naming it), its dumps
// are restored into scratch databases, the smoke command runs against it,
// and everything is removed again, whatever the outcome. Replication keeps
// running meanwhile: the drill only reads the tree.
#ifndef GWMIRROR_NODE_REPLICA_DRILL_H_
#define GWMIRROR_NODE_REPLICA_DRILL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/replica.pb.h"
#include "node/replica/store.h"

namespace gwmirror {

class DrillRunner {
 public:
  // `store` outlives the runner.
  DrillRunner(gwmirror::v1::NodeConfig config, ReplicaStore* store);

  // One drill at a time (ABORTED otherwise).
  absl::StatusOr<gwmirror::v1::DrillResult> Run(
      const gwmirror::v1::DrillRequest& req);

  // Restores retained checkpoint `n` (0: the committed one) into `scratch`
  // (created; must not exist), verifying every file; fills checkpoint,
  // entries and bytes.
  absl::Status Restore(uint64_t n, const std::string& scratch,
                       gwmirror::v1::DrillResult* result);

 private:
  const gwmirror::v1::NodeConfig config_;
  ReplicaStore* const store_;
  absl::Mutex mu_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_DRILL_H_
