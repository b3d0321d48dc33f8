#include "common/path.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gwmirror {

absl::Status ValidateRelativePath(absl::string_view path) {
  auto bad = [&](absl::string_view why) {
    std::string shown(path.substr(0, 200));
    for (char& c : shown) {
      if (c == '\0') c = '?';
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unsafe path \"", shown, "\": ", why));
  };
  if (path.empty()) return bad("empty");
  if (path.size() > 4096) return bad("longer than 4096 bytes");
  if (path.find('\0') != absl::string_view::npos) return bad("contains NUL");
  if (path.front() == '/') return bad("absolute");
  if (path.back() == '/') return bad("trailing '/'");
  for (absl::string_view c : absl::StrSplit(path, '/')) {
    if (c.empty()) return bad("empty component");
    if (c == ".") return bad("'.' component");
    if (c == "..") return bad("'..' component");
    if (c.size() > 255) return bad("component longer than 255 bytes");
    if (c == kStagingDirName) return bad("reserved component");
  }
  return absl::OkStatus();
}

std::vector<std::string> SplitPath(absl::string_view path) {
  return absl::StrSplit(path, '/', absl::SkipEmpty());
}

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  if (a.back() == '/') return absl::StrCat(a, b);
  return absl::StrCat(a, "/", b);
}

bool PathIsWithin(absl::string_view path, absl::string_view dir) {
  if (dir.empty()) return true;
  if (path.size() < dir.size() || path.substr(0, dir.size()) != dir) {
    return false;
  }
  return path.size() == dir.size() || path[dir.size()] == '/';
}

}  // namespace gwmirror
