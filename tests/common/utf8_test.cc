#include "common/utf8.h"

#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TEST(Utf8Test, ValidTextStaysInvalidBytesAreSpelledOut) {
  for (const char* ok :
       {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x99\x82"}) {
    EXPECT_TRUE(IsValidUtf8(ok)) << ok;
    EXPECT_EQ(ValidUtf8(ok), ok);
  }
  const std::pair<std::string, std::string> bad[] = {
      {"a\xff"
       "b",
       "a\\xffb"},
      {"\xc3", "\\xc3"},                             // Truncated.
      {"\xc0\xaf", "\\xc0\\xaf"},                    // Overlong.
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},           // A surrogate.
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},  // Above U+10FFFF.
      {"ok \xc3\xa9 \x80", "ok \xc3\xa9 \\x80"},
  };
  for (const auto& [in, out] : bad) {
    EXPECT_FALSE(IsValidUtf8(in)) << out;
    EXPECT_EQ(ValidUtf8(in), out);
    EXPECT_TRUE(IsValidUtf8(ValidUtf8(in)));
  }
}

}  // namespace
}  // namespace gwmirror
