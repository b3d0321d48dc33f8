// Change detection at the source: inotify on every directory of the mirror
// set (new directories are watched as they appear, excluded paths are
// ignored), so the coordinator cuts while something changed and never while
// idle. It tracks "something changed since" (for the coordinator) and which
// paths changed (for SourceTree, which re-reads only those). TakeDirty
// first reads every event the kernel has queued: the kernel queues an event
// before the system call that caused it returns, so a change completed
// before TakeDirty is in its answer (the barrier SourceTree's stable scan
// stands on). An IN_Q_OVERFLOW means "everything may have changed": the
// next scan walks the whole mirror set; an exhausted watch limit makes every
// scan a whole walk verified by stat. A periodic whole walk (default
// hourly) is the safety net for what inotify cannot see (a file system
// remounted under a root, a write through a hard link from outside).
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
    // Paths inotify reported since the last pre-stage or cut took them (an
    // event count), and the sizes of those files at their events: a
    // burst's size, known before anything is read.
    uint64_t changed_paths = 0;
    uint64_t changed_bytes = 0;
    // Files opened for writing and not closed yet (a create or a write
    // seen, no close), among those whose writing began within the last
    // second: a burst is not over while one is still being written.
    uint64_t writing = 0;
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

  // What changed since the last TakeDirty (or since Start).
  struct Dirty {
    // Anything may have changed (the start, a queue overflow, the periodic
    // safety net): walk the whole mirror set.
    bool all = false;
    // Some directory is not watched (watch limit): inotify's silence proves
    // nothing, so a scan must verify itself by stat.
    bool incomplete = false;
    // Paths (relative to the host root) that changed -> whether the whole
    // subtree below them is to be read again (a directory created, moved
    // in or away, or gone).
    std::map<std::string, bool> paths;
    bool empty() const { return !all && !incomplete && paths.empty(); }
  };
  // Reads every event queued so far, then hands over (and forgets) what
  // changed. Retries roots that are not watched (missing at the start, or
  // replaced) and reports them changed.
  Dirty TakeDirty() ABSL_LOCKS_EXCLUDED(events_mu_, mu_);

 private:
  void Run();
  // Reads and handles every queued event.
  void ReadEvents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_);
  // Watches `dir` (relative to the host root) and every directory below it
  // that is in the mirror set.
  void WatchTree(const std::string& dir, int root_index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_);
  // Whether root `root_index` itself is watched.
  bool RootWatched(int root_index) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_);
  // Stops watching `dir` and everything below it (moved away).
  void UnwatchTree(const std::string& dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_);
  void MarkDirty(const std::string& path, bool subtree)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_);
  // `paths`: how many paths the event names (0: none in particular);
  // `bytes`: the size of the file it names.
  void Changed(int paths = 1, uint64_t bytes = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // Notes a file's event for `writing_` (inotify mask).
  void Writing(const std::string& path, uint32_t mask) ABSL_LOCKS_EXCLUDED(mu_);

  const gwmirror::v1::NodeConfig config_;
  const Options options_;
  std::string host_root_;
  UniqueFd fd_;
  UniqueFd stop_fd_;                   // eventfd
  std::vector<MirrorFilter> filters_;  // One per root.
  std::thread thread_;

  // Held while events are read and handled (by the thread or TakeDirty).
  absl::Mutex events_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Watch descriptor -> (directory relative to the host root, root index).
  std::map<int, std::pair<std::string, int>> dirs_ ABSL_GUARDED_BY(events_mu_);
  Dirty dirty_ ABSL_GUARDED_BY(events_mu_);
  // Each root's last watch descriptor (-1: never watched).
  std::vector<int> root_wd_ ABSL_GUARDED_BY(events_mu_);

  mutable absl::Mutex mu_;
  Pending pending_ ABSL_GUARDED_BY(mu_);
  // Paths being written (created or modified, not closed yet), and since
  // when.
  std::map<std::string, absl::Time> writing_ ABSL_GUARDED_BY(mu_);
  bool degraded_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_WATCHER_H_
