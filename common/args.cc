#include "common/args.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace gwmirror {

absl::StatusOr<Args> Args::Parse(int argc, char** argv, int first,
                                 const std::set<std::string>& valued,
                                 const std::set<std::string>& flags) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-o") arg = "--out";  // The one short option, as tar's.
    if (!absl::StartsWith(arg, "--")) {
      a.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_inline = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    if (flags.count(name)) {
      if (has_inline) {
        return absl::InvalidArgumentError(
            absl::StrCat("option --", name, " takes no value"));
      }
      a.flags_.insert(name);
    } else if (valued.count(name)) {
      if (!has_inline) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(
              absl::StrCat("option --", name, " needs a value"));
        }
        value = argv[++i];
      }
      a.values_[name] = value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option --", name));
    }
  }
  return a;
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> Args::Require(const std::string& name) const {
  auto v = Get(name);
  if (!v)
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  return *v;
}

absl::StatusOr<uint64_t> Args::UintOr(const std::string& name,
                                      uint64_t dflt) const {
  auto v = Get(name);
  if (!v) return dflt;
  uint64_t n = 0;
  if (!absl::SimpleAtoi(*v, &n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": \"", *v, "\" is not a non-negative integer"));
  }
  return n;
}

absl::StatusOr<uint64_t> Args::RequireUint(const std::string& name) const {
  if (!Get(name)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  }
  return UintOr(name, 0);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
Args::RequireNodes(const std::string& name) const {
  ASSIGN_OR_RETURN(std::string list, Require(name));
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(item, '@');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " wants IDENTITY@HOST:PORT[,...]; got \"", item, "\""));
    }
    out.emplace_back(parts[0], parts[1]);
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " names no node"));
  }
  return out;
}

}  // namespace gwmirror
