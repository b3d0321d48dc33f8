// How a daemon is told things: SIGTERM or SIGINT stop it, SIGHUP reloads
// (renewed certificates), all taken synchronously by one thread.
#ifndef GWMIRROR_COMMON_SIGNALS_H_
#define GWMIRROR_COMMON_SIGNALS_H_

#include <functional>

namespace gwmirror {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread
// it starts afterwards: call before gRPC (or anything) starts threads.
void BlockStopSignals();
// Waits for SIGTERM or SIGINT (blocked with BlockStopSignals) and returns
// it; each SIGHUP meanwhile runs `on_hangup` (when set) and waits on.
int WaitForStopSignal(const std::function<void()>& on_hangup = nullptr);
// Whether SIGTERM or SIGINT is pending (and takes it), without waiting: for
// a wait that cannot sit in WaitForStopSignal (one for a server to answer).
bool TakePendingStopSignal();

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_SIGNALS_H_
