#include "common/path.h"

#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TEST(PathTest, AcceptsNormalRelativePaths) {
  for (const char* p :
       {"a", "opt/Axway-7.7/apigateway/conf/jvm.xml",
        "etc/init.d/vshell-Node-Manager", "a/.hidden", "a/..b"}) {
    EXPECT_TRUE(ValidateRelativePath(p).ok()) << p;
  }
}

TEST(PathTest, RefusesUnsafePaths) {
  std::string nul("a\0b", 3);
  for (const std::string& p :
       {std::string(""), std::string("/etc/passwd"), std::string("../x"),
        std::string("a/../../x"), std::string("a/./b"), std::string("a//b"),
        std::string("a/"), nul, std::string(5000, 'a'),
        std::string("a/") + std::string(256, 'b'),
        std::string("a/.gwmirror-staging/x")}) {
    absl::Status st = ValidateRelativePath(p);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << p;
    EXPECT_NE(st.message().find("unsafe path"), std::string::npos);
  }
}

TEST(PathTest, Within) {
  EXPECT_TRUE(PathIsWithin("a/b/c", "a/b"));
  EXPECT_TRUE(PathIsWithin("a/b", "a/b"));
  EXPECT_FALSE(PathIsWithin("a/bc", "a/b"));
  EXPECT_FALSE(PathIsWithin("a", "a/b"));
  EXPECT_EQ(JoinPath("/r", "a"), "/r/a");
  EXPECT_EQ(JoinPath("/", "a"), "/a");
}

}  // namespace
}  // namespace gwmirror
