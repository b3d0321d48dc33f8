// Progress off a terminal: plain lines (a log, a pipe, cron) or JSON
// events (--json), on stderr, at their interval, with the latest detail.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// Runs `work` with stderr sent to a file: what it wrote there.
template <typename Fn>
std::string Stderr(Fn work) {
  testing::TempDir dir;
  const std::string path = dir / "stderr";
  const int saved = dup(2);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2);
  close(fd);
  work();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  return testing::ReadFile(path);
}

TEST(ProgressTest, PlainLinesOffATerminal) {
  Progress::SetInterval(absl::Milliseconds(100));
  Progress::UseJsonEvents(false);
  std::string out = Stderr([] {
    Progress p("export of gw1");
    absl::SleepFor(absl::Milliseconds(400));
    p.Set("12.0 MB of tar received, 40.0 MB/s");
    absl::SleepFor(absl::Milliseconds(400));
  });
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u) << out;
  EXPECT_EQ(lines[0], "export of gw1: 0 s") << out;
  EXPECT_TRUE(absl::StartsWith(lines.back(), "export of gw1: ")) << out;
  EXPECT_TRUE(
      absl::EndsWith(lines.back(), " s - 12.0 MB of tar received, 40.0 MB/s"))
      << out;
  EXPECT_FALSE(absl::StrContains(out, "\r")) << "no terminal controls in a log";
  // Work shorter than the interval says nothing.
  Progress::SetInterval(absl::Seconds(5));
  EXPECT_EQ(Stderr([] { Progress p("quick"); }), "");
}

TEST(ProgressTest, JsonEventsWithJson) {
  Progress::SetInterval(absl::Milliseconds(100));
  Progress::UseJsonEvents(true);
  std::string out = Stderr([] {
    Progress p("import of \"a\".tar");
    p.Set("50 % read; 3 of 6 entries");
    absl::SleepFor(absl::Milliseconds(400));
  });
  Progress::UseJsonEvents(false);
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 1u) << out;
  EXPECT_TRUE(absl::StartsWith(
      lines[0],
      "{\"event\": \"progress\", \"what\": \"import of \\\"a\\\".tar\", "
      "\"elapsed_s\": 0."))
      << out;
  EXPECT_TRUE(
      absl::EndsWith(lines[0], ", \"detail\": \"50 % read; 3 of 6 entries\"}"))
      << out;
}

}  // namespace
}  // namespace gwmirror
