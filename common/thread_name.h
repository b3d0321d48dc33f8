#ifndef GWMIRROR_COMMON_THREAD_NAME_H_
#define GWMIRROR_COMMON_THREAD_NAME_H_

#include <pthread.h>

namespace gwmirror {

// Names the calling thread (at most 15 characters) so `top -H`, perf and
// /proc/PID/task/*/comm tell a daemon's background jobs apart: the
// latency benchmark leaves the drift checker's periodic scan out of the
// CPU that one change costs by its name.
inline void NameThisThread(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_THREAD_NAME_H_
