#include "common/fault.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"

namespace gwmirror {
namespace {

struct Spec {
  std::string action;
  std::string prefix;
  int n = 0;
};

struct State {
  absl::Mutex mu;
  bool active = false;
  Spec spec;
  std::map<std::string, int> hits;
};

// "<action>:<prefix, may hold ':'>:<n>".
bool ParseSpec(absl::string_view text, Spec* spec) {
  size_t first = text.find(':');
  size_t last = text.rfind(':');
  if (first == absl::string_view::npos || first == last) return false;
  spec->action = std::string(text.substr(0, first));
  spec->prefix = std::string(text.substr(first + 1, last - first - 1));
  return absl::SimpleAtoi(text.substr(last + 1), &spec->n) &&
         (spec->action == "crash" || spec->action == "enospc");
}

State& GetState() {
  static State* s = [] {
    auto* st = new State;
    if (const char* env = std::getenv("GWMIRROR_FAULT")) {
      st->active = ParseSpec(env, &st->spec);
    }
    return st;
  }();
  return *s;
}

std::atomic<bool> g_counting{false};

}  // namespace

void SetFaultSpec(const std::string& spec) {
  State& s = GetState();
  absl::MutexLock l(&s.mu);
  s.hits.clear();
  s.active = false;
  s.active = ParseSpec(spec, &s.spec);
  g_counting.store(true, std::memory_order_relaxed);
}

absl::Status FaultPoint(absl::string_view name) {
  State& s = GetState();
  if (!s.active && !g_counting.load(std::memory_order_relaxed)) {
    return absl::OkStatus();
  }
  absl::MutexLock l(&s.mu);
  if (!s.active || !absl::StartsWith(name, s.spec.prefix)) {
    ++s.hits[std::string(name)];
    return absl::OkStatus();
  }
  int n = 0;
  for (auto& [k, v] : s.hits) {
    if (absl::StartsWith(k, s.spec.prefix)) n += v;
  }
  ++s.hits[std::string(name)];
  ++n;
  if (s.spec.action == "crash" && n == s.spec.n) {
    kill(getpid(), SIGKILL);
    pause();
  }
  if (s.spec.action == "enospc" && n >= s.spec.n) {
    return absl::ResourceExhaustedError(
        std::string("injected fault at ") + std::string(name) +
        ": no space left on device");
  }
  return absl::OkStatus();
}

int FaultHits(absl::string_view prefix) {
  State& s = GetState();
  absl::MutexLock l(&s.mu);
  int n = 0;
  for (auto& [k, v] : s.hits) {
    if (absl::StartsWith(k, prefix)) n += v;
  }
  return n;
}

}  // namespace gwmirror
