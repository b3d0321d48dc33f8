#include "tests/node/test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "node/scanner.h"

namespace gwmirror::testing {

TempDir::TempDir() : TempDir(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") {}

TempDir::TempDir(const std::string& base) {
  std::string tmpl = absl::StrCat(base, "/gwmirror-test-XXXXXX");
  char* p = mkdtemp(tmpl.data());
  if (p == nullptr) abort();
  path_ = p;
}

TempDir::~TempDir() { (void)RemoveTree(path_); }

Pki::Pki(std::string dir) : dir_(std::move(dir)) {
  absl::Status st = CreateCa(dir_ + "/ca", "test CA");
  if (!st.ok()) {
    ADD_FAILURE() << st;
  }
}

gwmirror::v1::TlsConfig Pki::Issue(const std::string& name) {
  auto tls = IssueCertificate(dir_ + "/ca", name, dir_ + "/certs");
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : gwmirror::v1::TlsConfig();
}

bool TakesDirectIo(const std::string& dir) {
  const std::string path = dir + "/direct-probe";
  UniqueFd fd(
      open(path.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600));
  void* buf = nullptr;
  const bool works = fd.valid() && posix_memalign(&buf, 4096, 4096) == 0 &&
                     pwrite(fd.get(), memset(buf, 0, 4096), 4096, 0) == 4096;
  free(buf);
  unlink(path.c_str());
  return works;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

void WriteFile(const std::string& path, const std::string& content, int mode) {
  ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_TRUE(WriteAll(fd.get(), content).ok());
  fchmod(fd.get(), mode);
}

void FlipByte(const std::string& path, off_t at) {
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
  int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  char c;
  ASSERT_EQ(pread(fd, &c, 1, at), 1);
  c ^= 0x20;
  ASSERT_EQ(pwrite(fd, &c, 1, at), 1);
  close(fd);
  struct timespec t[2] = {st.st_mtim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
}

std::string ReadFile(const std::string& path) {
  auto s = ReadFileToString(path);
  return s.ok() ? *s : std::string("<unreadable>");
}

Manifest Snapshot(const std::string& host_root,
                  const std::vector<gwmirror::v1::RootConfig>& roots) {
  google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> r;
  for (const auto& x : roots) *r.Add() = x;
  auto scan = ScanMirrorSet(host_root, r);
  EXPECT_TRUE(scan.ok()) << scan.status();
  return scan.ok() ? scan->manifest : Manifest();
}

std::string Diff(const Manifest& want, const Manifest& got) {
  std::string out;
  int shown = 0;
  for (const Entry& e : want.entries()) {
    const Entry* g = got.Find(e.path());
    if (g == nullptr) {
      absl::StrAppend(&out, "missing: ", e.path(), "\n");
    } else if (!SameEntry(e, *g)) {
      absl::StrAppend(&out, "differs: ", e.path(), "\n  want ",
                      e.ShortDebugString(), "\n  got  ", g->ShortDebugString(),
                      "\n");
    } else {
      continue;
    }
    if (++shown > 10) return out;
  }
  for (const Entry& e : got.entries()) {
    if (want.Find(e.path()) == nullptr) {
      absl::StrAppend(&out, "extra: ", e.path(), "\n");
      if (++shown > 10) return out;
    }
  }
  return out;
}

namespace {

// In a forked child: set `env` and exec `argv`; never returns.
[[noreturn]] void ExecWith(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

}  // namespace

Child::Child(const std::vector<std::string>& argv,
             const std::map<std::string, std::string>& env,
             const std::string& log) {
  pid_ = fork();
  if (pid_ == 0) {
    if (!log.empty()) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
    }
    CloseFdsFrom(3);  // A test's pipes must not live on in a daemon.
    ExecWith(argv, env);
  }
}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait();
  }
}

int Child::Wait() {
  int status = 0;
  if (pid_ > 0) {
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return status;
}

void Child::Kill(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

RunResult Run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env) {
  RunResult r;
  // Close-on-exec, and every other descriptor closed in the child: a
  // program run by another thread at the same moment must not inherit
  // these pipes, or their reader here would wait for that program's end
  // (a status call waited a whole drill out that way).
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    CloseFdsFrom(3);
    ExecWith(argv, env);
  }
  close(out[1]);
  close(err[1]);
  // Drain both pipes (stderr is small; read stdout first, then stderr).
  auto drain = [](int fd, std::string* s) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) s->append(buf, n);
    close(fd);
  };
  std::thread t([&] { drain(err[0], &r.err); });
  drain(out[0], &r.out);
  t.join();
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string Bin(const std::string& name) {
  const char* dir = getenv("GWMIRROR_BIN_DIR");
  return absl::StrCat(dir ? dir : ".", "/", name);
}

int WaitForPort(const std::string& path) {
  for (int i = 0; i < 400; ++i) {
    auto s = ReadFileToString(path);
    int port = 0;
    if (s.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*s), &port) &&
        port > 0) {
      return port;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

}  // namespace gwmirror::testing
