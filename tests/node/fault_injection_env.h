// An Env for tests that knows what a power cut would take away (LevelDB's
// FaultInjectionTestEnv, with renames and directory entries modelled): it
// passes every call to the real file system under a test directory and
// records, since the last point each became durable,
//   - the content of every file written (its bytes as of its last fsync,
//     or "did not exist" for a file created since),
//   - every change of names (create, link, rename, unlink, mkdir, rmdir,
//     symlink), durable only once every directory it touched was fsynced
//     afterwards (or a syncfs ran).
// PowerCut() then puts the tree back as a machine that lost power would
// show it: unsynced name changes undone (newest first; an unlinked or
// renamed-over file comes back from an attic of hard links), unsynced
// content rolled back to its last synced bytes.
//
// It can also cut the power at the Nth mutating call (a write, a sync or a
// name change): that call and every later one fail with EIO without doing
// anything, as the process would see a dead disk; and it can fail chosen
// calls with an errno (ENOSPC, EIO) a given number of times.
//
// Model choices, stricter than ext4 in data=ordered mode: fsync of a file
// does not make its directory entry durable; rename across directories
// needs both directories synced. Only paths under `root` are tracked.
// Thread-safe (one mutex).
#ifndef GWMIRROR_TESTS_NODE_FAULT_INJECTION_ENV_H_
#define GWMIRROR_TESTS_NODE_FAULT_INJECTION_ENV_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/env.h"

namespace gwmirror::testing {

class FaultInjectionEnv final : public Env {
 public:
  // Tracks what happens under `root` (absolute); `attic` (absolute, on the
  // same file system, outside `root`) keeps what unsynced unlinks removed.
  FaultInjectionEnv(std::string root, std::string attic);

  // Mutating calls so far (each is a possible cut point).
  int mutations() const;
  // The `n`th mutating call from now (1 = the next) and every later call
  // fail with EIO, doing nothing.
  void CutPowerAt(int n);
  bool dead() const;
  // Puts the tree back as after a power loss at this moment, then lets
  // calls through again with nothing recorded (the machine rebooted).
  void PowerCut();
  // The next `count` calls of `op` ("write", "pwrite", "fsync", "syncfs",
  // "rename", "link", "unlink", "mkdir", "open-create", "read", "readdir",
  // "setfl")
  // on a path containing `path_part` fail with `err`.
  void FailNext(const std::string& op, const std::string& path_part, int err,
                int count = 1);
  // The `nth` Fstat from now (1 = the next) of a file whose path contains
  // `path_part` runs `action` first (a write that lands between two looks
  // of the code under test).
  void BeforeFstat(const std::string& path_part, int nth,
                   std::function<void()> action);

  int OpenAt(int dirfd, const char* path, int flags, mode_t mode) override;
  ssize_t Read(int fd, void* buf, size_t n) override;
  ssize_t PRead(int fd, void* buf, size_t n, off_t off) override;
  ssize_t ReadLinkAt(int dirfd, const char* path, char* buf, size_t n) override;
  int ReadDir(int dirfd, std::vector<std::string>* names) override;
  int FstatAt(int dirfd, const char* path, struct stat* st, int flags) override;
  int Fstat(int fd, struct stat* st) override;
  // SetFileFlags is injectable as "setfl" (setting O_DIRECT and clearing
  // it alike).
  int GetFileFlags(int fd) override;
  int SetFileFlags(int fd, int flags) override;
  ssize_t Write(int fd, const void* buf, size_t n) override;
  ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) override;
  int Ftruncate(int fd, off_t size) override;
  int Fsync(int fd) override;
  int Fdatasync(int fd) override;
  int Syncfs(int fd) override;
  int RenameAt(int olddir, const char* oldpath, int newdir,
               const char* newpath) override;
  int LinkAt(int olddir, const char* oldpath, int newdir, const char* newpath,
             int flags) override;
  int UnlinkAt(int dirfd, const char* path, int flags) override;
  int MkdirAt(int dirfd, const char* path, mode_t mode) override;
  int SymlinkAt(const char* target, int dirfd, const char* path) override;
  int Fchmod(int fd, mode_t mode) override;
  int FchmodAt(int dirfd, const char* path, mode_t mode, int flags) override;
  int FchownAt(int dirfd, const char* path, uid_t uid, gid_t gid,
               int flags) override;
  int UtimensAt(int dirfd, const char* path, const struct timespec times[2],
                int flags) override;
  // The real boot id until the first PowerCut, then another after each.
  std::string BootId() override;

 private:
  // One change of names, and how to undo it.
  struct NameOp {
    enum Kind { kCreate, kRemove, kRename } kind;
    std::string path;      // created or removed; rename: the new name
    std::string old_path;  // rename: the old name
    // What the op removed, kept to put back: a hard link in the attic (a
    // file), a link target (a symlink), or a directory's mode.
    std::string attic;
    std::string symlink_target;
    bool was_dir = false;
    mode_t dir_mode = 0;
    // Directories that must be synced after it for it to last.
    std::set<std::string> dirs;
  };
  struct Inode {
    dev_t dev;
    ino_t ino;
    bool operator<(const Inode& o) const {
      return dev != o.dev ? dev < o.dev : ino < o.ino;
    }
  };

  // The absolute path `path` names relative to `dirfd`.
  static std::string Resolve(int dirfd, const char* path);
  static std::string PathOfFd(int fd);
  bool Tracked(const std::string& abs) const;
  // Counts a mutating call; false (errno EIO) when the power is off.
  bool Mutate(const std::string& op, const std::string& abs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An injected failure for this call, or 0.
  int Injected(const std::string& op, const std::string& abs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Before content changes: remembers the bytes of its last synced state.
  void SnapshotContent(int fd, const std::string& abs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves whatever is at `abs` into the attic for a later undo.
  void Preserve(const std::string& abs, NameOp* op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncedDirectory(const std::string& abs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string root_;
  const std::string attic_;
  mutable absl::Mutex mu_;
  int mutations_ ABSL_GUARDED_BY(mu_) = 0;
  int cut_at_ ABSL_GUARDED_BY(mu_) = 0;
  bool dead_ ABSL_GUARDED_BY(mu_) = false;
  int power_cuts_ ABSL_GUARDED_BY(mu_) = 0;
  int attic_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<NameOp> ops_ ABSL_GUARDED_BY(mu_);
  // Content as of the last sync (nullopt: the file did not exist then).
  std::map<Inode, std::optional<std::string>> content_ ABSL_GUARDED_BY(mu_);
  struct Failure {
    std::string op, path_part;
    int err, count;
  };
  std::vector<Failure> failures_ ABSL_GUARDED_BY(mu_);
  struct Hook {
    std::string path_part;
    int left;
    std::function<void()> action;
  };
  std::vector<Hook> fstat_hooks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror::testing

#endif  // GWMIRROR_TESTS_NODE_FAULT_INJECTION_ENV_H_
