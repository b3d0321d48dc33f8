#include "common/fault.h"

#ifdef GWMIRROR_FAULT_POINTS

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace gwmirror {
namespace {

struct Spec {
  std::string action;  // "crash", "enospc" or "pause"
  std::string prefix;
  int n = 0;
};

// "<action>:<prefix, may hold ':'>:<n>".
bool ParseSpec(absl::string_view text, Spec* spec) {
  size_t first = text.find(':');
  size_t last = text.rfind(':');
  if (first == absl::string_view::npos || first == last) return false;
  spec->action = std::string(text.substr(0, first));
  spec->prefix = std::string(text.substr(first + 1, last - first - 1));
  return absl::SimpleAtoi(text.substr(last + 1), &spec->n) &&
         (spec->action == "crash" || spec->action == "enospc" ||
          spec->action == "pause");
}

struct State {
  absl::Mutex mu;
  Spec spec ABSL_GUARDED_BY(mu);
  int matched ABSL_GUARDED_BY(mu) = 0;
  // Read without the lock on every point: the common case is "no spec".
  std::atomic<bool> active{false};
};

State& GetState() {
  static State* s = [] {
    auto* st = new State;
    if (const char* env = std::getenv("GWMIRROR_FAULT")) {
      absl::MutexLock l(&st->mu);
      st->active = ParseSpec(env, &st->spec);
      Logf(LogLevel::kWarning, "fault",
           "GWMIRROR_FAULT=%s: fault injection %s (a test build)", env,
           st->active ? "armed" : "not understood, nothing armed");
    }
    return st;
  }();
  return *s;
}

}  // namespace

void SetFaultSpec(const std::string& spec) {
  State& s = GetState();
  absl::MutexLock l(&s.mu);
  s.matched = 0;
  s.active = ParseSpec(spec, &s.spec);
}

// "pause": says it arrived (FILE.reached) and waits while FILE exists, so
// a test can partition, kill or inspect at exactly this step, then let go.
void Pause(absl::string_view name) {
  const char* file = std::getenv("GWMIRROR_FAULT_PAUSE");
  if (file == nullptr) return;
  const std::string reached = std::string(file) + ".reached";
  if (FILE* f = fopen(reached.c_str(), "w")) {
    fprintf(f, "%.*s\n", static_cast<int>(name.size()), name.data());
    fclose(f);
  }
  Logf(LogLevel::kWarning, "fault", "paused at %s while %s exists", name, file);
  // Bounded: a test that died leaves no process paused for long.
  for (int i = 0; i < 1200 && access(file, F_OK) == 0; ++i) usleep(100'000);
}

absl::Status FaultPoint(absl::string_view name) {
  State& s = GetState();
  if (!s.active.load(std::memory_order_relaxed)) return absl::OkStatus();
  absl::MutexLock l(&s.mu);
  if (!absl::StartsWith(name, s.spec.prefix)) return absl::OkStatus();
  int n = ++s.matched;
  if (s.spec.action == "pause" && n == s.spec.n) {
    s.mu.Unlock();
    Pause(name);
    s.mu.Lock();
    return absl::OkStatus();
  }
  if (s.spec.action == "crash" && n == s.spec.n) {
    kill(getpid(), SIGKILL);
    pause();
  }
  if (s.spec.action == "enospc" && n >= s.spec.n) {
    return absl::ResourceExhaustedError(std::string("injected fault at ") +
                                        std::string(name) +
                                        ": no space left on device");
  }
  return absl::OkStatus();
}

}  // namespace gwmirror

#endif  // GWMIRROR_FAULT_POINTS
