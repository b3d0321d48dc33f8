#include "common/log.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gwmirror {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};

// A JSON string literal. Bytes outside printable ASCII are escaped one by
// one (\u00XX), so any message, even a non-UTF-8 path, stays valid JSON.
std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

void SetLogFormat(LogFormat format) { g_format = format; }

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "--log-format \"", name, "\": expected \"text\" or \"json\""));
}

std::string FormatLogLine(LogFormat format, const struct timespec& when,
                          LogLevel level, absl::string_view component,
                          absl::string_view msg) {
  struct tm tm;
  gmtime_r(&when.tv_sec, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  const std::string ts =
      absl::StrFormat("%s.%03dZ", day, when.tv_nsec / 1000000);
  const char* lvl = kNames[static_cast<int>(level)];
  if (format == LogFormat::kText) {
    return absl::StrFormat("%s %s %s %s\n", ts, lvl, component, msg);
  }
  std::string out =
      absl::StrCat("{\"ts\":", Quote(ts), ",\"level\":", Quote(lvl),
                   ",\"component\":", Quote(component));
  // Leading key=value words that name the subject become fields.
  for (;;) {
    size_t eq = msg.find('=');
    size_t end = msg.find(' ');
    if (eq == absl::string_view::npos ||
        (end != absl::string_view::npos && eq > end)) {
      break;
    }
    absl::string_view key = msg.substr(0, eq);
    absl::string_view value = msg.substr(eq + 1, end == absl::string_view::npos
                                                     ? absl::string_view::npos
                                                     : end - eq - 1);
    uint64_t n = 0;
    if (key == "slot" && !value.empty()) {
      absl::StrAppend(&out, ",\"slot\":", Quote(value));
    } else if ((key == "checkpoint" || key == "drill") &&
               absl::SimpleAtoi(value, &n)) {
      absl::StrAppend(&out, ",\"", key, "\":", n);
    } else {
      break;
    }
    msg = end == absl::string_view::npos ? absl::string_view()
                                         : msg.substr(end + 1);
  }
  absl::StrAppend(&out, ",\"msg\":", Quote(msg), "}\n");
  return out;
}

namespace {
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kDebug)};
}  // namespace

void SetMinLogLevel(LogLevel level) {
  g_min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void LogLine(LogLevel level, absl::string_view component,
             absl::string_view msg) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) {
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  std::string line = FormatLogLine(g_format, ts, level, component, msg);
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace gwmirror
