#include "common/command_line.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/log.h"

namespace gwmirror {
namespace {

// "-o,--out" → "out": the key a command reads from Args.
std::string KeyOf(const FlagSpec& f) {
  for (absl::string_view n : absl::StrSplit(f.names, ',')) {
    if (absl::StartsWith(n, "--")) return std::string(n.substr(2));
  }
  return std::string(absl::StripPrefix(f.names, "-"));
}

std::string LongOf(const FlagSpec& f) { return "--" + KeyOf(f); }

std::string FlagUsage(const FlagSpec& f) {
  std::string s = LongOf(f);
  if (!f.value.empty()) absl::StrAppend(&s, " ", f.value);
  return f.required ? s : absl::StrCat("[", s, "]");
}

const CommandSpec* Find(const ProgramSpec& spec, const std::string& path) {
  for (const CommandSpec& c : spec.commands) {
    if (c.path == path) return &c;
  }
  return nullptr;
}

// The commands directly below `path` ("" for the top).
std::vector<const CommandSpec*> Children(const ProgramSpec& spec,
                                         const std::string& path) {
  std::vector<const CommandSpec*> out;
  for (const CommandSpec& c : spec.commands) {
    size_t space = c.path.rfind(' ');
    std::string parent =
        space == std::string::npos ? "" : c.path.substr(0, space);
    if (parent == path) out.push_back(&c);
  }
  return out;
}

std::string UsageOf(const ProgramSpec& spec, const CommandSpec* c) {
  if (c == nullptr) {
    return absl::StrCat("usage: ", spec.name, " [GLOBAL FLAGS] COMMAND [FLAGS]",
                        " (", spec.name, " help lists the commands)");
  }
  std::string s = absl::StrCat("usage: ", spec.name, " ", c->path);
  std::vector<const CommandSpec*> kids = Children(spec, c->path);
  if (!kids.empty()) {
    std::vector<std::string> names;
    for (const CommandSpec* k : kids)
      names.push_back(k->path.substr(c->path.size() + 1));
    return absl::StrCat(s, " ", absl::StrJoin(names, "|"), " [FLAGS]");
  }
  for (const FlagSpec& f : c->flags) absl::StrAppend(&s, " ", FlagUsage(f));
  if (!c->positional.empty()) absl::StrAppend(&s, " ", c->positional);
  return s;
}

struct Built {
  std::unique_ptr<CLI::App> app;
  std::map<std::string, CLI::App*> apps;  // By path; "" is the top.
  // Every option and the spec it came from, per app.
  std::map<const CLI::App*,
           std::vector<std::pair<CLI::Option*, const FlagSpec*>>>
      options;
  std::map<const CLI::App*, CLI::Option*> positional;
};

void AddFlags(CLI::App* app, const std::vector<FlagSpec>& flags,
              const std::string& group, Built* b) {
  for (const FlagSpec& f : flags) {
    CLI::Option* o = f.value.empty() ? app->add_flag(f.names, f.help)
                                     : app->add_option(f.names, f.help);
    if (!f.value.empty()) o->type_name(f.value);
    if (!f.dflt.empty()) o->default_str(f.dflt);
    if (f.required) o->required();
    if (!group.empty()) o->group(group);
    b->options[app].emplace_back(o, &f);
  }
}

Built Build(const ProgramSpec& spec) {
  Built b;
  b.app = std::make_unique<CLI::App>(spec.summary, spec.name);
  b.app->allow_extras();
  b.app->require_subcommand(0, 1);
  b.app->footer(absl::StrCat(spec.name, " help COMMAND (or COMMAND --help) ",
                             "shows a command's flags and an example."));
  AddFlags(b.app.get(), spec.global,
           "Global flags (before or after the command)", &b);
  b.apps[""] = b.app.get();
  for (const CommandSpec& c : spec.commands) {
    size_t space = c.path.rfind(' ');
    std::string parent =
        space == std::string::npos ? "" : c.path.substr(0, space);
    std::string name =
        space == std::string::npos ? c.path : c.path.substr(space + 1);
    CLI::App* up = b.apps.at(parent);
    CLI::App* app = up->add_subcommand(name, c.summary);
    app->fallthrough();
    app->require_subcommand(0, 1);
    if (!c.group.empty()) app->group(c.group);
    std::string footer;
    if (!spec.global.empty()) {
      std::vector<std::string> g;
      for (const FlagSpec& f : spec.global) g.push_back(FlagUsage(f));
      footer = absl::StrCat("Global flags: ", absl::StrJoin(g, " "), "\n");
    }
    if (!c.example.empty()) absl::StrAppend(&footer, "Example:\n  ", c.example);
    app->footer(footer);
    AddFlags(app, c.flags, "", &b);
    if (!c.positional.empty()) {
      b.positional[app] =
          app->add_option(absl::StrCat("positional_", name), c.positional)
              ->type_name(c.positional)
              ->expected(1);
    }
    b.apps[c.path] = app;
  }
  return b;
}

// The deepest command selected and its path.
std::pair<const CLI::App*, std::string> Leaf(const Built& b) {
  const CLI::App* at = b.app.get();
  std::string path;
  while (!at->get_subcommands().empty()) {
    at = at->get_subcommands().front();
    path =
        path.empty() ? at->get_name() : absl::StrCat(path, " ", at->get_name());
  }
  return {at, path};
}

absl::Status UsageError(const ProgramSpec& spec, const std::string& path,
                        const std::string& problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(problem, "\n", UsageOf(spec, Find(spec, path))));
}

// Collected from the command up to its parents, in two passes: first the
// flags given (a command's own "sample deploy --seed" before its parent's,
// and a parent's given value before a child's default), then defaults for
// what none gave.
void Collect(const Built& b, const CLI::App* app, bool defaults, Args* args) {
  auto it = b.options.find(app);
  if (it != b.options.end()) {
    for (const auto& [o, f] : it->second) {
      if (args->Has(KeyOf(*f)) || args->Get(KeyOf(*f)).has_value()) continue;
      if (!defaults && o->count() > 0) {
        if (f->value.empty()) {
          args->SetFlag(KeyOf(*f));
        } else {
          args->SetValue(KeyOf(*f), o->results().back());
        }
      } else if (defaults && o->count() == 0 && !f->dflt.empty()) {
        args->SetValue(KeyOf(*f), f->dflt);
      }
    }
  }
  if (auto p = b.positional.find(app); !defaults && p != b.positional.end()) {
    for (const std::string& w : p->second->results()) args->AddPositional(w);
  }
}

}  // namespace

