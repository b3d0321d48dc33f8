#include "common/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gwmirror {
namespace {

class PosixEnv final : public Env {
 public:
  int OpenAt(int dirfd, const char* path, int flags, mode_t mode) override {
    return openat(dirfd, path, flags, mode);
  }
  ssize_t Read(int fd, void* buf, size_t n) override {
    return read(fd, buf, n);
  }
  ssize_t PRead(int fd, void* buf, size_t n, off_t off) override {
    return pread(fd, buf, n, off);
  }
  ssize_t ReadLinkAt(int dirfd, const char* path, char* buf,
                     size_t n) override {
    return readlinkat(dirfd, path, buf, n);
  }
  int ReadDir(int dirfd, std::vector<std::string>* names) override {
    int dup_fd = dup(dirfd);
    if (dup_fd < 0) return -1;
    DIR* d = fdopendir(dup_fd);
    if (d == nullptr) {
      int err = errno;
      close(dup_fd);
      errno = err;
      return -1;
    }
    rewinddir(d);  // The descriptor may have been read before.
    names->clear();
    for (;;) {
      errno = 0;
      struct dirent* de = readdir(d);
      if (de == nullptr) break;
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
        continue;
      }
      names->emplace_back(de->d_name);
    }
    // readdir returns null at the end and on an error alike; only errno
    // tells them apart. A listing cut short is an error, never a short
    // listing (which a push would mirror as deletions).
    int err = errno;
    closedir(d);
    if (err != 0) {
      names->clear();
      errno = err;
      return -1;
    }
    return 0;
  }
  int FstatAt(int dirfd, const char* path, struct stat* st,
              int flags) override {
    return fstatat(dirfd, path, st, flags);
  }
  int Fstat(int fd, struct stat* st) override { return fstat(fd, st); }
  int GetFileFlags(int fd) override { return fcntl(fd, F_GETFL); }
  int SetFileFlags(int fd, int flags) override {
    return fcntl(fd, F_SETFL, flags);
  }
  ssize_t Write(int fd, const void* buf, size_t n) override {
    return write(fd, buf, n);
  }
  ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) override {
    return pwrite(fd, buf, n, off);
  }
  int Ftruncate(int fd, off_t size) override { return ftruncate(fd, size); }
  int Fsync(int fd) override { return fsync(fd); }
  int Fdatasync(int fd) override { return fdatasync(fd); }
  int Syncfs(int fd) override { return syncfs(fd); }
  int RenameAt(int olddir, const char* oldpath, int newdir,
               const char* newpath) override {
    return renameat(olddir, oldpath, newdir, newpath);
  }
  int LinkAt(int olddir, const char* oldpath, int newdir, const char* newpath,
             int flags) override {
    return linkat(olddir, oldpath, newdir, newpath, flags);
  }
  int UnlinkAt(int dirfd, const char* path, int flags) override {
    return unlinkat(dirfd, path, flags);
  }
  int MkdirAt(int dirfd, const char* path, mode_t mode) override {
    return mkdirat(dirfd, path, mode);
  }
  int SymlinkAt(const char* target, int dirfd, const char* path) override {
    return symlinkat(target, dirfd, path);
  }
  int Fchmod(int fd, mode_t mode) override { return fchmod(fd, mode); }
  int FchmodAt(int dirfd, const char* path, mode_t mode, int flags) override {
    return fchmodat(dirfd, path, mode, flags);
  }
  int FchownAt(int dirfd, const char* path, uid_t uid, gid_t gid,
               int flags) override {
    return fchownat(dirfd, path, uid, gid, flags);
  }
  int UtimensAt(int dirfd, const char* path, const struct timespec times[2],
                int flags) override {
    return utimensat(dirfd, path, times, flags);
  }
  std::string BootId() override {
    static const std::string kBootId = [] {
      std::string id(64, '\0');
      int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return std::string();
      ssize_t n = read(fd, id.data(), id.size());
      close(fd);
      id.resize(n > 0 ? n : 0);
      while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) {
        id.pop_back();
      }
      return id;
    }();
    return kBootId;
  }
};

}  // namespace

Env* Env::Default() {
  static Env* const kEnv = new PosixEnv;
  return kEnv;
}

int Env::Open(const char* path, int flags, mode_t mode) {
  return OpenAt(AT_FDCWD, path, flags, mode);
}

}  // namespace gwmirror
