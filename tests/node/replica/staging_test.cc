// The staging area on its own: which checkpoint it holds, what is complete,
// the pre-stage pool's cap and trimming, and what a restart keeps.
#include "node/replica/staging.h"

#include <unistd.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/node/replica/store_items.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::F;

class StagingTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(uint64_t pool_cap = 1 << 20) {
    staging_.reset();
    Staging::Limits limits;
    limits.pool_cap = pool_cap;
    limits.min_free_bytes = 1;
    auto s = Staging::Open(dir_.path(), limits, Env::Default());
    ASSERT_TRUE(s.ok()) << s.status();
    staging_ = *std::move(s);
  }
  // Writes `item`'s object where a push session would, and records it.
  void Put(uint64_t n, const testing::Item& item, bool prestage = false) {
    const std::string path = prestage
                                 ? staging_->PoolPath(item.entry.sha256())
                                 : staging_->ObjectPath(n, item.entry.sha256());
    testing::WriteFile(path, item.content);
    staging_->Staged(item.entry, prestage);
  }
  static Manifest Of(const std::vector<testing::Item>& items) {
    std::vector<Entry> entries;
    for (const auto& i : items) entries.push_back(i.entry);
    return *Manifest::FromEntries(entries);
  }

  testing::TempDir dir_;
  std::unique_ptr<Staging> staging_;
};

TEST_F(StagingTest, CompleteOnlyWhenEveryNeededObjectIsHere) {
  const auto a = F("a", "alpha"), b = F("b", "beta");
  ASSERT_TRUE(staging_->Begin(2).ok());
  Put(2, a);
  auto r = staging_->Finish(2, Of({a, b}), "digest", Manifest());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "\"r/b\"")) << r.status();
  EXPECT_FALSE(staging_->complete());
  // Asked whole: not an error, the push is told to send it.
  staging_->AskWhole("r/b");
  r = staging_->Finish(2, Of({a, b}), "digest", Manifest());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, std::vector<std::string>{"r/b"});
  EXPECT_FALSE(staging_->complete());
  Put(2, b);
  r = staging_->Finish(2, Of({a, b}), "digest", Manifest());
  ASSERT_TRUE(r.ok() && r->empty()) << r.status();
  ASSERT_TRUE(staging_->complete());
  EXPECT_EQ(staging_->complete()->checkpoint, 2u);
  EXPECT_EQ(staging_->complete()->digest, "digest");
  // A file the committed tree holds needs no object.
  ASSERT_TRUE(staging_->Begin(3).ok());
  r = staging_->Finish(3, Of({a}), "d3", Of({a}));
  EXPECT_TRUE(r.ok() && r->empty()) << r.status();
}

TEST_F(StagingTest, ARestartKeepsOnlyACompleteStagingNewerThanTheTree) {
  const auto a = F("a", "alpha");
  ASSERT_TRUE(staging_->Begin(4).ok());
  Put(4, a);
  ASSERT_TRUE(staging_->Finish(4, Of({a}), "d", Manifest()).ok());
  // Its manifest is kept as an edit of the committed one it was staged
  // against: against another, it is dropped.
  Open();
  ASSERT_TRUE(staging_->Recover(/*committed=*/3, Of({F("z", "zz")})).ok());
  EXPECT_FALSE(staging_->complete());
  ASSERT_TRUE(staging_->Begin(4).ok());
  Put(4, a);
  ASSERT_TRUE(staging_->Finish(4, Of({a}), "d", Manifest()).ok());
  Open();
  ASSERT_TRUE(staging_->Recover(/*committed=*/3, Manifest()).ok());
  ASSERT_TRUE(staging_->complete());
  EXPECT_EQ(staging_->checkpoint(), 4u);
  EXPECT_EQ(staging_->complete()->digest, DigestBytes(Of({a}).ComputeDigest()));
  EXPECT_EQ(staging_->complete()->manifest->Encode(), Of({a}).Encode());
  // Committed meanwhile (the staging is older than the tree): dropped.
  Open();
  ASSERT_TRUE(staging_->Recover(/*committed=*/4, Manifest()).ok());
  EXPECT_FALSE(staging_->complete());
  EXPECT_EQ(staging_->checkpoint(), 0u);
  EXPECT_NE(access((dir_ / "staging").c_str(), F_OK), 0);
  // Incomplete: dropped.
  ASSERT_TRUE(staging_->Begin(5).ok());
  Put(5, a);
  Open();
  ASSERT_TRUE(staging_->Recover(4, Manifest()).ok());
  EXPECT_EQ(staging_->checkpoint(), 0u);
}

TEST_F(StagingTest, ThePoolIsCappedEmptiedAtStartAndTrimmedByCommits) {
  Open(/*pool_cap=*/100);
  const auto small = F("s", std::string(60, 's'));
  const auto other = F("o", std::string(60, 'o'));
  ASSERT_TRUE(staging_->CheckSpace(small.entry, /*prestage=*/true).ok());
  Put(0, small, /*prestage=*/true);
  absl::Status full = staging_->CheckSpace(other.entry, /*prestage=*/true);
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_TRUE(absl::StrContains(full.message(), "pre-stage pool is full"));
  // A cut takes the pool's copy; the commit then drops it from the pool.
  ASSERT_TRUE(staging_->Begin(1).ok());
  auto taken = staging_->TakeFromPool(1, small.entry);
  ASSERT_TRUE(taken.ok() && *taken) << taken.status();
  ASSERT_TRUE(staging_->Finish(1, Of({small}), "d", Manifest()).ok());
  ASSERT_TRUE(staging_->Committed(1).ok());
  EXPECT_NE(access(staging_->PoolPath(small.entry.sha256()).c_str(), F_OK), 0);
  EXPECT_TRUE(staging_->CheckSpace(other.entry, true).ok()) << "space freed";
  // A version no commit uses goes after two commits.
  Put(0, other, /*prestage=*/true);
  for (uint64_t n : {2, 3}) {
    EXPECT_EQ(access(staging_->PoolPath(other.entry.sha256()).c_str(), F_OK), 0)
        << n;
    ASSERT_TRUE(staging_->Begin(n).ok());
    ASSERT_TRUE(staging_->Finish(n, Manifest(), "d", Manifest()).ok());
    ASSERT_TRUE(staging_->Committed(n).ok());
  }
  EXPECT_NE(access(staging_->PoolPath(other.entry.sha256()).c_str(), F_OK), 0);
  // A restart empties the pool under a new id: what it held is asked whole.
  Put(0, small, /*prestage=*/true);
  const uint64_t id = staging_->pool_id();
  Open(100);
  EXPECT_NE(staging_->pool_id(), id);
  ASSERT_TRUE(staging_->Begin(4).ok());
  taken = staging_->TakeFromPool(4, small.entry);
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);
  auto r = staging_->Finish(4, Of({small}), "d", Manifest());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, std::vector<std::string>{"r/s"});
}

}  // namespace
}  // namespace gwmirror
