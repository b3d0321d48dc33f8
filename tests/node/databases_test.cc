// Database jobs without a server: config validation, and the "command"
// kind end to end (atomic 0600 dump, unchanged dump left alone, failure
// keeps the previous dump, password only in a file, restore on stdin).
// The real servers are covered by tests/e2e/database_test.cc.
#include "node/databases.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class DatabasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.set_slot("db1");
    config_.set_host_root(dir_ / "host");
    config_.set_state_dir(dir_ / "state");
    config_.add_roots()->set_path("var/dumps");
  }
  gwmirror::v1::DatabaseJob* Job(const std::string& name) {
    auto* j = config_.add_databases();
    j->set_name(name);
    j->set_kind("command");
    j->set_file("var/dumps/" + name + ".out");
    return j;
  }
  testing::TempDir dir_;
  gwmirror::v1::NodeConfig config_;
};

TEST_F(DatabasesTest, ValidationNamesJobAndField) {
  auto* j = Job("a");
  auto st = ValidateDatabaseJobs(config_);
  EXPECT_TRUE(absl::StrContains(st.message(), "needs dump_command")) << st;
  j->add_dump_command("true");
  EXPECT_TRUE(ValidateDatabaseJobs(config_).ok());
  j->set_file("etc/outside.sql");
  st = ValidateDatabaseJobs(config_);
  EXPECT_TRUE(absl::StrContains(st.message(), "not inside a root")) << st;
  j->set_file("var/dumps/../x");
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateDatabaseJobs(config_)));
  j->set_file("var/dumps/a.out");
  j->set_kind("oracle");
  st = ValidateDatabaseJobs(config_);
  EXPECT_TRUE(absl::StrContains(st.message(), "kind \"oracle\"")) << st;
  j->set_kind("mariadb");
  j->set_socket("/run/mysqld.sock");
  j->set_database("metrics`; DROP");
  st = ValidateDatabaseJobs(config_);
  EXPECT_TRUE(absl::StrContains(st.message(), "database")) << st;
  j->set_database("metrics");
  j->set_password_file("/x");
  j->set_password_env("X");
  st = ValidateDatabaseJobs(config_);
  EXPECT_TRUE(absl::StrContains(st.message(), "choose one")) << st;
  j->clear_password_env();
  EXPECT_TRUE(ValidateDatabaseJobs(config_).ok());
  Job("a")->add_dump_command("true");
  st = ValidateDatabaseJobs(config_);
  EXPECT_TRUE(absl::StrContains(st.message(), "used twice")) << st;
}

TEST_F(DatabasesTest, CommandDumpIsAtomicPrivateAndStable) {
  testing::WriteFile(dir_ / "secret", "s3cret-pw\n", 0600);
  auto* j = Job("rows");
  j->set_password_file(dir_ / "secret");
  // The password reaches the tool only as a file.
  j->add_dump_command("/bin/sh");
  j->add_dump_command("-c");
  j->add_dump_command("cat \"$GWMIRROR_DUMP_PASSWORD_FILE\" | wc -c; cat " +
                      (dir_ / "rows.txt"));
  testing::WriteFile(dir_ / "rows.txt", "row 1\n");
  ASSERT_TRUE(ValidateDatabaseJobs(config_).ok());
  DatabaseJobs jobs(config_);
  ASSERT_TRUE(jobs.DumpDue(absl::Now()).ok());
  std::string out = dir_ / "host/var/dumps/rows.out";
  EXPECT_EQ(testing::ReadFile(out), "10\nrow 1\n");
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Same content: the file (and its inode and mtime) stays.
  ASSERT_TRUE(jobs.DumpDue(absl::Now()).ok());
  struct stat again;
  ASSERT_EQ(stat(out.c_str(), &again), 0);
  EXPECT_EQ(again.st_ino, st.st_ino);
  // The credentials file is gone after the run.
  auto run = ListDir(dir_ / "state/run");
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->empty());
  EXPECT_EQ(jobs.DumpFiles(), std::set<std::string>{"var/dumps/rows.out"});
  // A file changed behind the job's back is not taken for its last dump.
  testing::WriteFile(out, "tampered\n", 0600);
  ASSERT_TRUE(jobs.DumpDue(absl::Now()).ok());
  EXPECT_EQ(testing::ReadFile(out), "10\nrow 1\n");
}

