#include "common/signals.h"

#include <pthread.h>
#include <signal.h>

namespace gwmirror {
namespace {

sigset_t DaemonSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockStopSignals() {
  sigset_t set = DaemonSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForStopSignal(const std::function<void()>& on_hangup) {
  sigset_t set = DaemonSignals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    if (on_hangup) on_hangup();
  }
}

bool TakePendingStopSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const timespec now = {0, 0};
  return sigtimedwait(&set, nullptr, &now) > 0;
}

}  // namespace gwmirror
