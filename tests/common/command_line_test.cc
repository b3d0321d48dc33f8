#include "common/command_line.h"

#include <gtest/gtest.h>

#include <vector>

namespace gwmirror {
namespace {

const ProgramSpec& Spec() {
  static const ProgramSpec* spec = new ProgramSpec{
      .name = "tool",
      .summary = "a tool",
      .global = {{.names = "--config", .value = "FILE", .help = "config"},
                 {.names = "--json", .help = "json"}},
      .commands = {
          {.path = "status",
           .group = "Observe",
           .summary = "status",
           .flags = {{.names = "--watch", .help = "watch"}}},
          {.path = "export",
           .group = "Recover",
           .summary = "export",
           .flags = {{.names = "--slot",
                      .value = "S",
                      .help = "slot",
                      .required = true},
                     {.names = "-o,--out", .value = "FILE", .help = "out"},
                     {.names = "--level",
                      .value = "N",
                      .help = "level",
                      .dflt = "3"}},
           .example = "tool export --slot a -o a.tar"},
          {.path = "certs", .group = "Set up", .summary = "certs"},
          {.path = "certs issue",
           .summary = "issue",
           .flags = {{.names = "--name", .value = "N", .help = "name"}}},
          {.path = "certs rotate", .summary = "rotate", .positional = "STEP"},
          {.path = "sample",
           .group = "Tools",
           .summary = "sample",
           .flags =
               {{.names = "--seed", .value = "S", .help = "seed", .dflt = "1"}},
           .runs_alone = true},
          {.path = "sample deploy",
           .summary = "deploy",
           .flags = {{.names = "--seed",
                      .value = "S",
                      .help = "seed",
                      .dflt = "1"}}},
      }};
  return *spec;
}

absl::StatusOr<CommandLine> Parse(std::vector<const char*> words) {
  words.insert(words.begin(), "tool");
  return ParseCommandLine(Spec(), static_cast<int>(words.size()), words.data());
}

TEST(CommandLineTest, FlagsTakeBothFormsAndGlobalsGoAnywhere) {
  for (auto words : std::vector<std::vector<const char*>>{
           {"--config", "c.json", "export", "--slot", "a", "-o", "x.tar"},
           {"export", "--slot=a", "--out=x.tar", "--config=c.json"},
           {"export", "--config", "c.json", "--out", "x.tar", "--slot", "a"}}) {
    auto line = Parse(words);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(line->command, "export");
    EXPECT_EQ(line->args.Get("slot").value_or(""), "a");
    EXPECT_EQ(line->args.Get("out").value_or(""), "x.tar");
    EXPECT_EQ(line->args.Get("config").value_or(""), "c.json");
    EXPECT_EQ(line->args.Get("level").value_or(""), "3");  // The default.
  }
  auto line = Parse({"status", "--json"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_TRUE(line->args.Has("json"));
  EXPECT_FALSE(line->args.Has("watch"));
}

TEST(CommandLineTest, SubcommandsAndPositionalWords) {
  auto line = Parse({"certs", "rotate", "start"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->command, "certs rotate");
  EXPECT_EQ(line->args.positional(), std::vector<std::string>{"start"});
  line = Parse({"certs", "issue", "--name", "alice"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->command, "certs issue");
}

// A command with subcommands that runs by itself, and a flag both levels
// have: the one given wins wherever it was given, then the command's own
// default.
TEST(CommandLineTest, ACommandThatRunsAloneAndFlagsSharedWithItsParent) {
  const std::pair<std::vector<const char*>, std::pair<std::string, std::string>>
      cases[] = {
          {{"sample"}, {"sample", "1"}},
          {{"sample", "--seed", "4"}, {"sample", "4"}},
          {{"sample", "deploy"}, {"sample deploy", "1"}},
          {{"sample", "deploy", "--seed", "3"}, {"sample deploy", "3"}},
          {{"sample", "--seed", "9", "deploy"}, {"sample deploy", "9"}},
      };
  for (const auto& [words, want] : cases) {
    auto line = Parse(words);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(line->command, want.first);
    EXPECT_EQ(line->args.Get("seed").value_or(""), want.second) << want.first;
  }
}

TEST(CommandLineTest, UsageErrorsNameTheProblemSuggestAndShowTheUsage) {
  struct Case {
    std::vector<const char*> words;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"stauts"}, "unknown command \"stauts\"; did you mean \"status\"?"},
           {{"status", "--wacth"}, "did you mean --watch?"},
           {{"export", "-o", "x"}, "--slot is required"},
           {{"certs"}, "\"certs\" needs a subcommand"},
           {{"certs", "isue"}, "did you mean \"issue\"?"},
           {{"status", "extra"}, "unexpected argument \"extra\""},
           {{"status", "--zzzzzzzz"}, "unknown flag --zzzzzzzz for \"status\""},
           {{}, "a command is needed"},
       }) {
    auto line = Parse(c.words);
    ASSERT_FALSE(line.ok()) << c.says;
    EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(line.status().message().find(c.says), std::string::npos)
        << line.status();
    EXPECT_NE(line.status().message().find("sage: tool"), std::string::npos)
        << line.status();
  }
  // A far-off word gets no suggestion.
  auto line = Parse({"status", "--zzzzzzzz"});
  EXPECT_EQ(line.status().message().find("did you mean"), std::string::npos);
}

TEST(CommandLineTest, HelpListsFlagsDefaultsAndTheExample) {
  for (auto words : std::vector<std::vector<const char*>>{
           {"export", "--help"}, {"help", "export"}, {"export", "-h"}}) {
    auto line = Parse(words);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_NE(line->help.find("--slot S REQUIRED"), std::string::npos)
        << line->help;
    EXPECT_NE(line->help.find("--level N=3"), std::string::npos);
    EXPECT_NE(line->help.find("tool export --slot a -o a.tar"),
              std::string::npos);
  }
  auto top = Parse({"--help"});
  ASSERT_TRUE(top.ok());
  for (const char* heading : {"Observe:", "Recover:", "Set up:"}) {
    EXPECT_NE(top->help.find(heading), std::string::npos) << top->help;
  }
}

TEST(CommandLineTest, ManPageAndCompletionCoverEveryCommandAndFlag) {
  std::string man = RenderManPage(Spec());
  for (const char* s : {".SH COMMANDS", ".SS \"certs rotate\"", "\\-\\-slot",
                        ".B \\-\\-config \\fIFILE\\fR", "default: 3"}) {
    EXPECT_NE(man.find(s), std::string::npos) << s;
  }
  std::string bash = RenderBashCompletion(Spec());
  EXPECT_NE(
      bash.find("\"certs\") words=\"--config --json --help issue rotate\""),
      std::string::npos)
      << bash;
  EXPECT_NE(bash.find("complete -F _tool tool"), std::string::npos);
}

TEST(CommandLineTest, EditDistance) {
  EXPECT_EQ(EditDistance("", ""), 0);
  EXPECT_EQ(EditDistance("status", "stauts"), 2);
  EXPECT_EQ(EditDistance("json", "jsn"), 1);
  EXPECT_EQ(EditDistance("abc", ""), 3);
}

}  // namespace
}  // namespace gwmirror
