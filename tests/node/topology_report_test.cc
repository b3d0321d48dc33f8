#include "node/topology_report.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "node/sample/generator.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// A sample installation under `dir`/host; returns its apigateway folder.
std::string Sample(const testing::TempDir& dir) {
  SampleOptions o;
  o.prefix = "opt/Axway-7.7";
  EXPECT_TRUE(GenerateSample(dir / "host", o).ok());
  return dir / "host/opt/Axway-7.7/apigateway";
}

// Regression: an encrypted topology.json made the report's problem text
// invalid UTF-8, so no heartbeat or cut result carrying it could be
// serialized ("No message returned for unary request") and a released
// cut failed for a reason nobody could read.
TEST(TopologyReportTest, GarbageFilesStillGiveAReportThatSerializes) {
  testing::TempDir dir;
  const std::string gw = Sample(dir);
  const std::string garbage = "\x88\x96{\"id\": \"\xff\xfe\"}\n\xc3";
  testing::WriteFile(gw + "/groups/topology.json", garbage);
  testing::WriteFile(gw + "/system/lib/version.properties",
                     "product.version=7.7\xff\n");
  testing::WriteFile(gw + "/groups/group-2/instance-\xff/conf/x", "x");
  TopologySource src;
  src.host_root = dir / "host";
  src.host_name = "gw1\xfe.example.com";
  gwmirror::v1::TopologyReport r = ReadTopologyReport(src, "production", "gw1");
  std::string bytes;
  ASSERT_TRUE(r.SerializeToString(&bytes));
  gwmirror::v1::TopologyReport back;
  ASSERT_TRUE(back.ParseFromString(bytes));
  ASSERT_FALSE(back.problems().empty());
  EXPECT_TRUE(absl::StrContains(back.problems(0), "topology.json"))
      << back.problems(0);
  EXPECT_EQ(back.installed_version(), "7.7\\xff");
  EXPECT_EQ(back.host_name(), "gw1\\xfe.example.com");
  bool escaped = false;
  for (const auto& i : back.instances_on_disk()) {
    escaped |= i == "group-2/instance-\\xff";
  }
  EXPECT_TRUE(escaped);
}

// The parsed topology and deployments are remembered by their text (they
// are read at every cut and heartbeat): an edit of either is seen at the
// next read, and going back to the earlier text too.
TEST(TopologyReportTest, AChangedTopologyOrDeploymentIsReadAgain) {
  testing::TempDir dir;
  const std::string gw = Sample(dir);
  TopologySource src;
  src.host_root = dir / "host";
  const auto first = ReadTopologyReport(src, "production", "gw1");
  ASSERT_TRUE(first.problems().empty()) << first.ShortDebugString();
  const std::string topology = testing::ReadFile(gw + "/groups/topology.json");
  const std::string deployments =
      testing::ReadFile(gw + "/groups/deployments.json");
  EXPECT_EQ(ReadTopologyReport(src, "production", "gw1").ShortDebugString(),
            first.ShortDebugString());
  testing::WriteFile(gw + "/groups/topology.json", "{\"id\": ");
  testing::WriteFile(gw + "/groups/deployments.json",
                     "{\"serviceDeployments\": {\"inst-x\": "
                     "[{\"archiveID\": \"a1\"}]}}");
  const auto edited = ReadTopologyReport(src, "production", "gw1");
  ASSERT_FALSE(edited.problems().empty());
  EXPECT_TRUE(absl::StrContains(edited.problems(0), "topology.json"));
  EXPECT_NE(edited.deployments().find("inst-x"), edited.deployments().end())
      << edited.ShortDebugString();
  testing::WriteFile(gw + "/groups/topology.json", topology);
  testing::WriteFile(gw + "/groups/deployments.json", deployments);
  EXPECT_EQ(ReadTopologyReport(src, "production", "gw1").ShortDebugString(),
            first.ShortDebugString());
}

}  // namespace
}  // namespace gwmirror
