// Writes inside the replica's mirrored roots without ever following a
// symlink below a root: every path is walked component by component with
// openat(O_NOFOLLOW | O_DIRECTORY) from the root's directory descriptor, so a
// symlink planted in the tree cannot redirect a write outside it. Symlinks
// in the configured root prefix itself (e.g. /opt -> /data/opt) are trusted
// configuration. Every operation is idempotent, which the redo journal of
// ReplicaStore relies on. The directory of the last path walked is kept
// open, so files of one directory (a commit applies them in path order) do
// not walk the path again; it is dropped when this writer removes or
// replaces anything that may be a directory, and not used once its
// directory is gone. Thread-safe.
#ifndef GWMIRROR_NODE_REPLICA_TREE_WRITER_H_
#define GWMIRROR_NODE_REPLICA_TREE_WRITER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/fd.h"
#include "common/manifest.h"

namespace gwmirror {

// Who owns a restored object when the process may not give it away.
enum class Owners {
  // As the entry says, or an error (the replica, which runs as root: an
  // owner it cannot set would show as drift).
  kRequired,
  // As the entry says where the process may (EPERM is not an error): a
  // restore or an import by an unprivileged user.
  kWherePermitted,
};

// The one place metadata is applied: owner (first: chown clears
// setuid/setgid), mode (not for symlinks; checked through a descriptor, so
// never through a symlink) and mtime (negative nanoseconds normalised) of
// `e` on `name` in directory `dirfd`, never following a symlink.
absl::Status ApplyMetadataAt(Env* env, int dirfd, const std::string& name,
                             const Entry& e, Owners owners);

class TreeWriter {
 public:
  // `roots` are relative to `host_root`; missing roots are created (0755).
  // Every file operation goes through `env`.
  static absl::StatusOr<TreeWriter> Open(const std::string& host_root,
                                         const std::vector<std::string>& roots,
                                         Env* env = Env::Default());

  // Opens the directory that holds `path` (a manifest path) and returns it
  // with the last component. FAILED_PRECONDITION when a component is a
  // symlink or not a directory.
  absl::StatusOr<std::pair<UniqueFd, std::string>> OpenParent(
      const std::string& path) const;
  // Opens a committed regular file for reading, never through a symlink.
  absl::StatusOr<UniqueFd> OpenFileForRead(const std::string& path) const;

  // Removes whatever is at `path` (recursively); missing is fine.
  absl::Status Remove(const std::string& path) const;
  // Makes `path` a directory: kept when it is one, else replaced.
  absl::Status EnsureDirectory(const std::string& path) const;
  // Makes `path` the file `staged` (a path outside the tree, in the same
  // file system when `link` is true): hard link or copy into a temporary
  // name beside the target, then rename over whatever is there.
  absl::Status PlaceFile(const std::string& path, const std::string& staged,
                         bool link) const;
  // Makes `path` a symlink to `target`.
  absl::Status PlaceSymlink(const std::string& path,
                            const std::string& target) const;
  // Owner, mode (not for symlinks) and mtime of `e`, never following links.
  absl::Status ApplyMetadata(const Entry& e) const;
  // Flushes the file systems of every root (one syncfs per root).
  absl::Status SyncAll() const;

 private:
  struct Root {
    std::string path;
    UniqueFd fd;
  };
  const Root* RootOf(const std::string& path) const;
  // The last parent directory walked to: its path and descriptor.
  struct DirCache {
    absl::Mutex mu;
    std::string dir ABSL_GUARDED_BY(mu);
    UniqueFd fd ABSL_GUARDED_BY(mu);
  };
  void DropCachedDirectory() const;

  Env* env_ = Env::Default();
  std::vector<Root> roots_;
  std::unique_ptr<DirCache> cache_ = std::make_unique<DirCache>();
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_TREE_WRITER_H_
