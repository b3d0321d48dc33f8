// The source's in-memory tree: after any change, a stable scan that read
// only what inotify reported equals a whole walk of the tree; a change while
// it reads is read again; a tree that never settles is refused by name; an
// overflow, a late root and the cut's own dump files are not missed.
#include "node/source/source_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/fault.h"
#include "common/fd.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class SourceTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(dir_ / "host/gw/conf/a.xml", "a");
    testing::WriteFile(dir_ / "host/gw/conf/sub/b.xml", "bb");
    testing::WriteFile(dir_ / "host/gw/lib/big.bin", std::string(100000, 'x'));
    testing::WriteFile(dir_ / "host/gw/logs/gw.log", "log");
    config_.set_slot("gw1");
    config_.set_host_root(dir_ / "host");
    config_.set_state_dir(dir_ / "state");
    auto* root = config_.add_roots();
    root->set_path("gw");
    roots_.push_back(*root);
  }
  void TearDown() override { SetFaultSpec(""); }

  void Start(std::set<std::string> ignore = {}) {
    ChangeWatcher::Options o;
    o.ignore = ignore;
    watcher_ = std::make_unique<ChangeWatcher>(config_, o);
    ASSERT_TRUE(watcher_->Start().ok());
    tree_ = std::make_unique<SourceTree>(config_, watcher_.get(), ignore);
  }

  // A stable scan, checked against a whole walk of the tree.
  ScanResult ScanAndCompare(const std::string& after) {
    auto scan = tree_->StableScan(absl::Seconds(5));
    EXPECT_TRUE(scan.ok()) << after << ": " << scan.status();
    if (!scan.ok()) return ScanResult();
    EXPECT_EQ(
        testing::Diff(testing::Snapshot(dir_ / "host", roots_), scan->manifest),
        "")
        << "after " << after;
    return *std::move(scan);
  }

  testing::TempDir dir_;
  gwmirror::v1::NodeConfig config_;
  std::vector<gwmirror::v1::RootConfig> roots_;
  std::unique_ptr<ChangeWatcher> watcher_;
  std::unique_ptr<SourceTree> tree_;
};

// What a scan holds for the push: a whole walk (here without a watcher,
// as the one-shot push scans) holds a large file's descriptor, never small
// files' bytes; a scan of changed paths holds the bytes it read.
TEST_F(SourceTreeTest, WholeWalksHoldDescriptorsAndPathScansBytesToo) {
  const std::string large(kHoldFileMax + 1, 'L');
  testing::WriteFile(dir_ / "host/gw/lib/large.bin", large);
  {
    SourceTree cold(config_, nullptr);
    auto walk = cold.StableScan(absl::Seconds(5));
    ASSERT_TRUE(walk.ok()) << walk.status();
    const Entry* e = walk->manifest.Find("gw/lib/large.bin");
    ASSERT_NE(e, nullptr);
    ASSERT_EQ(walk->held.size(), 1u);
    ASSERT_EQ(walk->held.count(e->sha256()), 1u);
    const HeldContent& h = walk->held.at(e->sha256());
    ASSERT_NE(h.fd, nullptr);
    std::string got(large.size(), '\0');
    EXPECT_EQ(pread(h.fd->get(), got.data(), got.size(), 0),
              static_cast<ssize_t>(large.size()));
    EXPECT_EQ(got, large);
  }
  Start();
  ScanAndCompare("the start");
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "edited");
  ScanResult edit = ScanAndCompare("an edit");
  const Entry* a = edit.manifest.Find("gw/conf/a.xml");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(edit.held.count(a->sha256()), 1u);
  EXPECT_EQ(edit.held.at(a->sha256()).bytes, "edited");
}

