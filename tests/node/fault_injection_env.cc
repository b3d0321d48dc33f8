#include "tests/node/fault_injection_env.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gwmirror::testing {
namespace {

Env* Real() { return Env::Default(); }

std::string ParentOf(const std::string& abs) {
  size_t slash = abs.rfind('/');
  return slash == 0 ? "/" : abs.substr(0, slash);
}

bool Exists(const std::string& abs, struct stat* st) {
  return fstatat(AT_FDCWD, abs.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0;
}

// Reads all of `fd` from offset 0.
std::string Contents(int fd) {
  std::string out;
  char buf[65536];
  for (off_t off = 0;;) {
    ssize_t n = pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, n);
    off += n;
  }
  return out;
}

}  // namespace

FaultInjectionEnv::FaultInjectionEnv(std::string root, std::string attic)
    : root_(std::move(root)), attic_(std::move(attic)) {
  std::filesystem::create_directories(attic_);
}

std::string FaultInjectionEnv::PathOfFd(int fd) {
  char buf[PATH_MAX];
  std::string link = absl::StrCat("/proc/self/fd/", fd);
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : std::string();
}

std::string FaultInjectionEnv::Resolve(int dirfd, const char* path) {
  if (path[0] == '/') return path;
  std::string base;
  if (dirfd == AT_FDCWD) {
    char cwd[PATH_MAX];
    base = getcwd(cwd, sizeof cwd) ? cwd : "";
  } else {
    base = PathOfFd(dirfd);
  }
  return absl::StrCat(base, "/", path);
}

bool FaultInjectionEnv::Tracked(const std::string& abs) const {
  return abs == root_ || absl::StartsWith(abs, root_ + "/");
}

int FaultInjectionEnv::mutations() const {
  absl::MutexLock l(&mu_);
  return mutations_;
}

void FaultInjectionEnv::CutPowerAt(int n) {
  absl::MutexLock l(&mu_);
  cut_at_ = mutations_ + n;
}

bool FaultInjectionEnv::dead() const {
  absl::MutexLock l(&mu_);
  return dead_;
}

void FaultInjectionEnv::FailNext(const std::string& op,
                                 const std::string& path_part, int err,
                                 int count) {
  absl::MutexLock l(&mu_);
  failures_.push_back({op, path_part, err, count});
}

bool FaultInjectionEnv::Mutate(const std::string& op, const std::string& abs) {
  if (dead_) {
    errno = EIO;
    return false;
  }
  ++mutations_;
  if (cut_at_ > 0 && mutations_ >= cut_at_) {
    dead_ = true;
    errno = EIO;
    return false;
  }
  if (int err = Injected(op, abs); err != 0) {
    errno = err;
    return false;
  }
  return true;
}

int FaultInjectionEnv::Injected(const std::string& op, const std::string& abs) {
  for (Failure& f : failures_) {
    if (f.count > 0 && f.op == op && absl::StrContains(abs, f.path_part)) {
      --f.count;
      return f.err;
    }
  }
  return 0;
}

void FaultInjectionEnv::SnapshotContent(int fd, const std::string& abs) {
  if (!Tracked(abs)) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  Inode key{st.st_dev, st.st_ino};
  if (content_.count(key)) return;  // Already as of the last sync.
  content_[key] = Contents(fd);
}

void FaultInjectionEnv::Preserve(const std::string& abs, NameOp* op) {
  struct stat st;
  if (!Exists(abs, &st)) return;
  if (S_ISDIR(st.st_mode)) {
    op->was_dir = true;
    op->dir_mode = st.st_mode & 07777;
  } else if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX];
    ssize_t n = readlink(abs.c_str(), buf, sizeof buf);
    op->symlink_target.assign(buf, n > 0 ? n : 0);
  } else {
    op->attic = absl::StrCat(attic_, "/", ++attic_seq_);
    if (link(abs.c_str(), op->attic.c_str()) != 0) op->attic.clear();
  }
}

void FaultInjectionEnv::SyncedDirectory(const std::string& abs) {
  std::vector<NameOp> left;
  for (NameOp& op : ops_) {
    op.dirs.erase(abs);
    if (!op.dirs.empty()) left.push_back(std::move(op));
  }
  ops_ = std::move(left);
}

