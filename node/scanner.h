// Walks a node's mirror set and builds the manifest of what it holds: the
// source scans to know what to send, a replica scans once to adopt the tree
// it starts with. Never follows a symlink inside a root and never opens
// anything but regular files (a FIFO must not hang a scan). Thread-compatible.
#ifndef GWMIRROR_NODE_SCANNER_H_
#define GWMIRROR_NODE_SCANNER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/manifest.h"
#include "gwmirror/v1/config.pb.h"
#include "node/hash_index.h"

namespace gwmirror {

// Transient paths of a gateway installation (docs/ARCHITECTURE.md).
const std::vector<std::string>& DefaultExcludes();

// Include/exclude rules of one root.
class MirrorFilter {
 public:
  explicit MirrorFilter(const gwmirror::v1::RootConfig& root);
  // `rel` is the path relative to the root, `name` its last component,
  // `full` the path relative to the host root.
  bool Excluded(const std::string& rel, const std::string& name,
                const std::string& full) const;
  // Whether a non-directory at `rel` is in the mirror set.
  bool Included(const std::string& rel, const std::string& name,
                const std::string& full) const;

 private:
  std::vector<std::string> include_;
  std::vector<std::string> exclude_;
};

struct ScanResult {
  Manifest manifest;
  // Objects skipped (FIFOs, sockets, devices), one line each.
  std::vector<std::string> warnings;
  uint64_t bytes_hashed = 0;
  // Files whose digest came from the index without reading them.
  uint64_t index_hits = 0;
  // Stat data and digests of every file seen, to save for the next scan.
  HashIndex index;
};

// Scans every root under `host_root`. A missing root yields no entries (the
// mass-deletion guard, later, decides what that means). With `previous`,
// files whose stat data it vouches for are not read again.
absl::StatusOr<ScanResult> ScanMirrorSet(
    const std::string& host_root,
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots,
    const HashIndex* previous = nullptr);

// The roots' paths, as Manifest::CheckStructure wants them.
std::vector<std::string> RootPaths(
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SCANNER_H_
