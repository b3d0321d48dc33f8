// The file system behind a seam (LevelDB's Env idea, shaped like POSIX so
// the code that walks trees through directory descriptors keeps its
// shape): every file operation of the replica's store, its tree writer and
// history, the manifest and epoch files, the scanners and the source's
// index goes through an Env. Env::Default() is the real one; tests put a
// FaultInjectionEnv (tests/node/fault_injection_env.h) in its place to cut
// the power at any step (unsynced writes, renames and directory entries
// are lost), to fill the disk, or to fail a read or a directory listing.
//
// Each call returns what its POSIX namesake returns (-1 and errno on
// failure), except ReadDir, which returns every name of a directory or
// fails (a listing cut short by an error is never a short listing).
// Thread-safe.
#ifndef GWMIRROR_COMMON_ENV_H_
#define GWMIRROR_COMMON_ENV_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace gwmirror {

class Env {
 public:
  virtual ~Env() = default;
  // The real file system (never destroyed).
  static Env* Default();

  // Opening and closing descriptors (AT_FDCWD for a path).
  virtual int OpenAt(int dirfd, const char* path, int flags,
                     mode_t mode = 0) = 0;
  int Open(const char* path, int flags, mode_t mode = 0);
  // Reading.
  virtual ssize_t Read(int fd, void* buf, size_t n) = 0;
  virtual ssize_t PRead(int fd, void* buf, size_t n, off_t off) = 0;
  virtual ssize_t ReadLinkAt(int dirfd, const char* path, char* buf,
                             size_t n) = 0;
  // Every name of the directory `dirfd` but "." and ".." (unsorted); -1 and
  // errno when the listing fails at any point.
  virtual int ReadDir(int dirfd, std::vector<std::string>* names) = 0;
  virtual int FstatAt(int dirfd, const char* path, struct stat* st,
                      int flags) = 0;
  virtual int Fstat(int fd, struct stat* st) = 0;
  // An open file's status flags (fcntl F_GETFL, F_SETFL): O_DIRECT.
  virtual int GetFileFlags(int fd) = 0;
  virtual int SetFileFlags(int fd, int flags) = 0;
  // Writing.
  virtual ssize_t Write(int fd, const void* buf, size_t n) = 0;
  virtual ssize_t PWrite(int fd, const void* buf, size_t n, off_t off) = 0;
  virtual int Ftruncate(int fd, off_t size) = 0;
  // Making it durable: a file's content (fsync, also for a directory's
  // entries), its data (fdatasync), a whole file system (syncfs).
  virtual int Fsync(int fd) = 0;
  virtual int Fdatasync(int fd) = 0;
  virtual int Syncfs(int fd) = 0;
  // Names.
  virtual int RenameAt(int olddir, const char* oldpath, int newdir,
                       const char* newpath) = 0;
  virtual int LinkAt(int olddir, const char* oldpath, int newdir,
                     const char* newpath, int flags) = 0;
  virtual int UnlinkAt(int dirfd, const char* path, int flags) = 0;
  virtual int MkdirAt(int dirfd, const char* path, mode_t mode) = 0;
  virtual int SymlinkAt(const char* target, int dirfd, const char* path) = 0;
  // Metadata.
  virtual int Fchmod(int fd, mode_t mode) = 0;
  virtual int FchmodAt(int dirfd, const char* path, mode_t mode, int flags) = 0;
  virtual int FchownAt(int dirfd, const char* path, uid_t uid, gid_t gid,
                       int flags) = 0;
  virtual int UtimensAt(int dirfd, const char* path,
                        const struct timespec times[2], int flags) = 0;
  // The machine's boot: a string that changes with every reboot (the
  // kernel's random boot_id), "" when unknown. What was cached about files
  // under another boot is not trusted: a power cut may keep an inode's new
  // times while losing its new bytes.
  virtual std::string BootId() = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_ENV_H_
