#include "common/args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace gwmirror {

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
