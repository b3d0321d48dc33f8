#include "node/source/signature_cache.h"

#include <unistd.h>

#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

TEST(SignatureCacheTest,
     AWriterIsVisibleOnlyOnceCommittedAndLeavesNothingElse) {
  testing::TempDir dir;
  SignatureCache cache(dir / "sigs", 1024);
  const std::string a(32, 'a'), b(32, 'b');
  ASSERT_TRUE(cache.Put(a, "whole").ok());
  EXPECT_EQ(cache.Get(a), "whole");
  {
    auto w = cache.Start(b);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Append("in ").ok());
    ASSERT_TRUE((*w)->Append("pieces").ok());
    EXPECT_EQ(cache.Get(b), std::nullopt);
    ASSERT_TRUE((*w)->Commit().ok());
  }
  EXPECT_EQ(cache.Get(b), "in pieces");
  // A writer dropped without a commit (a push that failed) leaves neither
  // an entry nor its temporary file.
  const std::string c(32, 'c');
  {
    auto w = cache.Start(c);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("half").ok());
  }
  EXPECT_EQ(cache.Get(c), std::nullopt);
  EXPECT_NE(access((dir / "sigs/1024/" + HexOf(c) + ".tmp").c_str(), F_OK), 0);
  cache.Prune({b});
  EXPECT_EQ(cache.Get(a), std::nullopt);
  EXPECT_EQ(cache.Get(b), "in pieces");
}

}  // namespace
}  // namespace gwmirror