TEST_F(DatabasesTest, FailedDumpKeepsThePreviousOneAndScrubsThePassword) {
  testing::WriteFile(dir_ / "secret", "s3cret-pw\n", 0600);
  auto* j = Job("rows");
  j->set_password_file(dir_ / "secret");
  j->add_dump_command("/bin/sh");
  j->add_dump_command("-c");
  j->add_dump_command(
      "echo partial; cat \"$GWMIRROR_DUMP_PASSWORD_FILE\" >&2; "
      "test -e " +
      (dir_ / "ok"));
  testing::WriteFile(dir_ / "ok", "");
  DatabaseJobs jobs(config_);
  ASSERT_TRUE(jobs.DumpDue(absl::Now()).ok());
  std::string out = dir_ / "host/var/dumps/rows.out";
  ASSERT_EQ(testing::ReadFile(out), "partial\n");
  unlink((dir_ / "ok").c_str());
  testing::WriteFile(out, "previous\n", 0600);
  absl::Status st = jobs.DumpDue(absl::Now());
  EXPECT_TRUE(absl::IsFailedPrecondition(st));
  EXPECT_TRUE(absl::StrContains(st.message(),
                                "dump job \"rows\" (command) failed: exit 1"))
      << st;
  EXPECT_FALSE(absl::StrContains(st.message(), "s3cret-pw")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "***")) << st;
  EXPECT_EQ(testing::ReadFile(out), "previous\n");
  EXPECT_NE(access((out + ".gwmirror-tmp").c_str(), F_OK), 0);
}

TEST_F(DatabasesTest, MinIntervalSkipsRecentDumps) {
  auto* j = Job("big");
  j->add_dump_command("/bin/sh");
  j->add_dump_command("-c");
  j->add_dump_command("date +%s%N");
  j->set_min_interval_ms(60'000);
  DatabaseJobs jobs(config_);
  absl::Time t = absl::Now();
  ASSERT_TRUE(jobs.DumpDue(t).ok());
  std::string first = testing::ReadFile(dir_ / "host/var/dumps/big.out");
  ASSERT_TRUE(jobs.DumpDue(t + absl::Seconds(30)).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/var/dumps/big.out"), first);
  ASSERT_TRUE(jobs.DumpDue(t + absl::Seconds(61)).ok());
  EXPECT_NE(testing::ReadFile(dir_ / "host/var/dumps/big.out"), first);
}

TEST_F(DatabasesTest, CommandRestoreReadsTheDumpOnStdin) {
  auto* j = Job("rows");
  j->add_dump_command("true");
  j->add_restore_command("/bin/sh");
  j->add_restore_command("-c");
  j->add_restore_command("cat > " + (dir_ / "restored") +
                         "; echo $GWMIRROR_RESTORE_DATABASE >> " +
                         (dir_ / "restored"));
  j->set_database("metrics");
  DatabaseJobs jobs(config_);
  std::vector<std::string> report;
  absl::Status st = jobs.Restore("rows", false, &report);
  EXPECT_TRUE(absl::StrContains(st.message(), "no dump at")) << st;
  testing::WriteFile(dir_ / "host/var/dumps/rows.out", "dumped\n");
  ASSERT_TRUE(jobs.Restore("", true, &report).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "restored"), "dumped\nmetrics_drill\n");
  ASSERT_EQ(report.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(report[0],
                               "rows (command) restored into "
                               "metrics_drill"))
      << report[0];
  EXPECT_TRUE(absl::IsNotFound(jobs.Restore("nope", false, &report)));
}

}  // namespace
}  // namespace gwmirror