// A large file's digest left pending by the scan and found by the push
// (Learn) is kept by the tree, so the next scan reads nothing, but only
// for the file as it was hashed: a digest told for other stat data, or
// for a file rewritten since, is not taken.
TEST_F(SourceTreeTest, ADigestFoundByThePushIsKeptOnlyForTheFileHashed) {
  config_.mutable_source()->set_digest_while_sending_from(50000);
  // Settled: a small file written within the last clock tick is hashed.
  absl::SleepFor(absl::Milliseconds(50));
  Start();
  const std::string path = "gw/lib/big.bin";
  auto first = tree_->StableScan(absl::Seconds(5));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->manifest.Find(path)->sha256(), "");
  ASSERT_TRUE(first->pending.contains(path));
  struct stat hashed;
  ASSERT_EQ(fstat(first->pending.at(path).fd->get(), &hashed), 0);
  const std::string sha = DigestBytes(Sha256Of(std::string(100000, 'x')));
  // Other stat data (a file rewritten since, as far as the tree can tell).
  struct stat other = hashed;
  other.st_mtim.tv_nsec = (other.st_mtim.tv_nsec + 1) % 1000000000;
  // The digest the next scan's manifest holds for the file.
  auto scanned_digest = [&]() -> std::string {
    auto scan = tree_->StableScan(absl::Seconds(5));
    EXPECT_TRUE(scan.ok()) << scan.status();
    return scan.ok() ? scan->manifest.Find(path)->sha256() : "(no scan)";
  };
  tree_->Learn(path, other, sha);
  EXPECT_EQ(scanned_digest(), "");
  tree_->Learn(path, hashed, sha);
  auto learnt = tree_->StableScan(absl::Seconds(5));
  ASSERT_TRUE(learnt.ok()) << learnt.status();
  EXPECT_EQ(learnt->manifest.Find(path)->sha256(), sha);
  EXPECT_EQ(learnt->bytes_hashed, 0u);
  // Rewritten: pending again, and the old file's digest is not taken.
  testing::WriteFile(dir_ / "host/gw/lib/big.bin", std::string(100001, 'y'));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(scanned_digest(), "");
  tree_->Learn(path, hashed, sha);
  EXPECT_EQ(scanned_digest(), "");
}

TEST_F(SourceTreeTest, ReadsOnlyWhatChangedAndEqualsAWholeWalk) {
  Start();
  ScanResult first = ScanAndCompare("the start");
  EXPECT_EQ(first.objects_read, first.manifest.size());  // A whole walk.
  EXPECT_EQ(first.manifest.size(), 6u);  // conf, a, sub, b, lib, big.

  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "edited");
  ScanResult edit = ScanAndCompare("an edit");
  EXPECT_EQ(edit.bytes_hashed, 6u);  // Only the edited file was read.
  EXPECT_LE(edit.objects_read, 2u);

  // Nothing changed: nothing read.
  EXPECT_EQ(ScanAndCompare("nothing").objects_read, 0u);

  ASSERT_TRUE(MakeDirs(dir_ / "host/gw/new/x/y").ok());
  testing::WriteFile(dir_ / "host/gw/new/x/y/c.xml", "c");
  ScanAndCompare("a new directory tree");
  ASSERT_EQ(chmod((dir_ / "host/gw/conf/sub/b.xml").c_str(), 0600), 0);
  ScanAndCompare("a chmod");
  ASSERT_EQ(symlink("conf/a.xml", (dir_ / "host/gw/link").c_str()), 0);
  ScanAndCompare("a new symlink");
  ASSERT_EQ(rename((dir_ / "host/gw/new").c_str(),
                   (dir_ / "host/gw/conf/moved").c_str()),
            0);
  ScanAndCompare("a directory moved within the tree");
  testing::WriteFile(dir_ / "host/gw/conf/moved/x/y/c.xml", "after the move");
  ScanAndCompare("an edit below the moved directory");
  ASSERT_TRUE(MakeDirs(dir_ / "host/outside").ok());
  ASSERT_EQ(rename((dir_ / "host/gw/conf/moved").c_str(),
                   (dir_ / "host/outside/moved").c_str()),
            0);
  ScanAndCompare("a directory moved out of the tree");
  // Its old watches are gone: edits there are not news.
  testing::WriteFile(dir_ / "host/outside/moved/x/y/c.xml", "outside");
  EXPECT_TRUE(watcher_->TakeDirty().empty());
  ASSERT_TRUE(RemoveTree(dir_ / "host/gw/lib").ok());
  testing::WriteFile(dir_ / "host/gw/lib", "a file where a directory was");
  ScanAndCompare("a directory replaced by a file");
  ASSERT_TRUE(RemoveTree(dir_ / "host/gw/conf/sub").ok());
  ScanAndCompare("a removed directory");
  testing::WriteFile(dir_ / "host/gw/logs/gw.log", "excluded");
  EXPECT_TRUE(watcher_->TakeDirty().empty());
}

