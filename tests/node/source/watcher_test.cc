// The source's inotify watcher: changes in the mirror set are seen, new
// directories are followed, excluded paths are not, staging clears.
#include "node/source/watcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "gtest/gtest.h"
#include "node/source/prestager.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class WatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(dir_ / "host/gw/conf/a.xml", "a");
    testing::WriteFile(dir_ / "host/gw/logs/gw.log", "log");
    config_.set_slot("gw1");
    config_.set_host_root(dir_ / "host");
    config_.add_roots()->set_path("gw");
    ChangeWatcher::Options o;
    o.on_change = [this] { ++calls_; };
    watcher_ = std::make_unique<ChangeWatcher>(config_, o);
    ASSERT_TRUE(watcher_->Start().ok());
  }

  // Waits up to 2 s for the watcher to see something pending.
  bool SeesChange() {
    for (int i = 0; i < 200; ++i) {
      if (watcher_->PendingSince() != absl::InfinitePast()) return true;
      usleep(10000);
    }
    return false;
  }
  // Gives the watcher 200 ms to (wrongly) see something.
  bool StaysQuiet() {
    usleep(200000);
    return watcher_->PendingSince() == absl::InfinitePast();
  }

  testing::TempDir dir_;
  gwmirror::v1::NodeConfig config_;
  std::atomic<int> calls_{0};
  std::unique_ptr<ChangeWatcher> watcher_;
};

TEST_F(WatcherTest, SeesAChangeAndClearsWhenStaged) {
  EXPECT_TRUE(StaysQuiet());
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "b");
  ASSERT_TRUE(SeesChange());
  usleep(50000);         // Every event of that write has arrived.
  EXPECT_EQ(calls_, 1);  // Once per quiet-to-changed, not per event.
  watcher_->Staged(absl::Now() + absl::Milliseconds(1));
  EXPECT_EQ(watcher_->PendingSince(), absl::InfinitePast());
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "c");
  ASSERT_TRUE(SeesChange());
  // The watcher marks the change pending, then calls on_change: wait for
  // the call (bounded) instead of racing it.
  for (int i = 0; i < 200 && calls_ < 2; ++i) usleep(10000);
  usleep(50000);
  EXPECT_EQ(calls_, 2);
}

TEST_F(WatcherTest, AChangeAfterTheScanBeganStaysPending) {
  absl::Time scan_start = absl::Now();
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "late");
  ASSERT_TRUE(SeesChange());
  watcher_->Staged(scan_start);
  EXPECT_NE(watcher_->PendingSince(), absl::InfinitePast());
}

// Regression: a large file's first event (its creation) says 0 bytes, so
// while its writer was still busy the burst looked small and over, the
// coordinator cut at once, and the cut sent the file whole instead of
// waiting for pre-streaming. A file open for writing keeps the burst going.
TEST_F(WatcherTest, AFileStillBeingWrittenKeepsTheBurstGoing) {
  const std::string path = dir_ / "host/gw/conf/big.xml";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SeesChange());
  ChangeWatcher::Pending p = watcher_->Snapshot();
  EXPECT_EQ(p.writing, 1u);
  usleep(50000);  // Quiet for longer than a small burst needs...
  EXPECT_FALSE(Prestager::SmallAndOver(watcher_->Snapshot(), absl::Now()));
  ASSERT_EQ(write(fd, "x", 1), 1);
  ASSERT_EQ(close(fd), 0);
  for (int i = 0; i < 200 && watcher_->Snapshot().writing > 0; ++i) {
    usleep(10000);
  }
  EXPECT_EQ(watcher_->Snapshot().writing, 0u);
  usleep(50000);  // ...and once it is closed, it is over.
  EXPECT_TRUE(Prestager::SmallAndOver(watcher_->Snapshot(), absl::Now()));
}

TEST_F(WatcherTest, ExcludedPathsAreIgnored) {
  testing::WriteFile(dir_ / "host/gw/logs/gw.log", "more log");
  testing::WriteFile(dir_ / "host/gw/conf/instance.pid", "123");
  EXPECT_TRUE(StaysQuiet());
}

