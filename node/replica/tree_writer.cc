#include "node/replica/tree_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr char kTmpSuffix[] = ".gwmirror-tmp";

// The copy path (a second path with the same content, or another file
// system): through `env`, so a power cut sees its writes.
absl::Status CopyFd(Env* env, int from, int to, const std::string& what) {
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = env->Read(from, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("copy ", what));
    }
    if (n == 0) return absl::OkStatus();
    RETURN_IF_ERROR(WriteAll(to, absl::string_view(buf.data(), n), env));
  }
}

}  // namespace

absl::StatusOr<TreeWriter> TreeWriter::Open(
    const std::string& host_root, const std::vector<std::string>& roots,
    Env* env) {
  TreeWriter w;
  w.env_ = env;
  for (const std::string& r : roots) {
    RETURN_IF_ERROR(ValidateRelativePath(r));
    std::string dir = JoinPath(host_root, r);
    RETURN_IF_ERROR(MakeDirs(dir, 0755, env));
    UniqueFd fd(env->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open root ", dir));
    w.roots_.push_back(Root{r, std::move(fd)});
  }
  return w;
}

const TreeWriter::Root* TreeWriter::RootOf(const std::string& path) const {
  for (const Root& r : roots_) {
    if (path != r.path && PathIsWithin(path, r.path)) return &r;
  }
  return nullptr;
}

absl::StatusOr<std::pair<UniqueFd, std::string>> TreeWriter::OpenParent(
    const std::string& path) const {
  RETURN_IF_ERROR(ValidateRelativePath(path));
  const Root* root = RootOf(path);
  if (root == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("\"", path, "\" lies outside every mirrored root"));
  }
  std::string rel = path.substr(root->path.size() + 1);
  std::vector<std::string> parts = SplitPath(rel);
  const std::string dir = path.substr(0, path.rfind('/'));
  {
    absl::MutexLock l(&cache_->mu);
    struct stat st;
    // A directory removed since (by anyone) has no links left: walk again.
    if (cache_->fd.valid() && cache_->dir == dir &&
        env_->Fstat(cache_->fd.get(), &st) == 0 && st.st_nlink > 0) {
      UniqueFd cur(dup(cache_->fd.get()));
      if (!cur.valid()) return ErrnoStatus(errno, "dup");
      return std::make_pair(std::move(cur), parts.back());
    }
  }
  UniqueFd cur(dup(root->fd.get()));
  if (!cur.valid()) return ErrnoStatus(errno, "dup");
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int next = env_->OpenAt(cur.get(), parts[i].c_str(),
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      int err = errno;
      if (err == ELOOP || err == ENOTDIR) {
        return absl::FailedPreconditionError(absl::StrCat(
            "\"", path, "\": component \"", parts[i],
            "\" is a symlink or not a directory; refusing to follow it"));
      }
      return ErrnoStatus(err, absl::StrCat("open ", path));
    }
    cur.Reset(next);
  }
  {
    absl::MutexLock l(&cache_->mu);
    cache_->dir = dir;
    cache_->fd.Reset(dup(cur.get()));
  }
  return std::make_pair(std::move(cur), parts.back());
}

void TreeWriter::DropCachedDirectory() const {
  absl::MutexLock l(&cache_->mu);
  cache_->dir.clear();
  cache_->fd.Reset(-1);
}

absl::StatusOr<UniqueFd> TreeWriter::OpenFileForRead(
    const std::string& path) const {
  ASSIGN_OR_RETURN(auto parent, OpenParent(path));
  UniqueFd fd(env_->OpenAt(parent.first.get(), parent.second.c_str(),
                           O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (env_->Fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", path, "\" is not a regular file"));
  }
  return fd;
}

absl::Status TreeWriter::Remove(const std::string& path) const {
  DropCachedDirectory();
  auto parent = OpenParent(path);
  if (absl::IsNotFound(parent.status())) return absl::OkStatus();
  RETURN_IF_ERROR(parent.status());
  return RemoveAt(parent->first.get(), parent->second, env_);
}

