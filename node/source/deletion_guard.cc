#include "node/source/deletion_guard.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/path.h"

namespace gwmirror {
namespace {
constexpr char kHeldPayload[] = "type.gwmirror.dev/held";
}  // namespace

absl::Status CheckMassDeletion(const Manifest& base, const Manifest& next,
                               const std::vector<std::string>& roots,
                               double max_fraction) {
  size_t deleted_anywhere = 0;
  ForEachPath(base, next, [&](const Entry* old, const Entry* now) {
    deleted_anywhere += now == nullptr;
  });
  // The common case, in one pass: too few deletions to hold anything.
  if (deleted_anywhere < kMassDeletionMinEntries) return absl::OkStatus();
  std::vector<std::string> held;
  for (const std::string& root : roots) {
    size_t had = 0, deleted = 0, has = 0;
    for (const Entry& e : base.entries()) {
      if (!PathIsWithin(e.path(), root)) continue;
      ++had;
      if (next.Find(e.path()) == nullptr) ++deleted;
    }
    for (const Entry& e : next.entries()) has += PathIsWithin(e.path(), root);
    if (deleted < kMassDeletionMinEntries) continue;
    if (has == 0) {
      held.push_back(absl::StrCat(root, " would lose all of its ", had,
                                  " entries (is its disk mounted?)"));
    } else if (deleted > max_fraction * had) {
      held.push_back(
          absl::StrFormat("%s would lose %d of its %d entries (%.0f%%)", root,
                          deleted, had, 100.0 * deleted / had));
    }
  }
  if (held.empty()) return absl::OkStatus();
  return HeldStatus(
      "mass-deletion",
      absl::StrCat(kMassDeletionHeld, ": ", absl::StrJoin(held, "; "),
                   "; nothing was deleted on the standby. If this is "
                   "intended, run `gwmirror release --slot <slot>`; "
                   "otherwise restore the files"));
}

absl::Status HeldStatus(absl::string_view kind, const std::string& message) {
  absl::Status st = absl::FailedPreconditionError(message);
  st.SetPayload(kHeldPayload, absl::Cord(kind));
  return st;
}

bool IsHeld(const absl::Status& st) {
  return st.GetPayload(kHeldPayload).has_value();
}

std::string HeldKind(const absl::Status& st) {
  auto kind = st.GetPayload(kHeldPayload);
  return kind.has_value() ? std::string(*kind) : "";
}

}  // namespace gwmirror
