// Log lines in both formats: the text line as before, and JSON with the
// subject's slot, checkpoint and drill as fields and every byte escaped.
#include "common/log.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

const struct timespec kWhen = {1795000000, 123456789};

TEST(LogTest, TextLineKeepsItsShape) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kWhen, LogLevel::kWarning,
                          "replica", "checkpoint=7 drift: 2 entries"),
            "2026-11-18T11:06:40.123Z WARN replica checkpoint=7 drift: 2 "
            "entries\n");
}

TEST(LogTest, JsonLineNamesSlotAndCheckpointAndEscapes) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kWhen, LogLevel::kInfo, "node",
                          "slot=gw1 checkpoint=7 applied \"conf\"\\x\n\xff"),
            "{\"ts\":\"2026-11-18T11:06:40.123Z\",\"level\":\"INFO\","
            "\"component\":\"node\",\"slot\":\"gw1\",\"checkpoint\":7,"
            "\"msg\":\"applied \\\"conf\\\"\\\\x\\u000a\\u00ff\"}\n");
  // Only leading subject words become fields.
  std::string line = FormatLogLine(LogFormat::kJson, kWhen, LogLevel::kError,
                                   "coordinator", "promote a=b checkpoint=x");
  EXPECT_TRUE(absl::StrContains(line, "\"msg\":\"promote a=b checkpoint=x\""))
      << line;
  line = FormatLogLine(LogFormat::kJson, kWhen, LogLevel::kInfo, "replica",
                       "checkpoint=notanumber x");
  EXPECT_TRUE(absl::StrContains(line, "\"msg\":\"checkpoint=notanumber x\""))
      << line;
}

TEST(LogTest, FormatNamesAreChecked) {
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  auto bad = ParseLogFormat("xml");
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "\"xml\""));
}

}  // namespace
}  // namespace gwmirror
