// Fault injection at named points of the replica's write path, so tests can
// kill a real process at any step (crash safety) or make a disk "fill up".
// The spec comes from GWMIRROR_FAULT or SetFaultSpec():
//   "crash:<prefix>:<n>"  the n-th hit (1-based) of a point whose name starts
//                         with <prefix> raises SIGKILL;
//   "enospc:<prefix>:<n>" from the n-th hit on, such points fail with
//                         RESOURCE_EXHAUSTED.
// With no spec a point costs one relaxed atomic load. Thread-safe.
#ifndef GWMIRROR_COMMON_FAULT_H_
#define GWMIRROR_COMMON_FAULT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

absl::Status FaultPoint(absl::string_view name);
void SetFaultSpec(const std::string& spec);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_FAULT_H_
