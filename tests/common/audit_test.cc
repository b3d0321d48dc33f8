// The audit log: appended durably, chained line to line, forwarded once.
#include "common/audit.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

gwmirror::v1::AuditRecord Act(const std::string& action) {
  gwmirror::v1::AuditRecord r;
  r.set_unix_ms(1700000000000);
  r.set_identity("operator");
  r.set_role("operator");
  r.set_action(action);
  r.set_outcome("ok");
  return r;
}

TEST(AuditTest, RecordsAreChainedAndAnEditedLineBreaksTheChain) {
  testing::TempDir dir;
  const std::string path = dir / "audit.log";
  {
    auto log = AuditLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    for (const char* a : {"Control.Pin", "Control.Promote"}) {
      ASSERT_TRUE((*log)->Append(Act(a)).ok());
    }
  }
  // Reopened, the chain goes on from the last line.
  auto log = AuditLog::Open(path);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->Append(Act("Control.Verify")).ok());
  auto list = (*log)->Read(10);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->chain_intact()) << list->chain_problem();
  ASSERT_EQ(list->records_size(), 3);
  EXPECT_EQ(list->records(0).action(), "Control.Verify") << "newest first";
  EXPECT_EQ(list->records(2).prev(), "");
  EXPECT_EQ((*log)->Read(1)->records_size(), 1);
  // Somebody edits the middle line.
  std::string text = testing::ReadFile(path);
  size_t at = text.find("Control.Promote");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 15, "Control.Release");
  testing::WriteFile(path, text, 0600);
  list = (*log)->Read(10);
  ASSERT_TRUE(list.ok());
  EXPECT_FALSE(list->chain_intact());
  EXPECT_TRUE(absl::StrContains(list->chain_problem(), "line 3"))
      << list->chain_problem();
  // A removed line too.
  text = testing::ReadFile(path);
  testing::WriteFile(path, text.substr(text.find('\n') + 1), 0600);
  EXPECT_FALSE((*log)->Read(10)->chain_intact());
}

TEST(AuditTest, UnsentRecordsAreForwardedOnceMarkedSent) {
  testing::TempDir dir;
  auto log = AuditLog::Open(dir / "audit.log");
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*log)->Append(Act(absl::StrCat("Replica.Export", i))).ok());
  }
  auto first = (*log)->Unsent(3);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->first.size(), 3u);
  EXPECT_EQ(first->first[0].action(), "Replica.Export0") << "oldest first";
  // Not delivered: the same again.
  EXPECT_EQ((*log)->Unsent(3)->first.size(), 3u);
  ASSERT_TRUE((*log)->MarkSent(first->second).ok());
  // A restart keeps the mark.
  log = AuditLog::Open(dir / "audit.log");
  auto rest = (*log)->Unsent(64);
  ASSERT_EQ(rest->first.size(), 2u);
  EXPECT_EQ(rest->first[0].action(), "Replica.Export3");
  ASSERT_TRUE((*log)->MarkSent(rest->second).ok());
  EXPECT_TRUE((*log)->Unsent(64)->first.empty());
}

}  // namespace
}  // namespace gwmirror
