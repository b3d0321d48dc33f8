#include "common/fd.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace gwmirror {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ELOOP:
    case ENOTDIR:
    case EEXIST:
    case EISDIR:
    case ENOTEMPTY:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status WriteAll(int fd, absl::string_view data, Env* env) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = env->Write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write");
    }
    p += n;
    left -= n;
  }
  return absl::OkStatus();
}

namespace {

// The rest of `fd` (named `path` in errors), at most `max_bytes`.
absl::StatusOr<std::string> ReadRest(int fd, const std::string& path,
                                     uint64_t max_bytes, Env* env) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = env->Read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    if (out.size() + n > max_bytes) {  // It grew while read.
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": more than ", max_bytes, " bytes (at most that are read)"));
    }
    out.append(buf, n);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             Env* env) {
  UniqueFd fd(env->Open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  return ReadRest(fd.get(), path, std::numeric_limits<uint64_t>::max(), env);
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path,
                                            uint64_t max_bytes, Env* env) {
  UniqueFd fd(env->Open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (env->Fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", st.st_size, " bytes (at most ", max_bytes, " are read)"));
  }
  return ReadRest(fd.get(), path, max_bytes, env);
}

absl::Status FsyncPath(const std::string& path, Env* env) {
  UniqueFd fd(env->Open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (env->Fsync(fd.get()) != 0)
    return ErrnoStatus(errno, absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

static std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data,
                             int mode, Durability durability, Env* env) {
  std::string tmp = path + ".tmp";
  bool sync = durability == Durability::kSynced;
  {
    UniqueFd fd(
        env->Open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
    RETURN_IF_ERROR(WriteAll(fd.get(), data, env));
    if (sync && env->Fsync(fd.get()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
    }
  }
  if (env->RenameAt(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp));
  }
  return sync ? FsyncPath(DirName(path), env) : absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, int mode, Env* env) {
  if (path.empty()) return absl::OkStatus();
  struct stat st;
  if (env->FstatAt(AT_FDCWD, path.c_str(), &st, 0) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a directory"));
  }
  std::string parent = DirName(path);
  if (parent != path) RETURN_IF_ERROR(MakeDirs(parent, mode, env));
  if (env->MkdirAt(AT_FDCWD, path.c_str(), mode) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

absl::Status RemoveAt(int dirfd, const std::string& name, Env* env) {
  struct stat st;
  if (env->FstatAt(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, absl::StrCat("stat ", name));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (env->UnlinkAt(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("unlink ", name));
    }
    return absl::OkStatus();
  }
  UniqueFd sub(env->OpenAt(dirfd, name.c_str(),
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return ErrnoStatus(errno, absl::StrCat("open ", name));
  std::vector<std::string> children;
  if (env->ReadDir(sub.get(), &children) != 0) {
    return ErrnoStatus(errno, absl::StrCat("list ", name));
  }
  absl::Status st_all;
  for (const std::string& c : children) {
    absl::Status s = RemoveAt(sub.get(), c, env);
    if (!s.ok() && st_all.ok()) st_all = s;
  }
  RETURN_IF_ERROR(st_all);
  if (env->UnlinkAt(dirfd, name.c_str(), AT_REMOVEDIR) != 0 &&
      errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("rmdir ", name));
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path, Env* env) {
  return RemoveAt(AT_FDCWD, path, env);
}

void CloseFdsFrom(int first) {
  if (close_range(first, ~0U, 0) == 0) return;
  struct rlimit rl;
  rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
  if (limit > (1 << 16)) limit = 1 << 16;
  for (int fd = first; fd < static_cast<int>(limit); ++fd) close(fd);
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir,
                                                 Env* env) {
  std::vector<std::string> names;
  UniqueFd fd(env->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return names;
    return ErrnoStatus(errno, absl::StrCat("open ", dir));
  }
  if (env->ReadDir(fd.get(), &names) != 0) {
    return ErrnoStatus(errno, absl::StrCat("list ", dir));
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  UniqueFd fd(
      open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fstat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file"));
  }
  if (st.st_size == 0) return MappedFile(nullptr, 0);
  void* p = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, absl::StrCat("mmap ", path));
  return MappedFile(p, st.st_size);
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(data_, size_);
}

void MappedFile::Release(const void* p, size_t len) const {
  static const uintptr_t page = sysconf(_SC_PAGESIZE);
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t end = (begin + len) / page * page;
  if (end > first) {
    (void)madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED);
  }
}

absl::StatusOr<int> FreeLoopbackPort() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (!fd.valid() ||
      bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return ErrnoStatus(errno, "pick a port");
  }
  return ntohs(sa.sin_port);
}

}  // namespace gwmirror
