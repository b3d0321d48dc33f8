// The mass-deletion guard: a cut that would delete more than a share of a
// root on the standby (an rm -rf by mistake), or all of a root that held
// something (an unmounted disk), is held until an operator releases it.
// Pure function; thread-safe.
#ifndef GWMIRROR_NODE_SOURCE_DELETION_GUARD_H_
#define GWMIRROR_NODE_SOURCE_DELETION_GUARD_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/manifest.h"

namespace gwmirror {

// Below this many deletions in a root nothing is held (replacing the two
// files of a small root is not a mass deletion).
inline constexpr size_t kMassDeletionMinEntries = 4;

// How the guard's error message starts.
inline constexpr char kMassDeletionHeld[] = "mass deletion held";

// A hold: FAILED_PRECONDITION with `message`, marked (a typed payload, not
// its words) as a hold of `kind` ("mass-deletion", "anomaly").
absl::Status HeldStatus(absl::string_view kind, const std::string& message);
// Whether `st` is a guard holding a cut, and of which kind ("" for none).
bool IsHeld(const absl::Status& st);
std::string HeldKind(const absl::Status& st);

// OK, or FAILED_PRECONDITION "mass deletion held: ..." naming each root
// where going from `base` (the replica's manifest) to `next` deletes more
// than `max_fraction` of the root's entries, or every entry of the root;
// either only with at least kMassDeletionMinEntries deletions.
absl::Status CheckMassDeletion(const Manifest& base, const Manifest& next,
                               const std::vector<std::string>& roots,
                               double max_fraction);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_DELETION_GUARD_H_