void FaultInjectionEnv::PowerCut() {
  absl::MutexLock l(&mu_);
  namespace fs = std::filesystem;
  std::error_code ec;
  // Names first, newest first.
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    const NameOp& op = *it;
    switch (op.kind) {
      case NameOp::kCreate:
        fs::remove_all(op.path, ec);
        break;
      case NameOp::kRemove:
        if (op.was_dir) {
          mkdir(op.path.c_str(), op.dir_mode);
        } else if (!op.symlink_target.empty()) {
          symlink(op.symlink_target.c_str(), op.path.c_str());
        } else if (!op.attic.empty()) {
          link(op.attic.c_str(), op.path.c_str());
        }
        break;
      case NameOp::kRename:
        rename(op.path.c_str(), op.old_path.c_str());
        if (op.was_dir) {
          mkdir(op.path.c_str(), op.dir_mode);
        } else if (!op.symlink_target.empty()) {
          symlink(op.symlink_target.c_str(), op.path.c_str());
        } else if (!op.attic.empty()) {
          link(op.attic.c_str(), op.path.c_str());
        }
        break;
    }
  }
  // Then content: every file still there whose bytes were not synced.
  if (!content_.empty()) {
    for (auto p = fs::recursive_directory_iterator(
             root_, fs::directory_options::skip_permission_denied, ec);
         !ec && p != fs::recursive_directory_iterator(); p.increment(ec)) {
      struct stat st;
      if (lstat(p->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      auto c = content_.find(Inode{st.st_dev, st.st_ino});
      if (c == content_.end()) continue;
      int fd = open(p->path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
      if (fd < 0) continue;
      const std::string& bytes = *c->second;
      ssize_t n = write(fd, bytes.data(), bytes.size());
      (void)n;
      close(fd);
    }
  }
  ops_.clear();
  content_.clear();
  failures_.clear();
  fs::remove_all(attic_, ec);
  fs::create_directories(attic_, ec);
  dead_ = false;
  cut_at_ = 0;
  mutations_ = 0;
  ++power_cuts_;
}

std::string FaultInjectionEnv::BootId() {
  absl::MutexLock l(&mu_);
  const std::string real = Env::Default()->BootId();
  return power_cuts_ == 0
             ? real
             : absl::StrCat(real, "/after-power-cut-", power_cuts_);
}

// ------------------------------------------------------------ calls

int FaultInjectionEnv::OpenAt(int dirfd, const char* path, int flags,
                              mode_t mode) {
  const std::string abs = Resolve(dirfd, path);
  const bool writes = (flags & (O_CREAT | O_TRUNC)) != 0;
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  if (!writes) return Real()->OpenAt(dirfd, path, flags, mode);
  struct stat before;
  const bool existed = Exists(abs, &before);
  if (!Mutate((flags & O_CREAT) && !existed ? "open-create" : "open-trunc",
              abs)) {
    return -1;
  }
  if (existed && (flags & O_TRUNC) && S_ISREG(before.st_mode)) {
    int rd = open(abs.c_str(), O_RDONLY | O_CLOEXEC);
    if (rd >= 0) {
      SnapshotContent(rd, abs);
      close(rd);
    }
  }
  int fd = Real()->OpenAt(dirfd, path, flags, mode);
  if (fd >= 0 && !existed && Tracked(abs)) {
    NameOp op{NameOp::kCreate, abs};
    op.dirs.insert(ParentOf(abs));
    ops_.push_back(std::move(op));
    struct stat st;
    if (fstat(fd, &st) == 0) content_[Inode{st.st_dev, st.st_ino}] = "";
  }
  return fd;
}

ssize_t FaultInjectionEnv::Read(int fd, void* buf, size_t n) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  if (int err = Injected("read", PathOfFd(fd)); err != 0) {
    errno = err;
    return -1;
  }
  return Real()->Read(fd, buf, n);
}

ssize_t FaultInjectionEnv::PRead(int fd, void* buf, size_t n, off_t off) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  if (int err = Injected("read", PathOfFd(fd)); err != 0) {
    errno = err;
    return -1;
  }
  return Real()->PRead(fd, buf, n, off);
}

int FaultInjectionEnv::GetFileFlags(int fd) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  return Real()->GetFileFlags(fd);
}

