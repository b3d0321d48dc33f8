#include <unistd.h>

#include <cstdio>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/commands.h"

namespace gwmirror {

struct Progress::State {
  std::string what;
  absl::Time start = absl::Now();
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  std::string detail ABSL_GUARDED_BY(mu);
  std::thread thread;
};

Progress::Progress(std::string what) {
  if (!isatty(2)) return;
  state_ = std::make_unique<State>();
  state_->what = std::move(what);
  State* s = state_.get();
  s->thread = std::thread([s] {
    absl::MutexLock l(&s->mu);
    while (!s->mu.AwaitWithTimeout(absl::Condition(&s->done),
                                   absl::Milliseconds(250))) {
      std::fprintf(stderr, "\r\033[K%s: %.1f s%s%s", s->what.c_str(),
                   absl::ToDoubleSeconds(absl::Now() - s->start),
                   s->detail.empty() ? "" : " - ", s->detail.c_str());
      std::fflush(stderr);
    }
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  });
}

Progress::~Progress() {
  if (state_ == nullptr) return;
  {
    absl::MutexLock l(&state_->mu);
    state_->done = true;
  }
  state_->thread.join();
}

void Progress::Set(const std::string& detail) {
  if (state_ == nullptr) return;
  absl::MutexLock l(&state_->mu);
  state_->detail = detail;
}

}  // namespace gwmirror
