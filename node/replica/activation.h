// A promote's work on a node of the site becoming active
// (Replica.Activate): loading the committed dumps into this host's servers,
// then the start scripts, Node Managers in one phase and instances in the
// next (the coordinator finishes a phase on every node before the next).
#ifndef GWMIRROR_NODE_REPLICA_ACTIVATION_H_
#define GWMIRROR_NODE_REPLICA_ACTIVATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

// Sets the override's keys in its file (atomically, mode and owner kept);
// one line per key to `done`.
absl::Status ApplyOverride(const std::string& host_root,
                           const gwmirror::v1::SiteOverride& o,
                           std::vector<std::string>* done);

// Copies this site's own version of a file (kept outside the mirrored
// tree, at `source`) over `path` (relative to the host root), atomically,
// with the source's mode.
absl::Status InstallSiteFile(const std::string& host_root,
                             const gwmirror::v1::SiteFile& f,
                             std::vector<std::string>* done);

class Activation {
 public:
  explicit Activation(gwmirror::v1::NodeConfig config);

  // phase: "restore", "overrides" (site files, then key=value overrides),
  // "node-managers", "instances", their "stop-" forms (a failback quiets
  // the active site before its final checkpoint; scripts run with "stop",
  // in reverse order) or "dry-run" (what each would do). One line per
  // thing done.
  absl::StatusOr<std::vector<std::string>> Run(
      gwmirror::v1::ActivationPhase phase);

  // The start scripts of a phase, in name order (relative to the host
  // root).
  std::vector<std::string> Scripts(bool node_managers) const;

 private:
  const gwmirror::v1::NodeConfig config_;
  const std::string host_root_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_ACTIVATION_H_