int FaultInjectionEnv::SetFileFlags(int fd, int flags) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  if (int err = Injected("setfl", PathOfFd(fd)); err != 0) {
    errno = err;
    return -1;
  }
  return Real()->SetFileFlags(fd, flags);
}

ssize_t FaultInjectionEnv::ReadLinkAt(int dirfd, const char* path, char* buf,
                                      size_t n) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  return Real()->ReadLinkAt(dirfd, path, buf, n);
}

int FaultInjectionEnv::ReadDir(int dirfd, std::vector<std::string>* names) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  if (int err = Injected("readdir", PathOfFd(dirfd)); err != 0) {
    // What the real call does: the entries read so far are dropped.
    names->clear();
    errno = err;
    return -1;
  }
  return Real()->ReadDir(dirfd, names);
}

int FaultInjectionEnv::FstatAt(int dirfd, const char* path, struct stat* st,
                               int flags) {
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  return Real()->FstatAt(dirfd, path, st, flags);
}

void FaultInjectionEnv::BeforeFstat(const std::string& path_part, int nth,
                                    std::function<void()> action) {
  absl::MutexLock l(&mu_);
  // The next one at the earliest.
  fstat_hooks_.push_back(Hook{path_part, std::max(nth, 1), std::move(action)});
}

int FaultInjectionEnv::Fstat(int fd, struct stat* st) {
  std::function<void()> action;
  {
    absl::MutexLock l(&mu_);
    if (!fstat_hooks_.empty()) {
      const std::string abs = PathOfFd(fd);
      for (auto it = fstat_hooks_.begin(); it != fstat_hooks_.end(); ++it) {
        if (absl::StrContains(abs, it->path_part) && --it->left == 0) {
          action = std::move(it->action);
          fstat_hooks_.erase(it);
          break;
        }
      }
    }
  }
  if (action) action();  // Unlocked: it may use the file system.
  absl::MutexLock l(&mu_);
  if (dead_) {
    errno = EIO;
    return -1;
  }
  return Real()->Fstat(fd, st);
}

ssize_t FaultInjectionEnv::Write(int fd, const void* buf, size_t n) {
  const std::string abs = PathOfFd(fd);
  absl::MutexLock l(&mu_);
  if (!Mutate("write", abs)) return -1;
  SnapshotContent(fd, abs);
  return Real()->Write(fd, buf, n);
}

ssize_t FaultInjectionEnv::PWrite(int fd, const void* buf, size_t n,
                                  off_t off) {
  const std::string abs = PathOfFd(fd);
  absl::MutexLock l(&mu_);
  if (!Mutate("write", abs)) return -1;
  SnapshotContent(fd, abs);
  return Real()->PWrite(fd, buf, n, off);
}

int FaultInjectionEnv::Ftruncate(int fd, off_t size) {
  const std::string abs = PathOfFd(fd);
  absl::MutexLock l(&mu_);
  if (!Mutate("truncate", abs)) return -1;
  SnapshotContent(fd, abs);
  return Real()->Ftruncate(fd, size);
}

int FaultInjectionEnv::Fsync(int fd) {
  const std::string abs = PathOfFd(fd);
  absl::MutexLock l(&mu_);
  if (!Mutate("fsync", abs)) return -1;
  int r = Real()->Fsync(fd);
  if (r != 0) return r;
  struct stat st;
  if (fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      SyncedDirectory(abs);
    } else {
      content_.erase(Inode{st.st_dev, st.st_ino});
    }
  }
  return 0;
}

int FaultInjectionEnv::Fdatasync(int fd) {
  const std::string abs = PathOfFd(fd);
  absl::MutexLock l(&mu_);
  if (!Mutate("fsync", abs)) return -1;
  int r = Real()->Fdatasync(fd);
  struct stat st;
  if (r == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    content_.erase(Inode{st.st_dev, st.st_ino});
  }
  return r;
}

int FaultInjectionEnv::Syncfs(int fd) {
  const std::string abs = PathOfFd(fd);
  absl::MutexLock l(&mu_);
  if (!Mutate("syncfs", abs)) return -1;
  int r = Real()->Syncfs(fd);
  if (r == 0) {
    // One file system under test: everything on it is durable now.
    ops_.clear();
    content_.clear();
  }
  return r;
}

