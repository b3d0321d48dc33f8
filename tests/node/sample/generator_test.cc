#include "node/sample/generator.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// The sample's init scripts run anywhere: they find their host root from
// their own path and record each start, stop and status, in order, in
// <host root>/var/log/vshell.log (what promote's start hooks are checked by).
TEST(SampleTest, VshellScriptsRecordWhatTheyWereAsked) {
  testing::TempDir dir;
  SampleOptions o;
  o.prefix = "opt/Axway-7.7";
  ASSERT_TRUE(GenerateSample(dir / "host", o).ok());
  std::string nm =
      dir / "host/etc/init.d/vshell-Node-Manager-on-gw1.example.com";
  std::string gw1 = dir / "host/etc/init.d/vshell-QuickStart-Group-Gateway1";
  for (const auto& [script, arg] :
       std::vector<std::pair<std::string, std::string>>{
           {nm, "start"}, {gw1, "start"}, {gw1, "status"}, {gw1, "stop"}}) {
    testing::RunResult r = testing::Run({script, arg});
    ASSERT_EQ(r.exit_code, 0) << script << " " << r.err;
  }
  EXPECT_EQ(testing::Run({gw1, "restart"}).exit_code, 2);
  std::string log = testing::ReadFile(dir / "host/var/log/vshell.log");
  size_t a = log.find("start node-manager gw1.example.com");
  size_t b = log.find("start instance QuickStart Group/Gateway1");
  size_t c = log.find("status instance QuickStart Group/Gateway1");
  size_t d = log.find("stop instance QuickStart Group/Gateway1");
  ASSERT_NE(a, std::string::npos) << log;
  ASSERT_NE(d, std::string::npos) << log;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);
  EXPECT_FALSE(absl::StrContains(log, "restart"));
}

}  // namespace
}  // namespace gwmirror