std::vector<FlagSpec> DaemonFlags(const std::string& config_help) {
  return {{.names = "--config",
           .value = "FILE",
           .help = config_help,
           .required = true},
          {.names = "--log-format",
           .value = "text|json",
           .help = "How log lines look",
           .dflt = "text"}};
}

absl::StatusOr<std::string> DaemonConfigPath(const Args& args) {
  absl::StatusOr<LogFormat> format =
      ParseLogFormat(args.Get("log-format").value_or("text"));
  if (!format.ok()) return format.status();
  SetLogFormat(*format);
  return args.Require("config");
}

int EditDistance(const std::string& a, const std::string& b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diag = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string NearestWord(const std::string& word,
                        const std::vector<std::string>& candidates) {
  std::string best;
  int best_d = std::max<int>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_d ||
        (absl::StartsWith(c, word) && word.size() >= 3 && best.empty())) {
      best = c;
      best_d = std::min(d, best_d);
    }
  }
  return best;
}

absl::StatusOr<CommandLine> ParseCommandLine(const ProgramSpec& spec, int argc,
                                             const char* const* argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  // "help [COMMAND...]" is "COMMAND... --help".
  if (!words.empty() && words[0] == "help") {
    words.erase(words.begin());
    words.push_back("--help");
  }
  Built b = Build(spec);
  CommandLine out;
  try {
    std::vector<std::string> reversed(words.rbegin(), words.rend());
    b.app->parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out.help = b.app->help();
    return out;
  } catch (const CLI::ParseError& e) {
    return UsageError(spec, Leaf(b).second, e.what());
  }
  auto [leaf, path] = Leaf(b);
  std::vector<std::string> extra = b.app->remaining(true);
  std::vector<const CommandSpec*> kids = Children(spec, path);
  if (!extra.empty()) {
    const std::string& first = extra.front();
    if (absl::StartsWith(first, "-")) {
      std::string flag = first.substr(0, first.find('='));
      std::vector<std::string> known;
      for (const CLI::App* a = leaf; a != nullptr; a = a->get_parent()) {
        auto it = b.options.find(a);
        if (it == b.options.end()) continue;
        for (const auto& [o, f] : it->second) known.push_back(LongOf(*f));
      }
      std::string near = NearestWord(flag, known);
      return UsageError(
          spec, path,
          absl::StrCat(
              "unknown flag ", flag,
              path.empty() ? "" : absl::StrCat(" for \"", path, "\""),
              near.empty() ? "" : absl::StrCat("; did you mean ", near, "?")));
    }
    if (kids.empty()) {
      return UsageError(spec, path,
                        absl::StrCat("unexpected argument \"", first, "\""));
    }
    std::vector<std::string> names;
    for (const CommandSpec* k : kids) {
      names.push_back(path.empty() ? k->path : k->path.substr(path.size() + 1));
    }
    std::string near = NearestWord(first, names);
    return UsageError(
        spec, path,
        absl::StrCat(
            "unknown command \"", path.empty() ? "" : path + " ", first, "\"",
            near.empty() ? ""
                         : absl::StrCat("; did you mean \"", near, "\"?")));
  }
  const bool runs_alone = std::any_of(
      spec.commands.begin(), spec.commands.end(),
      [&](const CommandSpec& c) { return c.path == path && c.runs_alone; });
  if (!kids.empty() && !runs_alone) {
    if (path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a command is needed\n\n", b.app->help()));
    }
    return UsageError(spec, path,
                      absl::StrCat("\"", path, "\" needs a subcommand"));
  }
  for (bool defaults : {false, true}) {
    for (const CLI::App* a = leaf; a != nullptr; a = a->get_parent()) {
      Collect(b, a, defaults, &out.args);
    }
  }
  out.command = path;
  return out;
}

