// Helpers shared by node tests: temporary directories, a throwaway PKI,
// configs, child processes and tree comparison.
#ifndef GWMIRROR_TESTS_NODE_TEST_UTIL_H_
#define GWMIRROR_TESTS_NODE_TEST_UTIL_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/manifest.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror::testing {

// A fresh directory under $TMPDIR (or /tmp), removed on destruction.
class TempDir {
 public:
  TempDir();
  // Under `base` instead (a tmpfs such as /dev/shm, say).
  explicit TempDir(const std::string& base);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const {
    return path_ + "/" + rel;
  }

 private:
  std::string path_;
};

// A cluster CA in `dir` and certificates issued from it on demand.
class Pki {
 public:
  explicit Pki(std::string dir);
  gwmirror::v1::TlsConfig Issue(const std::string& name);

 private:
  std::string dir_;
};

// Writes `content` to host_root/rel (creating parents), with `mode`.
void WriteFile(const std::string& path, const std::string& content,
               int mode = 0644);
std::string ReadFile(const std::string& path);
// `n` pseudo-random bytes, the same for the same seed.
std::string RandomBytes(size_t n, uint64_t seed);
// Flips one byte of `path` at `at` in place, keeping its size and mtime
// (bit rot the stat data cannot see).
void FlipByte(const std::string& path, off_t at);
// Whether `dir`'s file system takes an aligned O_DIRECT write.
bool TakesDirectIo(const std::string& dir);

// The manifest of `host_root` under `roots`, asserting the scan works.
Manifest Snapshot(const std::string& host_root,
                  const std::vector<gwmirror::v1::RootConfig>& roots);
// "" when equal; otherwise the first differences in words.
std::string Diff(const Manifest& want, const Manifest& got);

// A child process. Destruction kills it (SIGKILL) and reaps it.
class Child {
 public:
  // With `log`, the child's stdout and stderr are appended to that file.
  Child(const std::vector<std::string>& argv,
        const std::map<std::string, std::string>& env = {},
        const std::string& log = "");
  ~Child();
  pid_t pid() const { return pid_; }
  // Waits; returns the wait status.
  int Wait();
  void Kill(int sig);

 private:
  pid_t pid_ = -1;
};

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs to completion, capturing stdout and stderr.
RunResult Run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env = {});

// Path of a built binary ($GWMIRROR_BIN_DIR/name).
std::string Bin(const std::string& name);

// Waits up to 20 s for `path` to hold a port number.
int WaitForPort(const std::string& path);

}  // namespace gwmirror::testing

#endif  // GWMIRROR_TESTS_NODE_TEST_UTIL_H_
