// The source's mirror set as of its last scan, kept in memory: entries by
// path and the stat index. With a ChangeWatcher, a scan re-reads only the
// paths inotify reported (a changed file is re-hashed, a new directory
// walked, a removed one dropped with everything below it), so its cost
// follows the change, not the tree. Without one (a one-shot push), or when
// inotify cannot vouch for the tree (the start, a queue overflow, the watch
// limit, the hourly safety net), a scan walks the whole mirror set.
//
// A stable scan yields a manifest equal to the tree at one instant. With
// the watcher, its proof is the event queue: after re-reading what changed,
// TakeDirty again; no event in between means nothing changed while the
// scan read (the kernel queues an event before the writing call returns),
// otherwise the new paths are read and the check repeats. Without the
// watcher (or with some directory unwatched), every object's stat data is
// compared with what the walk saw (VerifyScanStable).
//
// A scan holds what it read (ScanResult::held): a scan of changed paths
// the small files' bytes (16 MiB at most), every scan up to 32 larger
// files' descriptors, so the push sends the very content the scan
// verified instead of re-reading a live file that may have changed again
// since: under constant churn, a cut still goes through.
//
// The stat index is saved to the state directory after a stable scan that
// changed it (so a killed source re-hashes nothing a cut saw), after other
// scans at most once a minute, and on destruction. Thread-safe:
// one scan at a time.
#ifndef GWMIRROR_NODE_SOURCE_SOURCE_TREE_H_
#define GWMIRROR_NODE_SOURCE_SOURCE_TREE_H_

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"
#include "node/hash_index.h"
#include "node/scanner.h"
#include "node/source/watcher.h"

namespace gwmirror {

class SourceTree {
 public:
  // `watcher` (may be null) outlives the tree and has been started.
  // `always` (relative to the host root) are re-read at every scan, watched
  // or not: the dump files the cut itself writes, which the watcher
  // ignores.
  // Its reads, listings and the index's saves go through `env`.
  SourceTree(gwmirror::v1::NodeConfig config, ChangeWatcher* watcher,
             std::set<std::string> always = {}, Env* env = Env::Default());
  ~SourceTree();  // Saves the index.
  SourceTree(const SourceTree&) = delete;
  SourceTree& operator=(const SourceTree&) = delete;

  // The manifest of the tree as it was at one instant (ScanResult's
  // `started_ns`: every change before it is in). Tries for at most
  // `max_wait`, then ABORTED naming the last path that moved. `read_along`,
  // when given, runs after each scan and before its verification, so what
  // it reads of the mirror set is of the same instant. Only `manifest`,
  // `warnings`, `bytes_hashed`, `index_hits`, `started_ns`, `objects_read`
  // and `held` of the result are filled.
  absl::StatusOr<ScanResult> StableScan(
      absl::Duration max_wait, int* attempts = nullptr,
      const std::function<void()>& read_along = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The tree as it is now, brought up to date once, not verified (what
  // the pre-stager sends ahead; the cut verifies).
  absl::StatusOr<ScanResult> Refresh() ABSL_LOCKS_EXCLUDED(mu_);

  // A scan leaves the digests of large files pending (ScanResult::
  // pending_from, the config's source.digest_while_sending_from) for the
  // push to find as it sends them; the push tells them here (a DigestSink),
  // and the entry takes its digest while the file hashed is still the one
  // its last read left pending (the same stamp), and the index records it,
  // so no scan reads the file again.
  void Learn(const std::string& path, const struct stat& st,
             const std::string& sha) ABSL_LOCKS_EXCLUDED(mu_);
  DigestSink LearnSink() {
    return [this](const std::string& path, const struct stat& st,
                  const std::string& sha) { Learn(path, st, sha); };
  }

 private:
  // Reads `dirty` into the entries (all of it when it says so).
  absl::Status Apply(const ChangeWatcher::Dirty& dirty, ScanResult* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A whole walk replaces the entries and the index.
  absl::Status WalkAll(ScanResult* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-reads one path (and its subtree when `subtree` or when it became a
  // directory).
  absl::Status ApplyPath(const std::string& path, bool subtree, ScanResult* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the entries of `path` and of everything below it.
  void Erase(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops their index records.
  void ForgetIndex(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A scan's result before the scan: what it may hold and leave pending.
  ScanResult NewScan(bool hold_bytes) const;
  // The watcher's news, plus the paths re-read at every scan.
  ChangeWatcher::Dirty Take(bool with_always)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The manifest of the entries; saves the index when it is due.
  absl::StatusOr<ScanResult> Finish(ScanResult out, bool stable)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IndexChanged() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The old way, for a tree inotify cannot vouch for: whole walks until
  // one passes VerifyScanStable.
  absl::StatusOr<ScanResult> StatVerifiedScan(
      absl::Duration max_wait, int* attempts,
      const std::function<void()>& read_along)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const gwmirror::v1::NodeConfig config_;
  ChangeWatcher* const watcher_;
  const std::set<std::string> always_;
  const std::string host_root_;
  const std::string index_path_;
  const uint64_t pending_from_;
  Env* const env_;
  std::vector<MirrorFilter> filters_;  // One per root.

  absl::Mutex mu_;
  bool walked_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // The manifest of `entries_` as last built (rebuilt once they change).
  Manifest manifest_ ABSL_GUARDED_BY(mu_);
  bool manifest_stale_ ABSL_GUARDED_BY(mu_) = true;
  // An entry that failed ValidateEntry was read since the last build: the
  // next build checks them all, and fails naming it, as a walk would.
  bool invalid_read_ ABSL_GUARDED_BY(mu_) = false;
  // Paths set or erased in `entries_` since `manifest_` was built.
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  HashIndex index_ ABSL_GUARDED_BY(mu_);
  // The stamps of the entries whose digest is pending, as their last read
  // saw them: a scan that does not read such a file again hands the push
  // its stamp (ScanResult::pending), and Learn takes a digest only for it.
  absl::flat_hash_map<std::string, StatStamp> pending_stamps_
      ABSL_GUARDED_BY(mu_);
  bool index_loaded_ ABSL_GUARDED_BY(mu_) = false;
  // The index's change count when it was last saved (or loaded); a whole
  // walk's new index always differs.
  uint64_t index_saved_changes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t index_saved_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool index_replaced_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time index_saved_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_SOURCE_TREE_H_
