// How a daemon stops: SIGTERM or SIGINT, taken synchronously by one thread.
#ifndef GWMIRROR_COMMON_SIGNALS_H_
#define GWMIRROR_COMMON_SIGNALS_H_

namespace gwmirror {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it
// starts afterwards: call before gRPC (or anything) starts threads.
void BlockStopSignals();
// Waits for SIGTERM or SIGINT (blocked with BlockStopSignals); returns it.
int WaitForStopSignal();

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_SIGNALS_H_
