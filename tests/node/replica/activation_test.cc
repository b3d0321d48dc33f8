#include "node/replica/activation.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

TEST(ActivationTest, OverrideSetsKeysKeepsTheRestAndTheMode) {
  testing::TempDir dir;
  testing::WriteFile(dir / "host/conf/env.props",
                     "# comment\nenv.DB_URL=jdbc:prod\nenv.OTHER=x\n", 0640);
  gwmirror::v1::SiteOverride o;
  o.set_file("conf/env.props");
  (*o.mutable_values())["env.DB_URL"] = "jdbc:standby";
  (*o.mutable_values())["env.SITE"] = "standby";
  std::vector<std::string> done;
  ASSERT_TRUE(ApplyOverride(dir / "host", o, &done).ok());
  EXPECT_EQ(
      testing::ReadFile(dir / "host/conf/env.props"),
      "# comment\nenv.DB_URL=jdbc:standby\nenv.OTHER=x\nenv.SITE=standby\n");
  struct stat st;
  ASSERT_EQ(stat((dir / "host/conf/env.props").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0], "set env.DB_URL=jdbc:standby in /conf/env.props");
  // Applying it again changes nothing.
  ASSERT_TRUE(ApplyOverride(dir / "host", o, &done).ok());
  EXPECT_EQ(
      testing::ReadFile(dir / "host/conf/env.props"),
      "# comment\nenv.DB_URL=jdbc:standby\nenv.OTHER=x\nenv.SITE=standby\n");
}

TEST(ActivationTest, OverrideRefusesMissingFilesAndPathsOutside) {
  testing::TempDir dir;
  gwmirror::v1::SiteOverride o;
  o.set_file("conf/missing.props");
  std::vector<std::string> done;
  absl::Status st = ApplyOverride(dir / "host", o, &done);
  EXPECT_TRUE(absl::StrContains(st.message(), "not a regular file")) << st;
  o.set_file("../etc/passwd");
  EXPECT_TRUE(absl::IsInvalidArgument(ApplyOverride(dir / "host", o, &done)));
}

TEST(ActivationTest, ScriptsNodeManagersFirstAndDryRunListsEverything) {
  testing::TempDir dir;
  for (const char* f : {"vshell-Node-Manager-on-h1", "vshell-G-Gateway1",
                        "vshell-G-Gateway2"}) {
    testing::WriteFile(dir / (std::string("host/etc/init.d/") + f),
                       "#!/bin/sh\n", 0755);
  }
  gwmirror::v1::NodeConfig c;
  c.set_host_root(dir / "host");
  auto* o = c.mutable_promote()->add_overrides();
  o->set_file("conf/env.props");
  (*o->mutable_values())["env.SITE"] = "standby";
  Activation a(c);
  EXPECT_EQ(a.Scripts(true),
            std::vector<std::string>{"etc/init.d/vshell-Node-Manager-on-h1"});
  EXPECT_EQ(a.Scripts(false),
            (std::vector<std::string>{"etc/init.d/vshell-G-Gateway1",
                                      "etc/init.d/vshell-G-Gateway2"}));
  auto plan = a.Run(gwmirror::v1::ACTIVATION_PHASE_DRY_RUN);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 4u);
  EXPECT_EQ((*plan)[0], "set env.SITE=standby in /conf/env.props");
  EXPECT_EQ((*plan)[1], "run /etc/init.d/vshell-Node-Manager-on-h1 start");
  EXPECT_TRUE(absl::IsInvalidArgument(
      a.Run(gwmirror::v1::ACTIVATION_PHASE_UNSPECIFIED).status()));
}

}  // namespace
}  // namespace gwmirror
