#include "common/process.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// The tests' own runner (tests/node/test_util): a program started by
// another thread at the same moment must not inherit this one's pipes, or
// its caller waits for the other program to end. (It did: in CI a status
// call in an e2e test waited a 60 s drill out and never saw it.) Both
// threads start together, many times, to meet the window between one's
// pipe() and its fork().
TEST(ProcessTest, ConcurrentTestRunsDoNotHoldEachOthersPipes) {
  int waited = 0;
  for (int i = 0; i < 10 && waited == 0; ++i) {
    std::atomic<int> ready{0};
    auto together = [&] {
      ++ready;
      while (ready < 2) {
      }
    };
    std::thread long_one([&] {
      together();
      testing::Run({"/bin/sleep", "0.6"});
    });
    together();
    const absl::Time t = absl::Now();
    testing::RunResult r = testing::Run({"/bin/echo", "ok"});
    if (absl::Now() - t > absl::Milliseconds(450)) ++waited;
    long_one.join();
    EXPECT_EQ(r.out, "ok\n");
  }
  EXPECT_EQ(waited, 0) << "a run waited for another thread's program";
}

TEST(ProcessTest, StdinStdoutExitAndStderr) {
  testing::TempDir dir;
  testing::WriteFile(dir / "in", "hello\n");
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3"};
  spec.stdin_path = dir / "in";
  spec.stdout_path = dir / "out";
  auto r = RunProcess(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(testing::ReadFile(dir / "out"), "HELLO\n");
  EXPECT_EQ(Describe(*r), "exit 3: oops");
}

TEST(ProcessTest, TimeoutKillsTheWholeGroup) {
  testing::TempDir dir;
  ProcessSpec spec;
  // A grandchild that would outlive its parent holds stderr open.
  spec.argv = {"/bin/sh", "-c",
               "sleep 30 & echo $! > " + (dir / "pid") + "; sleep 30"};
  spec.timeout = absl::Milliseconds(300);
  absl::Time start = absl::Now();
  auto r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(absl::StartsWith(Describe(*r), "timed out after"))
      << Describe(*r);
  int grandchild = std::stoi(testing::ReadFile(dir / "pid"));
  usleep(100000);
  // Gone, or a zombie nobody reaps (killed, its parent gone too).
  auto stat = ReadFileToString(absl::StrCat("/proc/", grandchild, "/stat"));
  bool alive = stat.ok() && stat->substr(stat->rfind(')') + 2, 1) != "Z";
  EXPECT_FALSE(alive) << "grandchild survived: " << *stat;
}

TEST(ProcessTest, MissingProgramAndEnvironment) {
  ProcessSpec spec;
  spec.argv = {"gwmirror-no-such-program"};
  auto r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_TRUE(absl::StrContains(r->stderr_tail, "cannot run"))
      << r->stderr_tail;
  testing::TempDir dir;
  spec.argv = {"/bin/sh", "-c", "printf %s \"$GWM_TEST\""};
  spec.env = {{"GWM_TEST", "value"}};
  spec.stdout_path = dir / "out";
  ASSERT_TRUE(RunProcess(spec).ok());
  EXPECT_EQ(testing::ReadFile(dir / "out"), "value");
  spec.argv.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(RunProcess(spec).status()));
}

}  // namespace
}  // namespace gwmirror
