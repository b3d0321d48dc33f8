#include "common/state_lock.h"

#include <unistd.h>

#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

TEST(StateDirLockTest, ASecondHolderIsRefusedByNameUntilTheFirstLetsGo) {
  testing::TempDir dir;
  {
    auto first = StateDirLock::Acquire(dir.path());
    ASSERT_TRUE(first.ok()) << first.status();
    // flock is per open file: a second open in this process contends as
    // another process would.
    auto second = StateDirLock::Acquire(dir.path(), absl::ZeroDuration());
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(second.status().message().find(absl::StrCat(
                  "in use by another gwmirror-node (pid ", getpid(), ")")),
              absl::string_view::npos)
        << second.status();
    EXPECT_NE(second.status().message().find(dir.path()),
              absl::string_view::npos);
  }
  // Released with its holder (as the kernel releases a dead process's).
  EXPECT_TRUE(StateDirLock::Acquire(dir.path()).ok());
}

TEST(StateDirLockTest, AHolderThatLetsGoWithinTheWaitIsWaitedFor) {
  testing::TempDir dir;
  auto first = std::make_optional(StateDirLock::Acquire(dir.path()));
  ASSERT_TRUE(first->ok());
  std::thread exiting([&first] {
    absl::SleepFor(absl::Milliseconds(200));
    first.reset();
  });
  const absl::Time start = absl::Now();
  auto second = StateDirLock::Acquire(dir.path(), absl::Seconds(10));
  exiting.join();
  EXPECT_TRUE(second.ok()) << second.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(StateDirLockTest, AMissingDirectoryIsAnErrorNamingIt) {
  auto lock = StateDirLock::Acquire("/nonexistent/gwmirror-state");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("/nonexistent/gwmirror-state/lock"),
            absl::string_view::npos)
      << lock.status();
}

}  // namespace
}  // namespace gwmirror
