#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/commands.h"

namespace gwmirror {
namespace {

std::atomic<bool> json_events{false};
absl::Mutex interval_mu;
absl::Duration interval ABSL_GUARDED_BY(interval_mu) = absl::ZeroDuration();

enum class Mode { kTerminal, kPlain, kJson };

// A JSON string literal of `s` (quotes and control characters escaped).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

}  // namespace

struct Progress::State {
  std::string what;
  Mode mode = Mode::kTerminal;
  absl::Time start = absl::Now();
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  std::string detail ABSL_GUARDED_BY(mu);
  std::thread thread;
};

void Progress::UseJsonEvents(bool on) { json_events = on; }

void Progress::SetInterval(absl::Duration every) {
  absl::MutexLock l(&interval_mu);
  interval = every;
}

Progress::Progress(std::string what) {
  state_ = std::make_unique<State>();
  state_->what = std::move(what);
  state_->mode = json_events ? Mode::kJson
                 : isatty(2) ? Mode::kTerminal
                             : Mode::kPlain;
  State* s = state_.get();
  s->thread = std::thread([s] {
    absl::Duration every = s->mode == Mode::kTerminal ? absl::Milliseconds(250)
                           : s->mode == Mode::kJson   ? absl::Seconds(1)
                                                      : absl::Seconds(5);
    {
      absl::MutexLock l(&interval_mu);
      if (s->mode != Mode::kTerminal && interval > absl::ZeroDuration()) {
        every = interval;
      }
    }
    absl::MutexLock l(&s->mu);
    while (!s->mu.AwaitWithTimeout(absl::Condition(&s->done), every)) {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - s->start);
      switch (s->mode) {
        case Mode::kTerminal:
          std::fprintf(stderr, "\r\033[K%s: %.1f s%s%s", s->what.c_str(),
                       elapsed, s->detail.empty() ? "" : " - ",
                       s->detail.c_str());
          break;
        case Mode::kPlain:
          std::fprintf(stderr, "%s: %.0f s%s%s\n", s->what.c_str(), elapsed,
                       s->detail.empty() ? "" : " - ", s->detail.c_str());
          break;
        case Mode::kJson:
          std::fprintf(stderr,
                       "{\"event\": \"progress\", \"what\": %s, "
                       "\"elapsed_s\": %.1f, \"detail\": %s}\n",
                       Quoted(s->what).c_str(), elapsed,
                       Quoted(s->detail).c_str());
          break;
      }
      std::fflush(stderr);
    }
    if (s->mode == Mode::kTerminal) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
    }
  });
}

Progress::~Progress() {
  {
    absl::MutexLock l(&state_->mu);
    state_->done = true;
  }
  state_->thread.join();
}

void Progress::Set(const std::string& detail) {
  absl::MutexLock l(&state_->mu);
  state_->detail = detail;
}

}  // namespace gwmirror
