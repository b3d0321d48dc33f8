#include "common/process.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <vector>

extern char** environ;

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/fd.h"

namespace gwmirror {
namespace {

constexpr size_t kStderrKeep = 4096;

// In the child: only async-signal-safe calls (the parent has threads).
[[noreturn]] void Exec(char* const* argv, char* const* envp,
                       const std::string& fail, int in, int out, int err) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  CloseFdsFrom(3);
  execvpe(argv[0], argv, envp);
  (void)!write(2, fail.data(), fail.size());
  _exit(127);
}

}  // namespace

absl::StatusOr<ProcessResult> RunProcess(const ProcessSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("no command to run");
  }
  UniqueFd in(
      open(spec.stdin_path.empty() ? "/dev/null" : spec.stdin_path.c_str(),
           O_RDONLY | O_CLOEXEC));
  if (!in.valid()) {
    return ErrnoStatus(errno, absl::StrCat("open ", spec.stdin_path));
  }
  UniqueFd out(spec.stdout_path.empty()
                   ? open("/dev/null", O_WRONLY | O_CLOEXEC)
                   : open(spec.stdout_path.c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                          0600));
  if (!out.valid()) {
    return ErrnoStatus(errno, absl::StrCat("create ", spec.stdout_path));
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd err_read(pipe_fds[0]), err_write(pipe_fds[1]);
  // Everything the child needs, built before fork.
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    bool replaced = false;
    for (const auto& [k, v] : spec.env) {
      replaced |= absl::StartsWith(kv, k + "=");
    }
    if (!replaced) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string fail = absl::StrCat("cannot run ", spec.argv[0],
                                        " (not found or not executable)\n");
  absl::Time start = absl::Now();
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    Exec(argv.data(), envp.data(), fail, in.get(), out.get(), err_write.get());
  }
  setpgid(pid, pid);  // Also here: no race with the kill below.
  err_write.Reset();
  ProcessResult r;
  absl::Time deadline = start + spec.timeout;
  char buf[4096];
  bool open_pipe = true;
  while (open_pipe) {
    int ms = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    struct pollfd p = {err_read.get(), POLLIN, 0};
    int n = poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    ssize_t len = read(err_read.get(), buf, sizeof buf);
    if (len <= 0) {
      open_pipe = false;
      break;
    }
    r.stderr_tail.append(buf, len);
    if (r.stderr_tail.size() > 2 * kStderrKeep) {
      r.stderr_tail.erase(0, r.stderr_tail.size() - kStderrKeep);
    }
  }
  int status = 0;
  for (;;) {
    // The pipe closed: the child is exiting, unless it handed its stderr
    // to a survivor. Wait until the deadline, then kill the group.
    pid_t w = waitpid(pid, &status, r.timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return ErrnoStatus(errno, "waitpid");
    if (absl::Now() >= deadline && !r.timed_out) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      continue;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Nothing of the group outlives the job.
  kill(-pid, SIGKILL);
  if (r.stderr_tail.size() > kStderrKeep) {
    r.stderr_tail.erase(0, r.stderr_tail.size() - kStderrKeep);
  }
  r.elapsed = absl::Now() - start;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

std::string Describe(const ProcessResult& r) {
  std::string what =
      r.timed_out
          ? absl::StrCat("timed out after ", absl::FormatDuration(r.elapsed))
      : r.signal != 0 ? absl::StrCat("killed by signal ", r.signal)
                      : absl::StrCat("exit ", r.exit_code);
  std::string err(absl::StripAsciiWhitespace(r.stderr_tail));
  // The last lines, which say what went wrong, at most 400 characters.
  if (err.size() > 400) err = "..." + err.substr(err.size() - 400);
  for (char& c : err) {
    if (c == '\n') c = ' ';
  }
  return err.empty() ? what : absl::StrCat(what, ": ", err);
}

void ReleaseFreedHeap() {
  static std::atomic<int64_t> last_ns{0};
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = last_ns.load(std::memory_order_relaxed);
  if (now - last < absl::ToInt64Nanoseconds(absl::Seconds(10)) ||
      !last_ns.compare_exchange_strong(last, now)) {
    return;
  }
  if (mallinfo2().fordblks > (16 << 20)) malloc_trim(0);
}

}  // namespace gwmirror
