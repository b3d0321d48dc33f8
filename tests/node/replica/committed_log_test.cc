// The committed manifest's snapshot and journal on their own: what a
// reopen reads back after appends, folds, a torn last append, damage and a
// fold cut short by power loss.
#include "node/replica/committed_log.h"

#include <unistd.h>

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/node/replica/store_items.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class CommittedLogTest : public ::testing::Test {
 protected:
  // A manifest of `files` files, the i-th with content `tag`+i.
  static Manifest Files(int files, const std::string& tag) {
    std::vector<Entry> es;
    for (int i = 0; i < files; ++i) {
      es.push_back(
          testing::F(absl::StrCat("f", 1000 + i), absl::StrCat(tag, i)).entry);
    }
    return *Manifest::FromEntries(es);
  }
  absl::StatusOr<ManifestFile> Reopen() {
    ManifestFile f;
    auto log = CommittedLog::Open(dir_.path(), Env::Default(), &f);
    if (!log.ok()) return log.status();
    log_ = *std::move(log);
    return f;
  }
  std::string Journal() const { return dir_.path() + "/committed.journal"; }
  off_t JournalSize() const {
    std::ifstream in(Journal(), std::ios::binary | std::ios::ate);
    return in.tellg();
  }

  testing::TempDir dir_;
  std::unique_ptr<CommittedLog> log_;
};

TEST_F(CommittedLogTest, AReopenReadsTheLastCommitBackThroughFolds) {
  ASSERT_EQ(Reopen().status().code(), absl::StatusCode::kNotFound);
  Manifest m = Files(50, "v0-");
  auto log = CommittedLog::Create(dir_.path(), Env::Default(), 0, m);
  ASSERT_TRUE(log.ok()) << log.status();
  log_ = *std::move(log);
  std::mt19937 rng(3);
  // Checkpoints need not rise: a roll back commits an older number again.
  const std::vector<uint64_t> order = {1, 2, 3, 1, 4, 5};
  int folds = 0;
  for (int round = 0; round < 1100; ++round) {
    const uint64_t n = order[round % order.size()] + round / 6 * 10;
    std::vector<Entry> es(m.entries().begin(), m.entries().end());
    const size_t at = rng() % es.size();
    es[at] = testing::F(es[at].path(), absl::StrCat(round)).entry;
    if (round % 7 == 0) es.erase(es.begin() + rng() % es.size());
    if (round % 5 == 0) {
      es.push_back(testing::F(absl::StrCat("new", round), "n").entry);
    }
    Manifest next = *Manifest::FromEntries(es);
    const uint64_t before = log_->journal_records();
    ASSERT_TRUE(log_->Append(DiffManifests(m, next, n), next).ok());
    folds += log_->journal_records() < before;
    m = next;
    if (round % 150 == 0 || round == 1099) {
      auto back = Reopen();
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(back->checkpoint, n) << "round " << round;
      ASSERT_EQ(back->manifest.Encode(), m.Encode()) << "round " << round;
    }
  }
  // 1024 records at most between folds.
  EXPECT_GE(folds, 1);
}

TEST_F(CommittedLogTest, ATornLastAppendIsCutDamageBeforeItIsRefused) {
  const Manifest m0 = Files(20, "a"), m1 = Files(20, "b"), m2 = Files(21, "c");
  log_ = *CommittedLog::Create(dir_.path(), Env::Default(), 7, m0);
  ASSERT_TRUE(log_->Append(DiffManifests(m0, m1, 8), m1).ok());
  const off_t after_first = JournalSize();
  ASSERT_TRUE(log_->Append(DiffManifests(m1, m2, 9), m2).ok());
  const off_t after_second = JournalSize();
  // Power lost inside the second append: every shorter length of it reads
  // back as checkpoint 8, and the tail is cut off.
  for (off_t cut : {after_first + 1, after_first + 3, after_first + 4,
                    after_first + 40, after_second - 1}) {
    log_.reset();
    ASSERT_EQ(truncate(Journal().c_str(), cut), 0);
    auto back = Reopen();
    ASSERT_TRUE(back.ok()) << cut << ": " << back.status();
    EXPECT_EQ(back->checkpoint, 8u);
    EXPECT_EQ(back->manifest.Encode(), m1.Encode());
    EXPECT_EQ(JournalSize(), after_first) << cut;
    ASSERT_TRUE(log_->Append(DiffManifests(m1, m2, 9), m2).ok());
    ASSERT_EQ(JournalSize(), after_second);
  }
  // A flipped byte in the first record, with the second after it: that is
  // damage, not a torn append, and nothing is guessed.
  log_.reset();
  {
    std::fstream f(Journal(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(after_first - 40);
    const char was = static_cast<char>(f.get());
    f.seekp(after_first - 40);
    f.put(static_cast<char>(was ^ 0xff));
  }
  auto back = Reopen();
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(back.status().message().find("committed.journal"),
            std::string::npos)
      << back.status();
}

TEST_F(CommittedLogTest, AJournalOfAnEarlierSnapshotIsNotReplayedOnANewOne) {
  const Manifest m0 = Files(10, "a"), m1 = Files(10, "b"), m2 = Files(12, "c");
  log_ = *CommittedLog::Create(dir_.path(), Env::Default(), 1, m0);
  ASSERT_TRUE(log_->Append(DiffManifests(m0, m1, 2), m1).ok());
  const std::string stale = testing::ReadFile(Journal());
  // A fold (here: a recorded drift) wrote the new snapshot, and power went
  // before the journal was started again: the old journal is back.
  ASSERT_TRUE(log_->Snapshot(3, m2).ok());
  log_.reset();
  testing::WriteFile(Journal(), stale);
  auto back = Reopen();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint, 3u);
  EXPECT_EQ(back->manifest.Encode(), m2.Encode());
  // And commits go on from there.
  ASSERT_TRUE(log_->Append(DiffManifests(m2, m0, 4), m0).ok());
  back = Reopen();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint, 4u);
  EXPECT_EQ(back->manifest.Encode(), m0.Encode());
}

}  // namespace
}  // namespace gwmirror
