// Structured one-line logs on stderr: "ts level component key=value msg".
// Thread-safe (one write(2) per line).
#ifndef GWMIRROR_COMMON_LOG_H_
#define GWMIRROR_COMMON_LOG_H_

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void LogLine(LogLevel level, absl::string_view component, absl::string_view msg);

template <typename... Args>
void Logf(LogLevel level, absl::string_view component,
          const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  LogLine(level, component, absl::StrFormat(fmt, args...));
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_LOG_H_