TEST_F(SourceTreeTest, RandomChangesMatchAWholeWalk) {
  Start();
  ScanAndCompare("the start");
  std::mt19937 rng(42);
  const std::vector<std::string> dirs = {"gw",    "gw/conf",  "gw/conf/sub",
                                         "gw/d1", "gw/d1/d2", "gw/lib"};
  // Bounded: 25 rounds of up to 12 random operations.
  for (int round = 0; round < 25; ++round) {
    int ops = 1 + rng() % 12;
    for (int i = 0; i < ops; ++i) {
      std::string d = dir_ / ("host/" + dirs[rng() % dirs.size()]);
      std::string p = absl::StrCat(d, "/f", rng() % 5);
      switch (rng() % 6) {
        case 0:
        case 1:
          (void)MakeDirs(d);
          testing::WriteFile(p, std::string(rng() % 3000, 'a' + rng() % 26));
          break;
        case 2:
          unlink(p.c_str());
          break;
        case 3:
          chmod(p.c_str(), 0600 + rng() % 0100);
          break;
        case 4:
          if (d != dir_ / "host/gw") (void)RemoveTree(d);
          break;
        case 5:
          rename(p.c_str(), absl::StrCat(d, "/g", rng() % 3).c_str());
          break;
      }
    }
    ScanAndCompare(absl::StrCat("round ", round));
  }
}

TEST_F(SourceTreeTest, AnOverflowMeansAWholeWalk) {
  Start();
  ScanResult first = ScanAndCompare("the start");
  SetFaultSpec("enospc:watch:overflow:1");
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "lost event");
  for (int i = 0; i < 200 && watcher_->PendingSince() == absl::InfinitePast();
       ++i) {
    usleep(10000);
  }
  SetFaultSpec("");
  ScanResult after = ScanAndCompare("an overflow");
  EXPECT_EQ(after.objects_read, first.manifest.size());
}

TEST_F(SourceTreeTest, AChangeWhileReadingIsReadAgain) {
  Start();
  ScanAndCompare("the start");
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "one");
  int calls = 0;
  int attempts = 0;
  auto scan = tree_->StableScan(absl::Seconds(5), &attempts, [&] {
    if (++calls == 1) testing::WriteFile(dir_ / "host/gw/conf/a.xml", "two!");
  });
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(scan->manifest.Find("gw/conf/a.xml")->size(), 4u);
  EXPECT_EQ(scan->started_ns > 0, true);
}

TEST_F(SourceTreeTest, ATreeThatNeverSettlesIsRefusedByName) {
  Start();
  ScanAndCompare("the start");
  int n = 0;
  auto scan = tree_->StableScan(absl::Milliseconds(300), nullptr, [&] {
    testing::WriteFile(dir_ / "host/gw/conf/a.xml", absl::StrCat(++n));
  });
  ASSERT_EQ(scan.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(scan.status().message().find("gw/conf/a.xml changed during"),
            std::string::npos)
      << scan.status();
}

TEST_F(SourceTreeTest, TheCutsOwnDumpFilesAreReadAtEveryScan) {
  Start({"gw/dumps/db.sql"});
  testing::WriteFile(dir_ / "host/gw/dumps/db.sql", "dump 1");
  ScanAndCompare("the start");
  testing::WriteFile(dir_ / "host/gw/dumps/db.sql", "dump two");
  EXPECT_TRUE(watcher_->TakeDirty().paths.count("gw/dumps/db.sql") == 0);
  ScanResult scan = ScanAndCompare("a new dump");
  EXPECT_EQ(scan.manifest.Find("gw/dumps/db.sql")->size(), 8u);
}

TEST_F(SourceTreeTest, ARootCreatedLaterIsRead) {
  auto* late = config_.add_roots();
  late->set_path("etc/init.d");
  roots_.push_back(*late);
  Start();
  ScanAndCompare("the start");
  testing::WriteFile(dir_ / "host/etc/init.d/vshell-gw1", "#!/bin/sh\n");
  ScanResult scan = ScanAndCompare("the root appeared");
  EXPECT_NE(scan.manifest.Find("etc/init.d/vshell-gw1"), nullptr);
  ASSERT_TRUE(RemoveTree(dir_ / "host/etc/init.d").ok());
  ScanAndCompare("the root went away");
}

// Regressions: the index was saved once a minute, so a source killed right
// after a cut re-hashed what that cut had read; replacing an entry dropped
// the index record just made for it; the files of a new directory were
// read twice (with the directory, then once each for their own events).
// Then saving at every cut cost a fifth of a one-file cut's CPU: a small
// change now waits for the minute's save.
TEST_F(SourceTreeTest, AStableScanSavesTheIndexWhenLosingItWouldCostMore) {
  Start();
  ScanAndCompare("the start");
  testing::WriteFile(dir_ / "host/gw/conf/new.xml", std::string(3 << 20, 'n'));
  testing::WriteFile(dir_ / "host/gw/extra/f1.xml", std::string(1 << 20, '1'));
  testing::WriteFile(dir_ / "host/gw/extra/f2.xml", "22");
  EXPECT_EQ(ScanAndCompare("new files").bytes_hashed, (4u << 20) + 2);
  // Read while the tree is alive, as after a SIGKILL.
  auto index = HashIndex::Load(dir_ / "state/source/index");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->size(), 6u);
  // A pre-stage refresh's few bytes are not worth a save of their own.
  testing::WriteFile(dir_ / "host/gw/conf/newer.xml", "newer");
  ASSERT_TRUE(tree_->Refresh().ok());
  ScanAndCompare("a refresh");
  index = HashIndex::Load(dir_ / "state/source/index");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->size(), 6u);
  // The index vouches only for files last written 2 s before a scan; a
  // restart re-hashes only the small file.
  absl::SleepFor(absl::Milliseconds(2100));
  auto restarted = SourceTree(config_, nullptr).StableScan(absl::Seconds(5));
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_EQ(restarted->bytes_hashed, 5u);
  EXPECT_EQ(restarted->index_hits, 6u);
}

