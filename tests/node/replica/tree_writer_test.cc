// TreeWriter keeps the last directory it walked to open; whatever replaces
// that directory (this writer or someone else) must never receive a file
// meant for the path.
#include "node/replica/tree_writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class TreeWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = TreeWriter::Open(dir_ / "host", {"root"});
    ASSERT_TRUE(w.ok()) << w.status();
    writer_ = std::make_unique<TreeWriter>(*std::move(w));
    testing::WriteFile(dir_ / "staged", "content\n");
  }
  absl::Status Place(const std::string& path) {
    return writer_->PlaceFile(path, dir_ / "staged", /*link=*/false);
  }
  std::string Host(const std::string& rel) { return dir_ / ("host/" + rel); }

  testing::TempDir dir_;
  std::unique_ptr<TreeWriter> writer_;
};

TEST_F(TreeWriterTest,
       FilesOfOneDirectoryLandThereAndReplacedDirectoriesAreWalkedAgain) {
  ASSERT_TRUE(writer_->EnsureDirectory("root/a").ok());
  ASSERT_TRUE(writer_->EnsureDirectory("root/a/b").ok());
  ASSERT_TRUE(Place("root/a/b/x").ok());
  ASSERT_TRUE(Place("root/a/b/y").ok());
  EXPECT_EQ(testing::ReadFile(Host("root/a/b/y")), "content\n");

  // This writer removes and recreates the directory.
  ASSERT_TRUE(writer_->Remove("root/a/b").ok());
  ASSERT_TRUE(writer_->EnsureDirectory("root/a/b").ok());
  ASSERT_TRUE(Place("root/a/b/z").ok());
  EXPECT_EQ(testing::ReadFile(Host("root/a/b/z")), "content\n");
  EXPECT_NE(access(Host("root/a/b/x").c_str(), F_OK), 0);

  // Someone else does.
  ASSERT_TRUE(Place("root/a/b/w").ok());
  ASSERT_TRUE(RemoveTree(Host("root/a/b")).ok());
  ASSERT_EQ(mkdir(Host("root/a/b").c_str(), 0755), 0);
  ASSERT_TRUE(Place("root/a/b/v").ok());
  EXPECT_EQ(testing::ReadFile(Host("root/a/b/v")), "content\n");

  // Or plants a symlink where the directory was: refused, never followed.
  ASSERT_TRUE(Place("root/a/b/u").ok());
  ASSERT_TRUE(RemoveTree(Host("root/a/b")).ok());
  ASSERT_EQ(mkdir((dir_ / "outside").c_str(), 0755), 0);
  ASSERT_EQ(symlink((dir_ / "outside").c_str(), Host("root/a/b").c_str()), 0);
  absl::Status st = Place("root/a/b/t");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(access((dir_ / "outside/t").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace gwmirror
