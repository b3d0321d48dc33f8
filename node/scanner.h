// Walks a node's mirror set and builds the manifest of what it holds: the
// source scans to know what to send, a replica scans once to adopt the tree
// it starts with. Never follows a symlink inside a root and never opens
// anything but regular files (a FIFO must not hang a scan). Thread-compatible.
#ifndef GWMIRROR_NODE_SCANNER_H_
#define GWMIRROR_NODE_SCANNER_H_

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/fd.h"
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

// The whole mirror set of a node, as a gate for entries that arrive from
// elsewhere: a replica admits into its tree only what its own roots would
// mirror (the same include and exclude rules a scan applies), whatever a
// source sends. Not thread-safe: one per push (it remembers the
// directories it admitted, so entries in manifest order cost one glob
// check per path component once).
class MirrorSet {
 public:
  explicit MirrorSet(
      const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>&
          roots);
  // OK when a scan of this node's roots could produce an entry of `type`
  // at `path` (a validated relative path): below a root, no component
  // excluded, and a non-directory matching the root's include globs.
  // PERMISSION_DENIED naming the path and the rule otherwise.
  absl::Status Admit(const std::string& path, gwmirror::v1::EntryType type);

 private:
  struct Root {
    std::string path;
    MirrorFilter filter;
  };
  std::vector<Root> roots_;
  absl::flat_hash_set<std::string> admitted_dirs_;
};

// What a scan saw of one object (entries and the roots themselves): enough
// to tell afterwards whether it changed.
struct StatStamp {
  std::string path;
  uint64_t ino = 0, size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const StatStamp&) const = default;
};
StatStamp StampOf(const std::string& path, const struct stat& st);

// File times come from a coarse clock (one tick is 1 to 10 ms): a write in
// the same tick as the previous one leaves mtime and ctime unchanged. Only
// objects last changed more than this before a read can be judged by their
// times.
inline constexpr int64_t kTickMarginNs = 20'000'000;

// What a scan kept of one file it read (ScanResult::held): its bytes, or
// its open descriptor.
struct HeldContent {
  std::string bytes;
  std::shared_ptr<const UniqueFd> fd;
  // The descriptor's file as the scan read it, when its times predate the
  // read by more than a clock tick (kTickMarginNs): any later write shows
  // in them, so the push compares this stamp instead of hashing again.
  // For a pending digest that an earlier scan left (a watching tree keeps
  // entries across scans), the stamp alone, without a descriptor.
  std::optional<StatStamp> settled;
};

struct ScanResult {
  Manifest manifest;
  // Objects skipped (FIFOs, sockets, devices), one line each.
  std::vector<std::string> warnings;
  uint64_t bytes_hashed = 0;
  // Files whose digest came from the index without reading them.
  uint64_t index_hits = 0;
  // Objects the scan looked at (lstat, and a read or an index hit).
  uint64_t objects_read = 0;
  // Stat data and digests of every file seen, to save for the next scan.
  HashIndex index;
  // Every object's stat data as the scan saw it (a file's before reading),
  // while `record_stamps` (VerifyScanStable needs them; a scan proven
  // stable by the event queue does not).
  std::vector<StatStamp> stamps;
  bool record_stamps = true;
  // When the scan began (FileClockNs), set by callers that track it.
  int64_t started_ns = 0;
  // Content the scan read, by digest: a push sends what the scan verified
  // and need not race the live file. Files of at most kHoldFileMax bytes
  // are held as bytes while `hold_budget` (bytes) lasts; larger ones, while
  // `hold_fds` lasts, as the descriptor the scan read (a rename over the
  // path leaves the scanned content to it; an in-place write still shows
  // in the push's checks). Both are set by the caller; 0 holds nothing.
  absl::flat_hash_map<std::string, HeldContent> held;
  uint64_t hold_budget = 0;
  size_t hold_fds = 0;
  // Files of at least `pending_from` bytes (0: none) whose digest the
  // index does not vouch for are not read while a held descriptor is left
  // and their times predate the scan by more than a clock tick (the scan
  // waits out the tick of one of 64 MiB or more written just before: a
  // dump the cut wrote; one written meanwhile is hashed): their
  // entries carry no digest (Digests::kMayBePending) and `pending` holds
  // their descriptors, by path, with their settled stamps (a SourceTree
  // adds the stamps of the pending entries it kept from earlier scans). The
  // push hashes each as it sends it (docs/ARCHITECTURE.md, "Digests at the
  // end").
  uint64_t pending_from = 0;
  absl::flat_hash_map<std::string, HeldContent> pending;
};
inline constexpr uint64_t kHoldFileMax = 256 << 10;
inline constexpr size_t kHoldFdMax = 32;

// Told the digest a push found of a file whose scan left it pending: the
// file as hashed (`stat`) and its digest.
using DigestSink = std::function<void(
    const std::string& path, const struct stat& stat, const std::string& sha)>;

// Scans every root under `host_root`. A missing root yields no entries (the
// mass-deletion guard, later, decides what that means). With `previous`,
// files whose stat data it vouches for are not read again. It holds the
// descriptors of up to `hold_fds` large files it reads (ScanResult::held)
// or leaves pending (ScanResult::pending_from), never bytes: what a whole
// walk keeps must not grow with the tree.
absl::StatusOr<ScanResult> ScanMirrorSet(
    const std::string& host_root,
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots,
    const HashIndex* previous = nullptr, size_t hold_fds = 0,
    Env* env = Env::Default(), uint64_t pending_from = 0);

// One object of the mirror set, `full` (relative to the host root, below
// `root`, whose rules `filter` holds), and, when it is a directory and
// `recurse`, everything below it: appends their entries to `out`, a
// directory before its contents. `full` may be the root itself: everything
// below it (the root has no entry). Never follows a symlink below the
// root. `index` vouches for digests and records the new ones. NOT_FOUND
// when the object is not there or not in the mirror set (excluded, or below
// something that is not a directory).
absl::Status ScanObject(const std::string& host_root,
                        const gwmirror::v1::RootConfig& root,
                        const MirrorFilter& filter, const std::string& full,
                        bool recurse, HashIndex* index, ScanResult* result,
                        std::vector<Entry>* out, Env* env = Env::Default());

// The clock file times are on (CLOCK_REALTIME), in nanoseconds.
int64_t FileClockNs();

// Whether the tree a scan that began at `scan_start_ns` (FileClockNs())
// saw is still there, untouched: OK means every object kept its stat data
// from before it was read until now, so the manifest equals the tree as it
// was at one instant (the end of the scan) and not a mix of moments. ABORTED
// names the first object that moved, or that changed too close to the scan
// for its times to tell.
absl::Status VerifyScanStable(const std::string& host_root,
                              const std::vector<StatStamp>& stamps,
                              int64_t scan_start_ns);

// The roots' paths, as Manifest::CheckStructure wants them.
std::vector<std::string> RootPaths(
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SCANNER_H_
