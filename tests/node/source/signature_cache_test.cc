#include "node/source/signature_cache.h"

#include <unistd.h>

#include <optional>
#include <string>

#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// The entry's bytes, or nullopt when the cache has none.
std::optional<std::string> Get(const SignatureCache& cache,
                               absl::string_view sha256) {
  auto m = cache.Map(sha256);
  EXPECT_EQ(m.ok(), cache.Has(sha256));
  if (!m.ok()) return std::nullopt;
  return std::string((*m)->view());
}

absl::Status Put(SignatureCache& cache, absl::string_view sha256,
                 absl::string_view bytes) {
  auto w = cache.Start(sha256);
  if (!w.ok()) return w.status();
  if (absl::Status st = (*w)->Append(bytes); !st.ok()) return st;
  return (*w)->Commit();
}

TEST(SignatureCacheTest,
     AWriterIsVisibleOnlyOnceCommittedAndLeavesNothingElse) {
  testing::TempDir dir;
  SignatureCache cache(dir / "sigs", 1024);
  const std::string a(32, 'a'), b(32, 'b');
  ASSERT_TRUE(Put(cache, a, "whole").ok());
  EXPECT_EQ(Get(cache, a), "whole");
  {
    auto w = cache.Start(b);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Append("in ").ok());
    ASSERT_TRUE((*w)->Append("pieces").ok());
    EXPECT_EQ(Get(cache, b), std::nullopt);
    ASSERT_TRUE((*w)->Commit().ok());
  }
  EXPECT_EQ(Get(cache, b), "in pieces");
  // A writer dropped without a commit (a push that failed) leaves neither
  // an entry nor its temporary file.
  const std::string c(32, 'c');
  {
    auto w = cache.Start(c);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("half").ok());
  }
  EXPECT_EQ(Get(cache, c), std::nullopt);
  EXPECT_NE(access((dir / "sigs/1024/" + HexOf(c) + ".tmp").c_str(), F_OK), 0);
  cache.Prune({b});
  EXPECT_EQ(Get(cache, a), std::nullopt);
  EXPECT_EQ(Get(cache, b), "in pieces");
  // An empty entry maps too (mmap refuses a length of 0).
  const std::string d(32, 'd');
  ASSERT_TRUE(Put(cache, d, "").ok());
  EXPECT_EQ(Get(cache, d), "");
}

// A signature built before its file's digest is known (a digest at the
// end) is named at Commit; two at once do not meet, and a name is given
// once only.
TEST(SignatureCacheTest, ASignatureIsNamedAtCommitWhenStartedWithoutADigest) {
  testing::TempDir dir;
  SignatureCache cache(dir / "sigs", 1024);
  const std::string d(32, 'd'), e(32, 'e');
  auto first = cache.Start("");
  auto second = cache.Start("");
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE((*first)->Append("first").ok());
  ASSERT_TRUE((*second)->Append("second").ok());
  ASSERT_TRUE((*second)->Commit(e).ok());
  ASSERT_TRUE((*first)->Commit(d).ok());
  EXPECT_EQ(Get(cache, d), "first");
  EXPECT_EQ(Get(cache, e), "second");
  auto unnamed = cache.Start("");
  ASSERT_TRUE(unnamed.ok());
  EXPECT_TRUE(absl::IsInternal((*unnamed)->Commit()));
  auto named = cache.Start(d);
  ASSERT_TRUE(named.ok());
  EXPECT_TRUE(absl::IsInternal((*named)->Commit(e)));
  EXPECT_EQ(Get(cache, d), "first");
  EXPECT_EQ(Get(cache, e), "second");
}

}  // namespace
}  // namespace gwmirror
