// The command lines of gwmirror's three binaries, described once: each
// program is a table of commands and their flags (ProgramSpec), from which
// come the parser (CLI11: subcommands, "--flag value" and "--flag=value",
// global flags before or after the command), the help of every command,
// "did you mean" for a mistyped command or flag, the man page and the bash
// completion. A command reads what it was given from an Args.
#ifndef GWMIRROR_COMMON_COMMAND_LINE_H_
#define GWMIRROR_COMMON_COMMAND_LINE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/args.h"

namespace gwmirror {

struct FlagSpec {
  std::string names;  // "--slot", or "-o,--out" with a short form.
  std::string value;  // The value's placeholder ("S"); empty for a switch.
  std::string help;
  std::string dflt;  // Applied when the flag is absent (and shown); or none.
  bool required = false;
};

struct CommandSpec {
  std::string path;   // "status", "checkpoint create": words from the top.
  std::string group;  // Top-level commands only: the heading in the help.
  std::string summary;
  std::vector<FlagSpec> flags;
  std::string example;     // One whole command line.
  std::string positional;  // The placeholder of one positional word, or none.
  // A command with subcommands runs by itself too ("sample", and "sample
  // deploy"); otherwise it needs one of them.
  bool runs_alone = false;
};

struct ProgramSpec {
  std::string name;  // "gwmirror"
  int man_section = 1;
  std::string summary;           // One line.
  std::string description;       // Paragraphs for the man page and --help.
  std::vector<FlagSpec> global;  // Accepted before or after the command.
  // A command with subcommands is listed before them ("certs", then
  // "certs init").
  std::vector<CommandSpec> commands;
};

struct CommandLine {
  std::string command;  // The command's path ("checkpoint create").
  Args args;            // Its flags and the global ones.
  // Set when help was asked for: print it on stdout and exit 0.
  std::string help;
};

// The daemons' global flags: --config FILE (required; `config_help` says
// whose) and --log-format text|json.
std::vector<FlagSpec> DaemonFlags(const std::string& config_help);
// For a daemon's command: applies --log-format and returns --config.
absl::StatusOr<std::string> DaemonConfigPath(const Args& args);

// Parses argv against `spec`. A usage error is INVALID_ARGUMENT with one
// message that names the problem, suggests the near command or flag, and
// ends with the command's usage line.
absl::StatusOr<CommandLine> ParseCommandLine(const ProgramSpec& spec, int argc,
                                             const char* const* argv);

// The man page (roff) and the bash completion script of `spec`.
std::string RenderManPage(const ProgramSpec& spec);
std::string RenderBashCompletion(const ProgramSpec& spec);

// Runs the hidden generator commands shared by the binaries
// ("--generate-man", "--generate-completion") when argv[1] names one:
// prints and returns true.
bool MaybeGenerate(const ProgramSpec& spec, int argc, const char* const* argv);

// A binary's main: the generators, then the parse; help goes to stdout
// (exit 0), a usage error to stderr (exit 2); then `run`, whose value is the
// exit code and whose error is one line on stderr (exit 2 for
// INVALID_ARGUMENT, else 1).
int RunCommandLine(
    const ProgramSpec& spec, int argc, const char* const* argv,
    const std::function<absl::StatusOr<int>(const CommandLine&)>& run);

// Levenshtein distance, and the candidate nearest to `word` when near
// enough to be a slip (at most max(2, length/3) edits, or a prefix of 3 or
// more characters), else "": the "did you mean" of commands, flags and
// config keys.
int EditDistance(const std::string& a, const std::string& b);
std::string NearestWord(const std::string& word,
                        const std::vector<std::string>& candidates);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_COMMAND_LINE_H_
