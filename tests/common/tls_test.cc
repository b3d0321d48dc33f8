#include "common/tls.h"

#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

TEST(TlsTest, IssuesKeysPrivateAndCredentialsLoad) {
  testing::TempDir dir;
  testing::Pki pki(dir.path());
  auto tls = pki.Issue("node-a");
  struct stat st;
  ASSERT_EQ(stat(tls.key_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(MakeServerCredentials(tls).ok());
  EXPECT_TRUE(DialMutualTls(tls, "127.0.0.1:1", "node-b").ok());
  gwmirror::v1::TlsConfig missing = tls;
  missing.set_key_file(dir / "nope.key");
  EXPECT_EQ(MakeServerCredentials(missing).status().code(),
            absl::StatusCode::kNotFound);
  gwmirror::v1::TlsConfig empty;
  EXPECT_EQ(MakeServerCredentials(empty).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gwmirror
