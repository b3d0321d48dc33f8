// The worker pool: every index runs once, a fan-out of blocking tasks runs
// all at once (each may wait on its node), callers on several threads
// share the pool, and the pool stops with its threads idle.
#include "common/worker_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TEST(WorkerPoolTest, EveryIndexRunsOnce) {
  WorkerPool pool;
  for (size_t n : {0, 1, 7, 300}) {
    std::vector<std::atomic<int>> runs(n);
    pool.ParallelFor(n, [&](size_t i) { runs[i].fetch_add(1); });
    for (size_t i = 0; i < n; ++i)
      EXPECT_EQ(runs[i].load(), 1) << n << " " << i;
  }
}

TEST(WorkerPoolTest, AFanOutOfBlockingTasksRunsAllAtOnce) {
  // Each task waits until all 200 have started: only a pool that runs
  // them at once finishes (bounded: a task gives up after 10 s).
  WorkerPool pool;
  for (int round = 0; round < 3; ++round) {
    absl::Mutex mu;
    int started = 0;
    std::atomic<int> gave_up{0};
    pool.ParallelFor(200, [&](size_t) {
      absl::MutexLock l(&mu);
      ++started;
      auto all = [&started]() { return started == 200; };
      if (!mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(10))) {
        gave_up.fetch_add(1);
      }
    });
    EXPECT_EQ(gave_up.load(), 0) << "round " << round;
  }
}

TEST(WorkerPoolTest, CallersOnSeveralThreadsShareThePool) {
  WorkerPool pool(8);
  std::atomic<int> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int k = 0; k < 50; ++k) {
        pool.ParallelFor(10, [&](size_t) { total.fetch_add(1); });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 10);
}

TEST(WorkerPoolTest, AtMostMaxThreadsRunAtOnce) {
  WorkerPool pool(3);
  std::atomic<int> running{0}, most{0};
  pool.ParallelFor(30, [&](size_t) {
    int now = running.fetch_add(1) + 1;
    for (int seen = most.load();
         now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    absl::SleepFor(absl::Milliseconds(2));
    running.fetch_sub(1);
  });
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 1);
}

}  // namespace
}  // namespace gwmirror
