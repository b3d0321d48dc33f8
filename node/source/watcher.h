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
    // time arrives, so the node can tell the coordinator at once.
    std::function<void()> on_change;
    absl::Duration rescan_interval = absl::Hours(1);
    // Poll period when inotify cannot cover the tree (watch limit).
    absl::Duration poll_interval = absl::Seconds(10);
  };

  ChangeWatcher(gwmirror::v1::NodeConfig config, Options options);
  ~ChangeWatcher();  // Stops the thread.
  absl::Status Start();

  // The time of the oldest change not yet staged (InfinitePast: none).
  absl::Time PendingSince() const ABSL_LOCKS_EXCLUDED(mu_);
  // A scan that began at `scan_start` was staged: changes before it are in.
  void Staged(absl::Time scan_start) ABSL_LOCKS_EXCLUDED(mu_);

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
  absl::Time pending_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_change_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool degraded_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_WATCHER_H_
