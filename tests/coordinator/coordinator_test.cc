// Coordinator configuration checks: every mistake is named.
#include "coordinator/coordinator.h"

#include "common/config.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

gwmirror::v1::CoordinatorConfig Good() {
  gwmirror::v1::CoordinatorConfig c;
  EXPECT_TRUE(ParseJson(R"({"listen": "127.0.0.1:0", "stateDir": "/s",
      "sites": ["production", "standby"], "initialActiveSite": "production",
      "members": [{"identity": "a", "site": "production", "slot": "gw1"},
                  {"identity": "b", "site": "standby", "slot": "gw1"}]})",
                        "test", &c)
                  .ok());
  return c;
}

TEST(CoordinatorConfigTest, AcceptsAGoodConfig) {
  EXPECT_TRUE(ValidateCoordinatorConfig(Good()).ok());
}

TEST(CoordinatorConfigTest, NamesEachMistake) {
  struct Case {
    std::function<void(gwmirror::v1::CoordinatorConfig*)> spoil;
    std::string words;
  };
  const Case cases[] = {
      {[](auto* c) { c->clear_state_dir(); }, "\"state_dir\" is required"},
      {[](auto* c) { c->clear_listen(); }, "\"listen\" is required"},
      {[](auto* c) { c->set_sites(1, "production"); }, "two different sites"},
      {[](auto* c) { c->set_initial_active_site("moon"); },
       "initial_active_site"},
      {[](auto* c) { c->set_parity_policy("lenient"); },
       "parity_policy \"lenient\""},
      {[](auto* c) { c->mutable_members(1)->set_site("moon"); },
       "member \"b\" is on unknown site \"moon\""},
      {[](auto* c) { c->mutable_members(1)->set_identity("a"); },
       "member \"a\" is listed twice"},
      {[](auto* c) { c->mutable_members(1)->set_site("production"); },
       "slot \"gw1\" has two members on site \"production\""},
      {[](auto* c) { c->clear_members(); }, "lists no node"},
  };
  for (const Case& k : cases) {
    gwmirror::v1::CoordinatorConfig c = Good();
    k.spoil(&c);
    absl::Status st = ValidateCoordinatorConfig(c);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << k.words;
    EXPECT_NE(st.message().find(k.words), std::string::npos)
        << st.message() << " lacks " << k.words;
  }
}

TEST(CoordinatorConfigTest, UnknownFieldIsNamed) {
  gwmirror::v1::CoordinatorConfig c;
  absl::Status st =
      ParseJson(R"({"listen": "x", "paritypolicy": "warn"})", "c.json", &c);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("paritypolicy"), std::string::npos) << st;
}

}  // namespace
}  // namespace gwmirror
