// Change detection at the source: inotify on every directory of the mirror
// set (new directories are watched as they appear, excluded paths are
// ignored), so the coordinator cuts while something changed and never while
// idle. What it tracks is only "something changed since": every cut scans
// the whole mirror set anyway (cheaply, with the stat index), so an
// IN_Q_OVERFLOW or an exhausted watch limit loses nothing, it only means
// "changed, look". A periodic full rescan (default hourly) is the safety net
// for what inotify cannot see (a file system remounted under a root).
// Thread-safe; one background thread.
#ifndef GWMIRROR_NODE_SOURCE_WATCHER_H_
#define GWMIRROR_NODE_SOURCE_WATCHER_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "gwmirror/v1/config.pb.h"
#include "node/scanner.h"

namespace gwmirror {

class ChangeWatcher {
 public:
  struct Options {
    // Called (from the watcher thread) when the first change after a quiet
    // time (or after the last pre-stage) arrives, so the node can tell the
    // coordinator and the pre-stager at once.
    std::function<void()> on_change;
    absl::Duration rescan_interval = absl::Hours(1);
    // Poll period when inotify cannot cover the tree (watch limit).
    absl::Duration poll_interval = absl::Seconds(10);
    // Paths (relative to the host root) whose changes are not news: the
    // dump files that cuts themselves write.
    std::set<std::string> ignore;
  };

  ChangeWatcher(gwmirror::v1::NodeConfig config, Options options);
  ~ChangeWatcher();  // Stops the thread.
  absl::Status Start();

  // What the source has not shipped yet.
  struct Pending {
    // Oldest change not yet in a staged checkpoint (InfinitePast: none).
    absl::Time since = absl::InfinitePast();
    // Oldest change whose content is not yet at the replica, neither
    // pre-staged nor cut (InfinitePast: none): the replication lag.
    absl::Time unstaged_since = absl::InfinitePast();
    absl::Time last_change = absl::InfinitePast();
    // Changed content the replica's committed tree lacks, as of the last
    // look (a pre-stage scan; 0 after a cut staged everything).
    uint64_t files = 0;
    uint64_t bytes = 0;
  };
  Pending Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Time PendingSince() const { return Snapshot().since; }
  // A scan that began at `scan_start` was staged as a checkpoint: changes
  // before it are in.
  void Staged(absl::Time scan_start) ABSL_LOCKS_EXCLUDED(mu_);
  // The content of a scan that began at `scan_start` was pre-staged;
  // `files` and `bytes` of changed content await a cut.
  void Prestaged(absl::Time scan_start, uint64_t files, uint64_t bytes)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Polling instead of watching (the watch limit was reached).
  bool degraded() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  // Watches `dir` (relative to the host root) and every directory below it
  // that is in the mirror set.
  void WatchTree(const std::string& dir, int root_index);
  void Changed() ABSL_LOCKS_EXCLUDED(mu_);

  const gwmirror::v1::NodeConfig config_;
  const Options options_;
  std::string host_root_;
  UniqueFd fd_;
  UniqueFd stop_fd_;                   // eventfd
  std::vector<MirrorFilter> filters_;  // One per root.
  // Watch descriptor -> (directory relative to the host root, root index).
  std::map<int, std::pair<std::string, int>> dirs_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  Pending pending_ ABSL_GUARDED_BY(mu_);
  bool degraded_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_WATCHER_H_
