// Point-in-time history on a running sandbox: checkpoints A, B, C with
// changes between them; A restored by drill, by export + tar and by import,
// exact to the byte, mode and owner, also after the checkpoints around it
// expired; verify naming a damaged standby file and a damaged increment,
// and repair bringing the file back.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/e2e/sandbox_fixture.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class HistoryE2eTest : public ClusterTest {
 protected:
  void SetUp() override { Up(1); }

  std::string State() const { return Standby(1) + "-state"; }

  // The tree of an archive extracted by GNU tar into an empty directory.
  Manifest Untar(const std::string& archive) {
    std::string dir = tmp_ / absl::StrCat("untar-", ++n_);
    EXPECT_EQ(mkdir(dir.c_str(), 0755), 0);
    RunResult r = testing::Run({"/bin/tar", "-C", dir, "-xf", archive});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    // GNU tar says nothing about the archive's global comment.
    EXPECT_EQ(r.err, "");
    return Tree(dir);
  }

  RunResult Export(uint64_t n, const std::string& out) {
    return Cli({"export", "--slot", "gw1", "--checkpoint", absl::StrCat(n),
                "-o", out});
  }

  gwmirror::v1::CheckpointList Retained() {
    gwmirror::v1::CheckpointList list;
    RunResult r = Cli({"checkpoints", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(ParseJson(r.out, "checkpoints", &list).ok()) << r.out;
    return list;
  }

  // Waits until the standby compacted every kept version (no .raw left but
  // the newest manifest's).
  void WaitCompacted() {
    for (int i = 0; i < 200; ++i) {
      auto names = ListDir(State() + "/replica/history/objects");
      int raw = 0;
      for (const auto& n : *names) raw += absl::EndsWith(n, ".raw");
      if (raw <= 1) return;
      usleep(50000);
    }
    ADD_FAILURE() << "history never compacted";
  }

  int n_ = 0;
};

TEST_F(HistoryE2eTest, OlderCheckpointRestoresExactlyByDrillExportAndImport) {
  const std::string props = Gw(Prod(1), "conf/envSettings.props");
  const std::string extra = Gw(Prod(1), "conf/history-a.props");
  testing::WriteFile(extra, "only in A\n", 0640);
  ASSERT_EQ(chown(extra.c_str(), 1234, 5678), 0);
  auto a = Checkpoint();
  ASSERT_TRUE(a.ok()) << a.status();
  const Manifest tree_a = Tree(Prod(1));
  // B and C change, delete and add files.
  testing::WriteFile(props, testing::ReadFile(props) + "env.B=1\n");
  ASSERT_EQ(unlink(extra.c_str()), 0);
  auto b = Checkpoint();
  ASSERT_TRUE(b.ok()) << b.status();
  testing::WriteFile(props, "replaced in C\n");
  testing::WriteFile(Gw(Prod(1), "conf/history-c.props"), "new in C\n");
  ASSERT_EQ(chmod(Gw(Prod(1), "conf/history-c.props").c_str(), 0600), 0);
  auto c = Checkpoint();
  ASSERT_TRUE(c.ok()) << c.status();
  WaitCompacted();

  // The retained list: A, B, C with what changed.
  gwmirror::v1::CheckpointList list = Retained();
  std::map<uint64_t, gwmirror::v1::CheckpointInfo> by_id;
  for (const auto& cp : list.checkpoints()) by_id[cp.id()] = cp;
  ASSERT_TRUE(by_id.count(*a) && by_id.count(*b) && by_id.count(*c))
      << ToJson(list);
  EXPECT_EQ(by_id[*b].removed(), 1u);
  EXPECT_EQ(by_id[*b].changed(), 1u);
  EXPECT_EQ(by_id[*c].added(), 1u);
  EXPECT_GT(by_id[*a].bytes_on_disk(), 0u);
  RunResult text = Cli({"checkpoints"});
  EXPECT_TRUE(absl::StrContains(text.out, "ON DISK")) << text.out;

  // A drill of A verifies every file.
  RunResult d = Cli({"drill", "--checkpoint", absl::StrCat(*a), "--json"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  gwmirror::v1::DrillReport drill;
  ASSERT_TRUE(ParseJson(d.out, "drill", &drill).ok());
  EXPECT_EQ(drill.checkpoint(), *a);
  EXPECT_EQ(drill.slots(0).entries(), tree_a.size());

  // Export of A, extracted by tar: A's tree, owners and modes included.
  const std::string tar = tmp_ / "a.tar";
  RunResult e = Export(*a, tar);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(testing::Diff(tree_a, Untar(tar)), "");
  // Compressed, and imported onto an empty host root.
  const std::string zst = tmp_ / "a.tar.zst";
  ASSERT_EQ(Export(*a, zst).exit_code, 0);
  const std::string cold = tmp_ / "cold-host";
  RunResult im = Cli({"import", "--file", zst, "--host-root", cold});
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(testing::Diff(tree_a, Tree(cold)), "");
  EXPECT_NE(access((cold + "/.gwmirror-import").c_str(), F_OK), 0);

  // A damaged archive is refused before anything is written.
  std::string bytes = testing::ReadFile(tar);
  size_t at = bytes.find("only in A");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'X';
  testing::WriteFile(tmp_ / "bad.tar", bytes);
  const std::string cold2 = tmp_ / "cold-2";
  im = Cli({"import", "--file", tmp_ / "bad.tar", "--host-root", cold2});
  EXPECT_NE(im.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(im.err, "does not match its manifest digest"))
      << im.err;
  EXPECT_EQ(*ListDir(cold2), std::vector<std::string>{});
  im = Cli({"import", "--file", tmp_ / "missing.tar", "--host-root", cold2});
  EXPECT_NE(im.exit_code, 0);

  // Pin A, keep only one other checkpoint: B and C expire around A, and A
  // still restores exactly.
  ASSERT_EQ(Cli({"pin", "--checkpoint", absl::StrCat(*a)}).exit_code, 0);
  const gwmirror::v1::SandboxProcess& sb = sb_.slots(0).standby();
  gwmirror::v1::NodeConfig nc;
  ASSERT_TRUE(ParseJson(testing::ReadFile(sb.config()), sb.config(), &nc).ok());
  nc.mutable_replica()->mutable_retention()->set_max_count(1);
  testing::WriteFile(sb.config(), ToJson(nc), 0600);
  Kill(sb);
  Restart(sb);
  WaitHealthy();
  testing::WriteFile(props, "D\n");
  ASSERT_TRUE(Checkpoint().ok());
  testing::WriteFile(props, "E\n");
  auto last = Checkpoint();
  ASSERT_TRUE(last.ok());
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100; ++i) {
    ids.clear();
    gwmirror::v1::CheckpointList list = Retained();
    for (const auto& cp : list.checkpoints()) ids.push_back(cp.id());
    if (ids.size() == 2) break;
    usleep(100000);
  }
  EXPECT_EQ(ids, (std::vector<uint64_t>{*last, *a}));
  ASSERT_EQ(Export(*a, tmp_ / "a2.tar").exit_code, 0);
  EXPECT_EQ(testing::Diff(tree_a, Untar(tmp_ / "a2.tar")), "");
  RunResult gone = Export(*b, tmp_ / "b.tar");
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(gone.err, "not retained")) << gone.err;
  EXPECT_NE(access((tmp_ / "b.tar").c_str(), F_OK), 0);
}

TEST_F(HistoryE2eTest, VerifyNamesDamageAndRepairFetchesFromTheSource) {
  const std::string props = Gw(Prod(1), "conf/envSettings.props");
  testing::WriteFile(Gw(Prod(1), "conf/other.props"), "other=1\n");
  std::string big;
  for (int i = 0; i < 3000; ++i) absl::StrAppend(&big, "env.K", i, "=v\n");
  testing::WriteFile(props, big);
  auto a = Checkpoint();
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string old_sha =
      HexOf(DigestBytes(Sha256Of(testing::ReadFile(props))));
  testing::WriteFile(props, big + "env.more=1\n");
  ASSERT_TRUE(Checkpoint().ok());
  WaitCompacted();
  RunResult r = Cli({"verify"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  const std::string object = State() + "/replica/history/objects/" + old_sha;
  testing::FlipByte(object, 60);
  // A standby file that is no increment's basis.
  const std::string standby_file = Gw(Standby(1), "conf/other.props");
  testing::FlipByte(standby_file, 3);
  r = Cli({"verify"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.out, "standby file opt/Axway-7.7/apigateway/conf/other.props differs"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "stored increment " + object)) << r.out;
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("conf/envSettings.props in checkpoint ", *a)))
      << r.out;
  // Repair brings the standby file from the source; the old version is
  // gone for good and said so.
  r = Cli({"verify", "--repair"});
  EXPECT_TRUE(absl::StrContains(r.out, "brought good copies")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "NOT REPAIRED")) << r.out;
  EXPECT_EQ(testing::ReadFile(standby_file), "other=1\n");
  RunResult drill = Cli({"drill", "--checkpoint", absl::StrCat(*a)});
  EXPECT_NE(drill.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(drill.err, "does not verify")) << drill.err;
  // The counts are in the standby node's metrics (issue 18).
  RunResult scrape = testing::Run(
      {"/usr/bin/python3", "-c",
       "import sys, urllib.request; "
       "print(urllib.request.urlopen(sys.argv[1]).read().decode())",
       sb_.slots(0).standby().metrics_url()});
  ASSERT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_TRUE(absl::StrContains(
      scrape.out, "gwmirror_replica_verify_problems{kind=\"tree\"} 1"))
      << scrape.out;
  EXPECT_FALSE(absl::StrContains(
      scrape.out, "gwmirror_replica_verify_problems{kind=\"history\"} 0"))
      << "the damaged increment is still counted: " << scrape.out;
  EXPECT_TRUE(absl::StrContains(
      scrape.out, "gwmirror_replica_repairs_total{kind=\"tree\"} 1"))
      << scrape.out;
}

}  // namespace
}  // namespace gwmirror
