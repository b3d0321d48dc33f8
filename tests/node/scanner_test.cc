#include "node/scanner.h"

#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
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
  testing::WriteFile(dir / "gw/groups/group-2/instance-1/conf/service.xml", "s");
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
  EXPECT_EQ(scan->manifest.entries()[0].path(), "etc/init.d/vshell-Group-Gateway1");
}

TEST(ScannerTest, MissingRootIsEmpty) {
  testing::TempDir dir;
  gwmirror::v1::RootConfig root;
  root.set_path("nope");
  auto scan = ScanMirrorSet(dir.path(), Roots({root}));
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->manifest.size(), 0u);
}

}  // namespace
}  // namespace gwmirror
