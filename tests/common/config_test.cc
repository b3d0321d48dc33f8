#include "common/config.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "gwmirror/v1/coordinator.pb.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

absl::Status Load(const std::string& json) {
  testing::TempDir dir;
  testing::WriteFile(dir / "c.json", json);
  return LoadNodeConfig(dir / "c.json").status();
}

TEST(ConfigTest, BadConfigsNameTheProblem) {
  struct Case {
    std::string json, words;
  };
  std::vector<Case> cases = {
      {"{", "c.json"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"}],"colour":1})",
       "colour"},
      {R"({"stateDir":"/s","roots":[{"path":"a"}]})", "\"slot\""},
      {R"({"slot":"gw1","roots":[{"path":"a"}]})", "state_dir"},
      {R"({"slot":"gw1","stateDir":"/s"})", "roots"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"/abs"}]})",
       "roots[0].path"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a/../b"}]})", "'..'"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"},{"path":"a/b"}]})",
       "lies inside"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"}],"coordinator":{"address":"x:1"}})",
       "coordinator.identity"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"}],"source":{"replicaAddress":"x:1","replicaIdentity":"r","blockLen":3}})",
       "block_len"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"}],"replica":{}})",
       "source_identity"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"}],"bandwidth":{"maxSendRate":"0mbit"}})",
       "bandwidth.max_send_rate: \"0mbit\" is a rate of zero"},
      {R"({"slot":"gw1","stateDir":"/s","roots":[{"path":"a"}],"bandwidth":{"schedule":[{"days":"mon-fri","from":"8:00","to":"18:00","rate":"20mbit"}]}})",
       "bandwidth.schedule[0].from: \"8:00\" is not a time of day"},
  };
  for (const Case& c : cases) {
    absl::Status st = Load(c.json);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(st.message().find(c.words), std::string::npos)
        << c.json << " -> " << st.message();
  }
  EXPECT_EQ(LoadNodeConfig("/nonexistent/c.json").status().code(),
            absl::StatusCode::kNotFound);
}

// Mistakes in a config are pointed at: file:line:col, the key path, what
// was expected, and the near key for a typo (issue 21).
TEST(ConfigTest, MistakesArePointedAtByLineColumnAndKeyPath) {
  struct Case {
    std::string json, says;
  };
  const std::vector<Case> cases = {
      {"{\n  \"slot\": \"gw1\",\n  \"tsl\": {}\n}",
       "c.json:3:3: tsl: unknown key \"tsl\"; did you mean \"tls\"?"},
      {"{\n  \"tls\": {\"ca_fle\": \"x\"}\n}",
       "c.json:2:11: tls.ca_fle: unknown key \"ca_fle\" in tls; did you mean "
       "\"ca_file\"?"},
      {"{\n  \"slot\": \"gw1\",\n}",
       "c.json:2:16: a trailing comma before '}' (JSON allows none)"},
      {"{\"roots\": [{\"path\": \"a\"},]}",
       "c.json:1:25: roots: a trailing comma before ']'"},
      {"{\"slot\": 7}", "c.json:1:10: slot: expected a string, found a number"},
      {"{\"roots\": {\"path\": \"a\"}}",
       "roots: expected a list of an object, found an object"},
      {"{\"roots\": [{\"path\": \"a\", \"include\": \"x\"}]}",
       "roots[0].include: expected a list of a string, found a string"},
      {"{\"source\": {\"blockLen\": \"x\", \"prestageOff\": 1}}",
       "source.prestageOff: expected true or false, found a number"},
      {"{\"slot\": \"gw1\" \"tls\": {}}", "c.json:1:16: expected ',' or '}'"},
      {"{\"slot\": \"gw1}", "c.json:1:10: slot: this string is not closed"},
      {"", "c.json:1:1: the file is empty"},
      {"[]", "expected an object"},
      {"{} x", "text after the closing '}'"},
      {std::string(100, '['), "expected an object"},
  };
  for (const Case& c : cases) {
    absl::Status st = Load(c.json);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(st.message().find(c.says), std::string::npos)
        << c.json << "\n -> " << st.message();
  }
}

TEST(ConfigTest, GoodConfigLoads) {
  EXPECT_TRUE(
      Load(
          R"({"slot":"gw1","state_dir":"/s","roots":[{"path":"a","include":["x*"]}],
      "listen":"127.0.0.1:0","replica":{"sourceIdentity":"s"}})")
          .ok());
}

// Config files may carry comments; strings that look like comments are
// left alone, and line numbers in errors stay right.
TEST(ConfigTest, CommentsAreAllowedOutsideStrings) {
  EXPECT_EQ(StripJsonComments("{\"a\": \"x//y\", // c\n \"b\": /* d\n*/ 1}"),
            "{\"a\": \"x//y\",     \n \"b\":     \n   1}");
  EXPECT_EQ(StripJsonComments("\"q\\\"//\" /* open"), "\"q\\\"//\"        ");
  gwmirror::v1::CliConfig c;
  ASSERT_TRUE(ParseJson("// the operator\n{\"coordinator\": \"h:1\" /* x */}",
                        "cli.json", &c)
                  .ok());
  EXPECT_EQ(c.coordinator(), "h:1");
  absl::Status st = ParseJson("// one\n// two\n{\"nope\": 1}", "cli.json", &c);
  EXPECT_TRUE(absl::StrContains(st.message(), "nope")) << st;
}

// Scripts read status --json: a slot in sync must say lag_ms 0, not omit
// it (regression: proto3's JSON mapping drops zero values by default).
TEST(ConfigTest, JsonCarriesZeroAndEmptyFields) {
  gwmirror::v1::SlotStatus slot;
  slot.set_name("gw1");
  std::string json = ToJson(slot);
  EXPECT_TRUE(absl::StrContains(json, "\"lag_ms\": \"0\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"name\": \"gw1\"")) << json;
}

}  // namespace
}  // namespace gwmirror
