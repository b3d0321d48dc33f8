// Runs a helper program (a dump or restore tool, a hook) with a timeout:
// its own process group (killed whole on timeout), signals unblocked,
// descriptors beyond stdio closed, stdin and stdout from and to files the
// caller names, stderr captured (the last 4 KiB). The argv never carries a
// secret: pass credentials in files or the environment.
#ifndef GWMIRROR_COMMON_PROCESS_H_
#define GWMIRROR_COMMON_PROCESS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gwmirror {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH.
  // Added to (or replacing in) the inherited environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string stdin_path;   // Empty: /dev/null.
  std::string stdout_path;  // Empty: /dev/null. Created 0600, truncated.
  absl::Duration timeout = absl::Minutes(10);
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal.
  int signal = 0;      // The signal that ended it (0: none).
  bool timed_out = false;
  std::string stderr_tail;
  absl::Duration elapsed;
};

// Errors only when the process could not be started (fork, missing stdin
// file); a non-zero exit is a result, not an error.
absl::StatusOr<ProcessResult> RunProcess(const ProcessSpec& spec);

// "exit 2", "killed by signal 9", "timed out after 5s", then the last
// stderr line(s), for error messages.
std::string Describe(const ProcessResult& r);

// Hands freed heap pages back to the system when more than 16 MiB are
// free: the node keeps freed memory for reuse (node/main.cc), and a cut or
// a commit frees whole manifests. Trimming walks the whole heap, which a
// cut or commit of one small file should not pay for, and so does asking
// how much is free (6.7 ms a cut on the large sample's source, under
// churn): both at most once every 10 s.
void ReleaseFreedHeap();

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_PROCESS_H_