namespace {

std::string Roff(absl::string_view s) {
  std::string out = absl::StrReplaceAll(s, {{"\\", "\\e"}, {"-", "\\-"}});
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

void ManFlags(const std::vector<FlagSpec>& flags, std::string* out) {
  for (const FlagSpec& f : flags) {
    std::string names = absl::StrJoin(absl::StrSplit(f.names, ','), ", ");
    absl::StrAppend(
        out, ".TP\n.B ", Roff(names),
        f.value.empty() ? "" : absl::StrCat(" \\fI", Roff(f.value), "\\fR"),
        "\n", Roff(f.help),
        f.dflt.empty() ? "" : absl::StrCat(" (default: ", Roff(f.dflt), ")"),
        f.required ? " Required." : "", "\n");
  }
}

}  // namespace

std::string RenderManPage(const ProgramSpec& spec) {
  std::string upper = spec.name;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  std::string out = absl::StrCat(
      ".TH ", upper, " ", spec.man_section,
      " \"\" \"gwmirror\" \"gwmirror manual\"\n", ".SH NAME\n", Roff(spec.name),
      " \\- ", Roff(spec.summary), "\n", ".SH SYNOPSIS\n.B ", Roff(spec.name),
      "\n", spec.global.empty() ? "" : "[\\fIGLOBAL FLAGS\\fR] ",
      "\\fICOMMAND\\fR [\\fIFLAGS\\fR]\n.br\n.B ", Roff(spec.name),
      " help \\fR[\\fICOMMAND\\fR]\n", ".SH DESCRIPTION\n");
  for (absl::string_view para : absl::StrSplit(spec.description, "\n\n")) {
    absl::StrAppend(&out, Roff(para), "\n.PP\n");
  }
  if (!spec.global.empty()) {
    absl::StrAppend(&out, ".SH GLOBAL FLAGS\n");
    ManFlags(spec.global, &out);
  }
  absl::StrAppend(&out, ".SH COMMANDS\n");
  for (const CommandSpec& c : spec.commands) {
    absl::StrAppend(&out, ".SS \"", Roff(c.path), "\"\n", Roff(c.summary),
                    "\n.PP\n", Roff(UsageOf(spec, &c)), "\n");
    ManFlags(c.flags, &out);
    if (!c.example.empty()) {
      absl::StrAppend(&out, ".PP\nExample:\n.RS\n.nf\n", Roff(c.example),
                      "\n.fi\n.RE\n");
    }
  }
  absl::StrAppend(&out,
                  ".SH EXIT STATUS\n0 on success (and for help), 2 for a ",
                  "usage error, 1 for any other failure; the reason is one ",
                  "line on standard error.\n");
  return out;
}

std::string RenderBashCompletion(const ProgramSpec& spec) {
  std::string fn = "_" + absl::StrReplaceAll(spec.name, {{"-", "_"}});
  std::vector<std::string> global;
  for (const FlagSpec& f : spec.global) global.push_back(LongOf(f));
  std::string cases;
  std::vector<std::string> paths = {""};
  for (const CommandSpec& c : spec.commands) paths.push_back(c.path);
  std::vector<std::string> known;
  for (const std::string& p : paths) {
    if (!p.empty()) known.push_back(absl::StrCat("\"", p, "\""));
    std::vector<std::string> words = global;
    words.push_back("--help");
    for (const CommandSpec* k : Children(spec, p)) {
      words.push_back(p.empty() ? k->path : k->path.substr(p.size() + 1));
    }
    if (const CommandSpec* c = Find(spec, p)) {
      for (const FlagSpec& f : c->flags) words.push_back(LongOf(f));
    }
    absl::StrAppend(&cases, "    \"", p, "\") words=\"",
                    absl::StrJoin(words, " "), "\" ;;\n");
  }
  return absl::StrCat(
      "# bash completion for ", spec.name,
      " (generated from its command table)\n", fn, "() {\n",
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" path=\"\" w next i\n",
      "  local -a known=(", absl::StrJoin(known, " "), ")\n",
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n",
      "    w=\"${COMP_WORDS[i]}\"\n", "    [[ \"$w\" == -* ]] && continue\n",
      "    next=\"${path:+$path }$w\"\n", "    for k in \"${known[@]}\"; do\n",
      "      [[ \"$k\" == \"$next\" ]] && path=\"$next\" && break\n",
      "    done\n", "  done\n", "  local words\n", "  case \"$path\" in\n",
      cases, "  esac\n", "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n",
      "}\n", "complete -F ", fn, " ", spec.name, "\n");
}

bool MaybeGenerate(const ProgramSpec& spec, int argc, const char* const* argv) {
  if (argc != 2) return false;
  const std::string what = argv[1];
  if (what == "--generate-man") {
    std::cout << RenderManPage(spec);
    return true;
  }
  if (what == "--generate-completion") {
    std::cout << RenderBashCompletion(spec);
    return true;
  }
  return false;
}

int RunCommandLine(
    const ProgramSpec& spec, int argc, const char* const* argv,
    const std::function<absl::StatusOr<int>(const CommandLine&)>& run) {
  if (MaybeGenerate(spec, argc, argv)) return 0;
  absl::StatusOr<CommandLine> line = ParseCommandLine(spec, argc, argv);
  absl::Status st = line.status();
  if (line.ok()) {
    if (!line->help.empty()) {
      std::cout << line->help;
      return 0;
    }
    absl::StatusOr<int> code = run(*line);
    if (code.ok()) return *code;
    st = code.status();
  }
  std::cerr << spec.name << ": " << st.message() << "\n";
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace gwmirror
