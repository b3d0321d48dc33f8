// The anomaly guard: ransomware and runaway scripts rewrite many files in a
// short time with content that suddenly looks random (high entropy where
// the file was XML or properties), or rename them to new extensions.
// Committing such a change set on the standby would overwrite the last good
// copy, so the cut is held until an operator releases it, like a mass
// deletion (deletion_guard.h).
//
// Cheap in the common case: a change set with fewer rewritten or renamed
// files than the thresholds is let through without reading anything. Only
// above them are the new versions sampled (the first 4 KiB, on the source)
// and the committed ones (through `sample_old`: the replica's
// SampleContent). Pure function of its inputs; thread-safe.
#ifndef GWMIRROR_NODE_SOURCE_ANOMALY_GUARD_H_
#define GWMIRROR_NODE_SOURCE_ANOMALY_GUARD_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/entropy.h"
#include "common/manifest.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// How the guard's error message starts.
inline constexpr char kAnomalyHeld[] = "anomaly held";

// A file of the change set as the guard sees it: its committed version
// (`old`) and the one the cut would commit (`now`), at the same path
// (rewritten) or at a new one (renamed to a new extension).
struct ChangedVersion {
  const Entry* old;
  const Entry* now;
};

// The rewritten and renamed regular files from `base` to `next`. A rename
// is a deleted path P with an added path P.<ext> or <stem of P>.<ext> in
// the same folder, where <ext> is not a compression suffix (gz, bz2, xz,
// zst, zip: compressing a rotated log is not an attack).
std::vector<ChangedVersion> RewrittenOrRenamed(const Manifest& base,
                                               const Manifest& next);

// How each entry's first kEntropySample bytes look, in order; a default
// ContentLook (-1) for one that could not be sampled (gone, or not the
// version named).
using ContentSampler = std::function<absl::StatusOr<std::vector<ContentLook>>(
    const std::vector<const Entry*>&)>;

// Whether a file whose committed version looks like `old` and whose new
// one like `now` looks encrypted: its new sample is at least 16 bytes and
// either near random (above HighEntropyAbove) with at least `rise` bits
// per byte more entropy than before, or text (at least 95 % text bytes)
// turned into binary (under 75 %).
bool LooksEncrypted(const ContentLook& old, const ContentLook& now,
                    double rise);

// OK, or FAILED_PRECONDITION "anomaly held: ..." (marked as a hold:
// IsHeld) when the change set trips `guard` (config.proto AnomalyGuard,
// defaults applied here): at least min_files and min_percent % of the
// slot's files rewritten or renamed, and at least half of those sampled
// (and min_files, scaled back) LooksEncrypted. At most 2000 files are
// sampled, spread evenly.
absl::Status CheckAnomaly(const Manifest& base, const Manifest& next,
                          const gwmirror::v1::AnomalyGuard& guard,
                          const ContentSampler& sample_new,
                          const ContentSampler& sample_old);

// Whether `st` is the guard holding a cut.
bool IsAnomalyHeld(const absl::Status& st);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_ANOMALY_GUARD_H_
