#include "common/worker_pool.h"

namespace gwmirror {

WorkerPool::~WorkerPool() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void WorkerPool::Loop() {
  {
    absl::MutexLock l(&mu_);
    --starting_;
  }
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock l(&mu_);
      ++idle_;
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      --idle_;
      if (tasks_.empty()) return;  // Stopping.
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void WorkerPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  absl::Mutex done_mu;
  size_t left = n;
  {
    absl::MutexLock l(&mu_);
    for (size_t i = 0; i < n; ++i) {
      tasks_.push_back([&fn, &done_mu, &left, i] {
        fn(i);
        absl::MutexLock d(&done_mu);
        --left;
      });
    }
    // Enough threads that every task can wait on its node at once.
    while (idle_ + starting_ < tasks_.size() &&
           threads_.size() < max_threads_) {
      ++starting_;
      threads_.emplace_back([this] { Loop(); });
    }
  }
  absl::MutexLock d(&done_mu);
  auto finished = [&left]() { return left == 0; };
  done_mu.Await(absl::Condition(&finished));
}

}  // namespace gwmirror
