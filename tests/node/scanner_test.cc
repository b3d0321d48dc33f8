#include "node/scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fd.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> Roots(
    std::vector<gwmirror::v1::RootConfig> v) {
  google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> r;
  for (auto& x : v) *r.Add() = x;
  return r;
}

TEST(ScannerTest, SkipsFifosWithoutOpeningThemAndKeepsLinksAsLinks) {
  testing::TempDir dir;
  testing::WriteFile(dir / "r/f", "x");
  ASSERT_EQ(mkfifo((dir / "r/pipe").c_str(), 0644), 0);
  ASSERT_EQ(symlink("/etc/passwd", (dir / "r/l").c_str()), 0);
  gwmirror::v1::RootConfig root;
  root.set_path("r");
  auto scan = ScanMirrorSet(dir.path(), Roots({root}));  // Must not hang.
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->manifest.size(), 2u);
  ASSERT_EQ(scan->warnings.size(), 1u);
  EXPECT_NE(scan->warnings[0].find("r/pipe"), std::string::npos);
  const Entry* l = scan->manifest.Find("r/l");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->type(), gwmirror::v1::ENTRY_TYPE_SYMLINK);
  EXPECT_EQ(l->link_target(), "/etc/passwd");
}

// Regression: "groups/certs/private/temp" was not excluded when the root was
// apigateway/groups (the glob was matched only against root-relative paths).
TEST(ScannerTest, DefaultExcludesApplyWhateverTheRoot) {
  testing::TempDir dir;
  testing::WriteFile(dir / "gw/groups/certs/private/temp/t", "x");
  testing::WriteFile(dir / "gw/groups/certs/private/key.pem", "k");
  testing::WriteFile(dir / "gw/groups/group-2/instance-1/logs/a.log", "x");
  testing::WriteFile(dir / "gw/groups/group-2/instance-1/Gateway1.pid", "1");
  testing::WriteFile(dir / "gw/groups/group-2/instance-1/conf/opsdb.d/o", "x");
  testing::WriteFile(dir / "gw/groups/group-2/instance-1/conf/service.xml",
                     "s");
  gwmirror::v1::RootConfig root;
  root.set_path("gw/groups");
  auto scan = ScanMirrorSet(dir.path(), Roots({root}));
  ASSERT_TRUE(scan.ok());
  std::vector<std::string> files;
  for (const Entry& e : scan->manifest.entries()) {
    if (e.type() == gwmirror::v1::ENTRY_TYPE_FILE) files.push_back(e.path());
  }
  EXPECT_EQ(files, (std::vector<std::string>{
                       "gw/groups/certs/private/key.pem",
                       "gw/groups/group-2/instance-1/conf/service.xml"}));
}

TEST(ScannerTest, IncludeGlobsSelectFilesAndExcludesWin) {
  testing::TempDir dir;
  testing::WriteFile(dir / "etc/init.d/vshell-Group-Gateway1", "x");
  testing::WriteFile(dir / "etc/init.d/cron", "x");
  testing::WriteFile(dir / "etc/init.d/vshell-old.lock", "x");
  gwmirror::v1::RootConfig root;
  root.set_path("etc/init.d");
  root.add_include("vshell-*");
  auto scan = ScanMirrorSet(dir.path(), Roots({root}));
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->manifest.size(), 1u);
  EXPECT_EQ(scan->manifest.entries()[0].path(),
            "etc/init.d/vshell-Group-Gateway1");
}

TEST(ScannerTest, MissingRootIsEmpty) {
  testing::TempDir dir;
  gwmirror::v1::RootConfig root;
  root.set_path("nope");
  auto scan = ScanMirrorSet(dir.path(), Roots({root}));
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->manifest.size(), 0u);
}

// Large files whose stamps have settled are left pending (no digest, the
// descriptor held, by path) while held descriptors last; one of 64 MiB or
// more written within the last clock tick is waited for, then left pending
// too. A small file, or one past the last held descriptor, is hashed as
// before. Only under Digests::kMayBePending.
TEST(ScannerTest, SettledLargeFilesAreLeftPendingWhileDescriptorsLast) {
  testing::TempDir dir;
  gwmirror::v1::RootConfig root;
  root.set_path("r");
  testing::WriteFile(dir / "r/a-settled", std::string(4096, 'a'));
  testing::WriteFile(dir / "r/c-over", std::string(4096, 'c'));
  testing::WriteFile(dir / "r/small", "s");
  absl::SleepFor(absl::Milliseconds(50));
  // 64 MiB, sparse: it is never read here.
  testing::WriteFile(dir / "r/b-fresh", "");
  ASSERT_EQ(truncate((dir / "r/b-fresh").c_str(), 64 << 20), 0);
  auto scan = ScanMirrorSet(dir.path(), Roots({root}), nullptr,
                            /*hold_fds=*/2, Env::Default(),
                            /*pending_from=*/1024);
  ASSERT_TRUE(scan.ok()) << scan.status();
  // The walk is in path order: a and b take the two descriptors.
  for (const char* pending : {"r/a-settled", "r/b-fresh"}) {
    SCOPED_TRACE(pending);
    EXPECT_EQ(scan->manifest.Find(pending)->sha256(), "");
    ASSERT_TRUE(scan->pending.contains(pending));
    EXPECT_TRUE(scan->pending.at(pending).settled.has_value());
  }
  EXPECT_EQ(scan->manifest.Find("r/b-fresh")->size(), 64u << 20);
  EXPECT_EQ(scan->pending.size(), 2u);
  for (const char* hashed : {"r/c-over", "r/small"}) {
    SCOPED_TRACE(hashed);
    EXPECT_EQ(scan->manifest.Find(hashed)->sha256().size(), 32u);
  }
  EXPECT_EQ(scan->bytes_hashed, 4096u + 1);
  // Such entries pass only where a pending digest is allowed.
  const Entry& pending = *scan->manifest.Find("r/a-settled");
  EXPECT_FALSE(ValidateEntry(pending).ok());
  EXPECT_TRUE(ValidateEntry(pending, Digests::kMayBePending).ok());
  // Without pending_from, everything is hashed.
  auto plain = ScanMirrorSet(dir.path(), Roots({root}), nullptr, 2);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->pending.empty());
  EXPECT_EQ(plain->manifest.Find("r/a-settled")->sha256().size(), 32u);
}

