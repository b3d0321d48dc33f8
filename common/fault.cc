#include "common/fault.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
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

State& GetState() {
  static State* s = [] {
    auto* st = new State;
    if (const char* env = std::getenv("GWMIRROR_FAULT")) {
      std::vector<std::string> parts = absl::StrSplit(env, ':');
      if (parts.size() == 3 && absl::SimpleAtoi(parts[2], &st->spec.n)) {
        st->spec.action = parts[0];
        st->spec.prefix = parts[1];
        st->active = true;
      }
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
  std::vector<std::string> parts = absl::StrSplit(spec, ':');
  if (parts.size() == 3 && absl::SimpleAtoi(parts[2], &s.spec.n)) {
    s.spec.action = parts[0];
    s.spec.prefix = parts[1];
    s.active = true;
  }
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
