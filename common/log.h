// Structured one-line logs on stderr, one write(2) per line (thread-safe):
//   text: "ts level component key=value msg"
//   json: {"ts":...,"level":...,"component":...,"slot":...,"checkpoint":N,
//          "drill":N,"msg":...} — the leading slot=, checkpoint= and drill=
//          words of a message become fields.
// Messages never carry secrets (credentials stay in 0600 files).
#ifndef GWMIRROR_COMMON_LOG_H_
#define GWMIRROR_COMMON_LOG_H_

#include <time.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
enum class LogFormat { kText, kJson };

// For the whole process (set once at start, before threads).
void SetLogFormat(LogFormat format);
// Lines below `level` are dropped (benchmarks keep their output clean).
void SetMinLogLevel(LogLevel level);
// "text" or "json"; anything else is INVALID_ARGUMENT naming it.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

// One line, newline included.
std::string FormatLogLine(LogFormat format, const struct timespec& when,
                          LogLevel level, absl::string_view component,
                          absl::string_view msg);

void LogLine(LogLevel level, absl::string_view component,
             absl::string_view msg);

template <typename... Args>
void Logf(LogLevel level, absl::string_view component,
          const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  LogLine(level, component, absl::StrFormat(fmt, args...));
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_LOG_H_
