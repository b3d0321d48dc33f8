// Fault injection at named points of the replica's write path, so tests can
// kill a real process at any step (crash safety) or make a disk "fill up".
// The spec comes from GWMIRROR_FAULT or SetFaultSpec():
//   "crash:<prefix>:<n>"  the n-th hit (1-based) of a point whose name starts
//                         with <prefix> raises SIGKILL;
//   "enospc:<prefix>:<n>" from the n-th hit on, such points fail with
//                         RESOURCE_EXHAUSTED;
//   "pause:<prefix>:<n>"  the n-th hit writes $GWMIRROR_FAULT_PAUSE.reached
//                         and waits (2 minutes at most) while the file
//                         $GWMIRROR_FAULT_PAUSE exists.
// With no spec a point costs one relaxed atomic load. A build without
// GWMIRROR_FAULT_POINTS (CMake option, off when the tests are off) has no
// points at all: FaultPoint is always OK and GWMIRROR_FAULT is not read.
// When the variable arms a point, the process logs a warning once.
// Thread-safe.
#ifndef GWMIRROR_COMMON_FAULT_H_
#define GWMIRROR_COMMON_FAULT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

#ifdef GWMIRROR_FAULT_POINTS
absl::Status FaultPoint(absl::string_view name);
void SetFaultSpec(const std::string& spec);
#else
inline absl::Status FaultPoint(absl::string_view) { return absl::OkStatus(); }
#endif

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_FAULT_H_