absl::Status TreeWriter::EnsureDirectory(const std::string& path) const {
  ASSIGN_OR_RETURN(auto parent, OpenParent(path));
  int dfd = parent.first.get();
  const char* name = parent.second.c_str();
  struct stat st;
  if (env_->FstatAt(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    RETURN_IF_ERROR(RemoveAt(dfd, parent.second, env_));
  }
  if (env_->MkdirAt(dfd, name, 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

absl::Status TreeWriter::PlaceFile(const std::string& path,
                                   const std::string& staged, bool link) const {
  ASSIGN_OR_RETURN(auto parent, OpenParent(path));
  int dfd = parent.first.get();
  std::string tmp = parent.second + kTmpSuffix;
  if (tmp.size() > 255) tmp = std::string(".gwm") + kTmpSuffix;
  RETURN_IF_ERROR(RemoveAt(dfd, tmp, env_));
  bool placed = false;
  if (link) {
    if (env_->LinkAt(AT_FDCWD, staged.c_str(), dfd, tmp.c_str(), 0) == 0) {
      placed = true;
    } else if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
      return ErrnoStatus(errno, absl::StrCat("link ", path));
    }
  }
  if (!placed) {
    UniqueFd in(env_->Open(staged.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid()) return ErrnoStatus(errno, absl::StrCat("open ", staged));
    UniqueFd out(env_->OpenAt(
        dfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
        0600));
    if (!out.valid()) return ErrnoStatus(errno, absl::StrCat("create ", path));
    RETURN_IF_ERROR(CopyFd(env_, in.get(), out.get(), path));
  }
  struct stat st;
  if (env_->FstatAt(dfd, parent.second.c_str(), &st, AT_SYMLINK_NOFOLLOW) ==
          0 &&
      S_ISDIR(st.st_mode)) {
    DropCachedDirectory();
    RETURN_IF_ERROR(RemoveAt(dfd, parent.second, env_));
  }
  if (env_->RenameAt(dfd, tmp.c_str(), dfd, parent.second.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename into ", path));
  }
  // When a redo finds the target already linked to the staged inode, rename
  // of two links to one inode does nothing (POSIX), so drop the temp name.
  if (env_->UnlinkAt(dfd, tmp.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove temporary of ", path));
  }
  return absl::OkStatus();
}

absl::Status TreeWriter::PlaceSymlink(const std::string& path,
                                      const std::string& target) const {
  ASSIGN_OR_RETURN(auto parent, OpenParent(path));
  int dfd = parent.first.get();
  const char* name = parent.second.c_str();
  struct stat st;
  if (env_->FstatAt(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) {
      std::string cur(4096, '\0');
      ssize_t n = env_->ReadLinkAt(dfd, name, cur.data(), cur.size());
      if (n >= 0 && static_cast<size_t>(n) == target.size() &&
          cur.compare(0, n, target) == 0) {
        return absl::OkStatus();
      }
    }
    DropCachedDirectory();
    RETURN_IF_ERROR(RemoveAt(dfd, parent.second, env_));
  }
  if (env_->SymlinkAt(target.c_str(), dfd, name) != 0) {
    return ErrnoStatus(errno, absl::StrCat("symlink ", path));
  }
  return absl::OkStatus();
}

absl::Status ApplyMetadataAt(Env* env, int dfd, const std::string& name_s,
                             const Entry& e, Owners owners) {
  const char* name = name_s.c_str();
  if (env->FchownAt(dfd, name, e.uid(), e.gid(), AT_SYMLINK_NOFOLLOW) != 0 &&
      !(errno == EPERM && owners == Owners::kWherePermitted)) {
    return ErrnoStatus(errno, absl::StrCat("chown ", e.path()));
  }
  if (e.type() != gwmirror::v1::ENTRY_TYPE_SYMLINK) {
    // fchmodat cannot refuse symlinks on Linux, so check the type via the fd.
    UniqueFd fd(env->OpenAt(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", e.path()));
    std::string proc = absl::StrCat("/proc/self/fd/", fd.get());
    struct stat st;
    if (env->Fstat(fd.get(), &st) != 0 || S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("\"", e.path(), "\" became a symlink"));
    }
    if (env->FchmodAt(AT_FDCWD, proc.c_str(), e.mode() & 07777, 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("chmod ", e.path()));
    }
  }
  struct timespec times[2];
  times[0].tv_sec = e.mtime_ns() / 1000000000LL;
  times[0].tv_nsec = e.mtime_ns() % 1000000000LL;
  if (times[0].tv_nsec < 0) {  // Before 1970: the remainder is negative.
    times[0].tv_nsec += 1000000000LL;
    times[0].tv_sec -= 1;
  }
  times[1] = times[0];
  if (env->UtimensAt(dfd, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("set mtime of ", e.path()));
  }
  return absl::OkStatus();
}

absl::Status TreeWriter::ApplyMetadata(const Entry& e) const {
  ASSIGN_OR_RETURN(auto parent, OpenParent(e.path()));
  return ApplyMetadataAt(env_, parent.first.get(), parent.second, e,
                         Owners::kRequired);
}

absl::Status TreeWriter::SyncAll() const {
  for (const Root& r : roots_) {
    if (env_->Syncfs(r.fd.get()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("syncfs ", r.path));
    }
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