// A large file written again while the scan waits out its clock tick is
// not left pending on the stamp it had before: it is read and hashed as it
// is after the write.
TEST(ScannerTest, ALargeFileWrittenDuringTheWaitOutIsHashed) {
  testing::TempDir dir;
  for (const char* d : {"w", "attic"}) {
    ASSERT_EQ(mkdir((dir / d).c_str(), 0700), 0);
  }
  testing::FaultInjectionEnv env(dir / "w", dir / "attic");
  gwmirror::v1::RootConfig root;
  root.set_path("r");
  const std::string path = dir / "w/r/dump";
  // 64 MiB (the size waited out), sparse, written just now.
  testing::WriteFile(path, "");
  ASSERT_EQ(truncate(path.c_str(), 64 << 20), 0);
  // The scan's second look at it (its second fstat: one after it opens
  // the file, one after the wait), finds a write.
  env.BeforeFstat("/r/dump", 2, [&] {
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    ASSERT_EQ(write(fd.get(), "tail", 4), 4);
  });
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), nullptr, 0), 0);
  auto scan = ScanMirrorSet(dir / "w", Roots({root}), nullptr,
                            /*hold_fds=*/1, &env, /*pending_from=*/1024);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_FALSE(scan->pending.contains("r/dump"));
  const Entry* e = scan->manifest.Find("r/dump");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->size(), (64u << 20) + 4);
  EXPECT_EQ(e->sha256(),
            DigestBytes(Sha256Of(std::string(64 << 20, '\0') + "tail")));
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Sets every object's times 10 s back, as if the tree had been quiet.
void Age(const std::string& path) {
  struct timespec t[2];
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= 10;
  t[1] = t[0];
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0)
      << path;
}

class StableScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(dir_ / "r/a", "a");
    testing::WriteFile(dir_ / "r/d/b", "b");
    root_.set_path("r");
    // Times only; ctime still says "now", so wait out the margin.
    for (const char* p : {"r/a", "r/d/b", "r/d", "r"}) Age(dir_ / p);
    usleep(30000);
  }
  absl::StatusOr<ScanResult> Scan(int64_t* start) {
    *start = FileClockNs();
    return ScanMirrorSet(dir_.path(), Roots({root_}));
  }
  testing::TempDir dir_;
  gwmirror::v1::RootConfig root_;
};

TEST_F(StableScanTest, QuietTreeIsStable) {
  int64_t start;
  auto scan = Scan(&start);
  ASSERT_TRUE(scan.ok());
  EXPECT_TRUE(VerifyScanStable(dir_.path(), scan->stamps, start).ok());
}

TEST_F(StableScanTest, FileRewrittenAfterTheScanIsNamed) {
  int64_t start;
  auto scan = Scan(&start);
  ASSERT_TRUE(scan.ok());
  testing::WriteFile(dir_ / "r/d/b", "B");
  absl::Status st = VerifyScanStable(dir_.path(), scan->stamps, start);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_NE(st.message().find("r/d/b"), std::string::npos) << st;
}

TEST_F(StableScanTest, FileCreatedAfterTheScanChangesItsDirectory) {
  int64_t start;
  auto scan = Scan(&start);
  ASSERT_TRUE(scan.ok());
  testing::WriteFile(dir_ / "r/d/new", "n");
  absl::Status st = VerifyScanStable(dir_.path(), scan->stamps, start);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_NE(st.message().find("r/d changed"), std::string::npos) << st;
}

TEST_F(StableScanTest, DeletionInARootIsSeen) {
  int64_t start;
  auto scan = Scan(&start);
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(unlink((dir_ / "r/a").c_str()), 0);
  EXPECT_EQ(VerifyScanStable(dir_.path(), scan->stamps, start).code(),
            absl::StatusCode::kAborted);
}

// A write in the same timestamp tick as the previous one would not move
// the times: an object changed just before the scan cannot be vouched for.
TEST_F(StableScanTest, ObjectChangedJustBeforeTheScanIsNotTrusted) {
  testing::WriteFile(dir_ / "r/a", "fresh");
  int64_t start;
  auto scan = Scan(&start);
  ASSERT_TRUE(scan.ok());
  absl::Status st = VerifyScanStable(dir_.path(), scan->stamps, start);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_NE(st.message().find("just before"), std::string::npos) << st;
}

}  // namespace
}  // namespace gwmirror
