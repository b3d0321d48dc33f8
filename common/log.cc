#include "common/log.h"

#include <time.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace gwmirror {

void LogLine(LogLevel level, absl::string_view component,
             absl::string_view msg) {
  static const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line =
      absl::StrFormat("%s.%03dZ %s %s %s\n", when, ts.tv_nsec / 1000000,
                      kNames[static_cast<int>(level)], component, msg);
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace gwmirror
