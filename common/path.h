// Path rules for everything that names a file on the wire or in a manifest.
// Pure functions; thread-safe.
#ifndef GWMIRROR_COMMON_PATH_H_
#define GWMIRROR_COMMON_PATH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

// Name of the per-root staging directory on a replica; never mirrored, and
// refused as a path component from the network.
inline constexpr absl::string_view kStagingDirName = ".gwmirror-staging";

// OK when `path` is relative, normalised and safe: non-empty, at most 4096
// bytes, no NUL, no leading or trailing '/', no empty, "." or ".." component,
// each component at most 255 bytes, and no component named
// kStagingDirName. Otherwise INVALID_ARGUMENT naming the rule broken.
absl::Status ValidateRelativePath(absl::string_view path);

// Splits a validated path into its components.
std::vector<std::string> SplitPath(absl::string_view path);

// Joins a and b with one '/'; either may be empty.
std::string JoinPath(absl::string_view a, absl::string_view b);

// True when `path` equals `dir` or lies below it (component-wise).
bool PathIsWithin(absl::string_view path, absl::string_view dir);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_PATH_H_
