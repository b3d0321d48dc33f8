// Parity from real sample installations read by ReadTopologyReport.
#include "coordinator/parity.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "node/sample/generator.h"
#include "node/topology_report.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class ParityTest : public ::testing::Test {
 protected:
  // Generates host i of n for `site` and returns its report.
  gwmirror::v1::TopologyReport Host(
      const std::string& site, int i, int n,
      const std::string& version = "7.7.20221130") {
    std::string root = dir_ / absl::StrCat(site, "-gw", i);
    SampleOptions o;
    o.host_index = i;
    o.host_count = n;
    o.product_version = version;
    EXPECT_TRUE(GenerateSample(root, o).ok());
    TopologySource src;
    src.host_root = root;
    src.host_name = absl::StrCat("gw", i, ".example.com");
    return ReadTopologyReport(src, site, absl::StrCat("gw", i));
  }

  static std::string All(const ParityVerdict& v) {
    return absl::StrJoin(v.differences, "\n");
  }

  testing::TempDir dir_;
};

TEST_F(ParityTest, IdenticalSitesHaveParity) {
  std::vector<gwmirror::v1::TopologyReport> r;
  for (int i = 1; i <= 3; ++i) {
    r.push_back(Host("production", i, 3));
    r.push_back(Host("standby", i, 3));
  }
  EXPECT_EQ(r[0].topology().hosts_size(), 3);
  EXPECT_FALSE(r[0].instances_on_disk().empty());
  ParityVerdict v = ComputeParity(r, /*check_instances=*/true);
  EXPECT_TRUE(v.parity) << All(v);
}

// Reports pair by slot whatever order they come in, findings come in slot
// order, and of two reports of one slot and site the last one counts.
TEST_F(ParityTest, ReportsPairBySlotInAnyOrderAndTheLastOfASiteCounts) {
  std::vector<gwmirror::v1::TopologyReport> prod, standby;
  for (int i = 1; i <= 3; ++i) {
    prod.push_back(Host("production", i, 3));
    standby.push_back(Host("standby", i, 3));
  }
  auto older = [](gwmirror::v1::TopologyReport r) {
    r.set_installed_version("7.7.20220530");
    return r;
  };
  const std::vector<gwmirror::v1::TopologyReport> r = {
      older(standby[2]), older(standby[1]), prod[2],   prod[1],
      prod[0],           older(standby[0]), standby[1]};
  ParityVerdict v = ComputeParity(r, /*check_instances=*/false);
  EXPECT_EQ(All(v),
            "standby gw1 has 7.7.20220530 installed, production gw1 has "
            "7.7.20221130\n"
            "standby gw3 has 7.7.20220530 installed, production gw3 has "
            "7.7.20221130");
}

TEST_F(ParityTest, HostWithoutStandbyNodeIsNamed) {
  std::vector<gwmirror::v1::TopologyReport> r;
  for (int i = 1; i <= 3; ++i) r.push_back(Host("production", i, 3));
  for (int i = 1; i <= 2; ++i) r.push_back(Host("standby", i, 3));
  ParityVerdict v = ComputeParity(r, false);
  EXPECT_FALSE(v.parity);
  EXPECT_NE(All(v).find("production topology has host-3 (gw3.example.com, "
                        "0 gateway instances) but no standby node serves it"),
            std::string::npos)
      << All(v);
  EXPECT_NE(All(v).find("slot gw3 has a production node but no standby node"),
            std::string::npos)
      << All(v);
}

TEST_F(ParityTest, InstalledVersionDifferenceIsNamed) {
  std::vector<gwmirror::v1::TopologyReport> r = {
      Host("production", 1, 2), Host("production", 2, 2), Host("standby", 1, 2),
      Host("standby", 2, 2, "7.7.20220530")};
  ParityVerdict v = ComputeParity(r, false);
  EXPECT_FALSE(v.parity);
  ASSERT_EQ(v.by_slot["gw2"].size(), 1u) << All(v);
  EXPECT_EQ(v.by_slot["gw2"][0],
            "standby gw2 has 7.7.20220530 installed, production gw2 has "
            "7.7.20221130");
}

TEST_F(ParityTest, DisagreeingProductionTopologyVersionsAreNamed) {
  std::vector<gwmirror::v1::TopologyReport> r = {
      Host("production", 1, 2), Host("production", 2, 2), Host("standby", 1, 2),
      Host("standby", 2, 2)};
  r[1].mutable_topology()->set_version(3);
  ParityVerdict v = ComputeParity(r, false);
  EXPECT_FALSE(v.parity);
  EXPECT_NE(All(v).find("production nodes disagree on the topology version: "
                        "gw1 at version 2; gw2 at version 3"),
            std::string::npos)
      << All(v);
}

TEST_F(ParityTest, MissingInstanceOnStandbyAfterApplyIsNamed) {
  std::vector<gwmirror::v1::TopologyReport> r = {Host("production", 1, 1),
                                                 Host("standby", 1, 1)};
  ASSERT_TRUE(ComputeParity(r, true).parity);
  r[1].mutable_instances_on_disk()->RemoveLast();
  ParityVerdict v = ComputeParity(r, true);
  EXPECT_FALSE(v.parity);
  EXPECT_NE(All(v).find("standby gw1 lacks group-2/instance-2 (QuickStart "
                        "Group/Gateway2) that host-1 runs in the topology"),
            std::string::npos)
      << All(v);
  EXPECT_TRUE(ComputeParity(r, false).parity) << "not checked before apply";
}

TEST_F(ParityTest, MissingFilesAreProblemsNotCrashes) {
  TopologySource src;
  src.host_root = dir_ / "empty";
  src.host_name = "gw1.example.com";
  auto report = ReadTopologyReport(src, "standby", "gw1");
  EXPECT_FALSE(report.has_topology());
  EXPECT_EQ(report.problems_size(), 2);
  ParityVerdict v = ComputeParity({Host("production", 1, 1), report}, false);
  EXPECT_FALSE(v.parity);
  EXPECT_NE(All(v).find("standby gw1: no readable topology"), std::string::npos)
      << All(v);
  EXPECT_FALSE(ParseTopology("{not json").ok());
}

}  // namespace
}  // namespace gwmirror