TEST_F(SourceTreeTest, WithoutAWatcherEveryScanIsAWholeWalkAndSavesTheIndex) {
  {
    SourceTree tree(config_, nullptr);
    auto scan = tree.StableScan(absl::Seconds(5));
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_EQ(
        testing::Diff(testing::Snapshot(dir_ / "host", roots_), scan->manifest),
        "");
    testing::WriteFile(dir_ / "host/gw/conf/a.xml", "edited");
    scan = tree.StableScan(absl::Seconds(5));
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_EQ(scan->objects_read, scan->manifest.size());
    EXPECT_EQ(scan->manifest.Find("gw/conf/a.xml")->size(), 6u);
  }
  auto index = HashIndex::Load(dir_ / "state/source/index");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->size(), 3u);
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Issue 18: readdir's errors were never checked, so an EIO part-way
// through a directory gave a short listing, which a push mirrors as
// deletions. A listing that fails fails the scan, naming the directory.
TEST_F(SourceTreeTest, AListingThatFailsPartWayFailsTheScanByName) {
  testing::FaultInjectionEnv env(dir_ / "host", dir_ / "attic");
  SourceTree tree(config_, nullptr, {}, &env);
  ASSERT_TRUE(tree.StableScan(absl::Seconds(5)).ok());
  env.FailNext("readdir", "gw/conf", EIO);
  auto scan = tree.StableScan(absl::Seconds(5));
  ASSERT_FALSE(scan.ok()) << "a short listing must never pass for the tree";
  EXPECT_TRUE(absl::StrContains(scan.status().message(), "gw/conf"))
      << scan.status();
  EXPECT_TRUE(absl::StrContains(scan.status().message(), "Input/output error"))
      << scan.status();
  // Once the disk answers again, the scan is whole.
  EXPECT_EQ(testing::Diff(testing::Snapshot(dir_ / "host", roots_),
                          tree.StableScan(absl::Seconds(5))->manifest),
            "");
}

// The source's stat index, saved with a power cut at each of its steps: at
// the next start the scan equals the tree, whatever the cut left of the
// index (the old one, the new one, or none: a cache, rebuilt).
TEST_F(SourceTreeTest, APowerCutWhileTheIndexIsSavedNeverMisleadsTheNextScan) {
  int steps = 0;
  {
    testing::FaultInjectionEnv env(dir_.path(), dir_ / "attic");
    SourceTree tree(config_, nullptr, {}, &env);
    ASSERT_TRUE(tree.StableScan(absl::Seconds(5)).ok());
    testing::WriteFile(dir_ / "host/gw/conf/a.xml", "a changed");
    int before = env.mutations();
    ASSERT_TRUE(tree.StableScan(absl::Seconds(5)).ok());
    steps = env.mutations() - before;
  }
  ASSERT_GT(steps, 0);
  for (int cut = 1; cut <= steps; ++cut) {
    testing::WriteFile(dir_ / "host/gw/conf/sub/b.xml", absl::StrCat("v", cut));
    testing::FaultInjectionEnv env(dir_.path(), dir_ / "attic");
    {
      SourceTree tree(config_, nullptr, {}, &env);
      env.CutPowerAt(cut);
      (void)tree.StableScan(absl::Seconds(5));
    }
    env.PowerCut();
    SourceTree rebooted(config_, nullptr);
    auto scan = rebooted.StableScan(absl::Seconds(5));
    ASSERT_TRUE(scan.ok()) << "cut at " << cut << ": " << scan.status();
    EXPECT_EQ(
        testing::Diff(testing::Snapshot(dir_ / "host", roots_), scan->manifest),
        "")
        << "cut at " << cut;
  }
  std::printf("index save: %d cut points\n", steps);
}

}  // namespace
}  // namespace gwmirror