TEST_F(WatcherTest, NewDirectoriesAreFollowed) {
  ASSERT_EQ(mkdir((dir_ / "host/gw/conf/new").c_str(), 0755), 0);
  ASSERT_TRUE(SeesChange());
  watcher_->Staged(absl::Now() + absl::Milliseconds(1));
  usleep(50000);
  watcher_->Staged(absl::Now() + absl::Milliseconds(1));
  testing::WriteFile(dir_ / "host/gw/conf/new/deep.xml", "d");
  EXPECT_TRUE(SeesChange());
}

// Regression: a burst was judged small by its path count alone, so one
// big file went with the cut instead of being pre-streamed. Its bytes count
// too, and a burst is small only once it is over.
TEST_F(WatcherTest, ABurstIsSmallOnlyByCountAndBytesAndOnceItIsOver) {
  testing::WriteFile(dir_ / "host/gw/conf/a.xml", "small");
  ASSERT_TRUE(SeesChange());
  usleep(50000);
  ChangeWatcher::Pending p = watcher_->Snapshot();
  EXPECT_LE(p.changed_paths, Prestager::kSmallBurst);
  EXPECT_LT(p.changed_bytes, Prestager::kSmallBytes);
  EXPECT_TRUE(Prestager::SmallAndOver(p, absl::Now()));
  EXPECT_FALSE(Prestager::SmallAndOver(p, p.last_change));  // Not over yet.

  watcher_->Staged(absl::Now() + absl::Milliseconds(1));
  EXPECT_EQ(watcher_->Snapshot().changed_paths, 0u);
  testing::WriteFile(dir_ / "host/gw/conf/big.jar", std::string(2 << 20, 'j'));
  ASSERT_TRUE(SeesChange());
  usleep(50000);
  p = watcher_->Snapshot();
  EXPECT_GE(p.changed_bytes, 2u << 20);
  EXPECT_FALSE(Prestager::SmallAndOver(p, absl::Now()));
}

// A small burst is told over at once (the node then heartbeats, and the
// coordinator cuts without waiting for a pre-stage round), also while a cut
// holds the source's push slot and after a round gave way to it. Before,
// a round that gave way set the pause meant for failures (2 s) and the
// bursts in it went untold: each waited for the next heartbeat, about
// 0.5 s a change across 40 ms in the latency bench.
TEST_F(WatcherTest, ASmallBurstIsToldOverAtOnceEvenWhileACutHoldsTheSlot) {
  config_.set_state_dir(dir_ / "state");
  auto epoch = EpochFile::Open(dir_ / "epoch", "test", EpochAuthority{});
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  SourceTree tree(config_, watcher_.get(), {});
  std::atomic<int> told{0};
  Prestager prestager(config_, &tree, watcher_.get(), epoch->get(), nullptr,
                      [&told] { ++told; });
  prestager.SetTarget("127.0.0.1:1", "replica");
  prestager.Start();
  Prestager::CutGuard cut(&prestager);  // A cut runs throughout.
  for (int i = 0; i < 3; ++i) {
    const int before = told.load();
    const absl::Time seen = watcher_->Snapshot().last_change;
    testing::WriteFile(dir_ / "host/gw/conf/a.xml", std::string(i + 2, 'x'));
    // This change, not the one before it (never staged: the cut holds the
    // slot). Poked before the watcher had it, the pre-stager saw the old
    // change only, and this one waited for the next second (a flake
    // under load).
    for (int w = 0; w < 200 && watcher_->Snapshot().last_change == seen; ++w) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_NE(watcher_->Snapshot().last_change, seen);
    const absl::Time changed = absl::Now();
    prestager.Poke();  // As the node does on a change.
    while (told.load() == before && absl::Now() - changed < absl::Seconds(3)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_LT(absl::Now() - changed, absl::Milliseconds(500))
        << "change " << i << " told after "
        << absl::FormatDuration(absl::Now() - changed);
    // Past the settle time: a round is tried and gives way to the cut.
    absl::SleepFor(absl::Milliseconds(400));
  }
}

}  // namespace
}  // namespace gwmirror