int FaultInjectionEnv::RenameAt(int olddir, const char* oldpath, int newdir,
                                const char* newpath) {
  const std::string from = Resolve(olddir, oldpath);
  const std::string to = Resolve(newdir, newpath);
  absl::MutexLock l(&mu_);
  if (!Mutate("rename", to)) return -1;
  NameOp op{NameOp::kRename, to, from};
  Preserve(to, &op);
  int r = Real()->RenameAt(olddir, oldpath, newdir, newpath);
  if (r == 0 && Tracked(to)) {
    op.dirs = {ParentOf(from), ParentOf(to)};
    ops_.push_back(std::move(op));
  } else if (!op.attic.empty()) {
    unlink(op.attic.c_str());
  }
  return r;
}

int FaultInjectionEnv::LinkAt(int olddir, const char* oldpath, int newdir,
                              const char* newpath, int flags) {
  const std::string to = Resolve(newdir, newpath);
  absl::MutexLock l(&mu_);
  if (!Mutate("link", to)) return -1;
  int r = Real()->LinkAt(olddir, oldpath, newdir, newpath, flags);
  if (r == 0 && Tracked(to)) {
    NameOp op{NameOp::kCreate, to};
    op.dirs.insert(ParentOf(to));
    ops_.push_back(std::move(op));
  }
  return r;
}

int FaultInjectionEnv::UnlinkAt(int dirfd, const char* path, int flags) {
  const std::string abs = Resolve(dirfd, path);
  absl::MutexLock l(&mu_);
  if (!Mutate("unlink", abs)) return -1;
  NameOp op{NameOp::kRemove, abs};
  Preserve(abs, &op);
  int r = Real()->UnlinkAt(dirfd, path, flags);
  if (r == 0 && Tracked(abs)) {
    op.dirs.insert(ParentOf(abs));
    ops_.push_back(std::move(op));
  } else if (!op.attic.empty()) {
    unlink(op.attic.c_str());
  }
  return r;
}

int FaultInjectionEnv::MkdirAt(int dirfd, const char* path, mode_t mode) {
  const std::string abs = Resolve(dirfd, path);
  absl::MutexLock l(&mu_);
  if (!Mutate("mkdir", abs)) return -1;
  int r = Real()->MkdirAt(dirfd, path, mode);
  if (r == 0 && Tracked(abs)) {
    NameOp op{NameOp::kCreate, abs};
    op.dirs.insert(ParentOf(abs));
    ops_.push_back(std::move(op));
  }
  return r;
}

int FaultInjectionEnv::SymlinkAt(const char* target, int dirfd,
                                 const char* path) {
  const std::string abs = Resolve(dirfd, path);
  absl::MutexLock l(&mu_);
  if (!Mutate("symlink", abs)) return -1;
  int r = Real()->SymlinkAt(target, dirfd, path);
  if (r == 0 && Tracked(abs)) {
    NameOp op{NameOp::kCreate, abs};
    op.dirs.insert(ParentOf(abs));
    ops_.push_back(std::move(op));
  }
  return r;
}

// Metadata changes are counted as cut points but not rolled back: the
// apply sets them again after every crash (they are idempotent), and the
// tree's equality checks compare them.
int FaultInjectionEnv::Fchmod(int fd, mode_t mode) {
  absl::MutexLock l(&mu_);
  if (!Mutate("chmod", PathOfFd(fd))) return -1;
  return Real()->Fchmod(fd, mode);
}

int FaultInjectionEnv::FchmodAt(int dirfd, const char* path, mode_t mode,
                                int flags) {
  absl::MutexLock l(&mu_);
  if (!Mutate("chmod", Resolve(dirfd, path))) return -1;
  return Real()->FchmodAt(dirfd, path, mode, flags);
}

int FaultInjectionEnv::FchownAt(int dirfd, const char* path, uid_t uid,
                                gid_t gid, int flags) {
  absl::MutexLock l(&mu_);
  if (!Mutate("chown", Resolve(dirfd, path))) return -1;
  return Real()->FchownAt(dirfd, path, uid, gid, flags);
}

int FaultInjectionEnv::UtimensAt(int dirfd, const char* path,
                                 const struct timespec times[2], int flags) {
  absl::MutexLock l(&mu_);
  if (!Mutate("utimens", Resolve(dirfd, path))) return -1;
  return Real()->UtimensAt(dirfd, path, times, flags);
}

}  // namespace gwmirror::testing
