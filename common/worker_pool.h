// Threads kept for fan-out calls (the coordinator asks every node of a
// cluster at once, several times per checkpoint): ParallelFor runs fn(i)
// for every i on the pool's threads, growing the pool to the widest fan-out
// seen (up to a cap), so a checkpoint over 200 slots does not start 200
// threads per phase. Blocking work is fine: every task may wait on a node.
// Thread-safe; ParallelFor may be called from several threads at once.
#ifndef GWMIRROR_COMMON_WORKER_POOL_H_
#define GWMIRROR_COMMON_WORKER_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace gwmirror {

class WorkerPool {
 public:
  explicit WorkerPool(size_t max_threads = 512) : max_threads_(max_threads) {}
  ~WorkerPool();

  // fn(0) .. fn(n-1), at most `max_threads` at a time; returns when all
  // returned.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  const size_t max_threads_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  // Threads waiting for a task, and threads started that have not yet
  // waited.
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  size_t starting_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_WORKER_POOL_H_
