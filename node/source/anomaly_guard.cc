#include "node/source/anomaly_guard.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/entropy.h"
#include "node/source/deletion_guard.h"

namespace gwmirror {
namespace {

constexpr size_t kMaxSampled = 2000;

bool IsFile(const Entry* e) {
  return e != nullptr && e->type() == gwmirror::v1::ENTRY_TYPE_FILE;
}

// "a/b/name.ext" -> "a/b/name" (the whole path when the name has no dot).
std::string Stem(absl::string_view path) {
  size_t slash = path.rfind('/');
  size_t dot = path.rfind('.');
  if (dot == absl::string_view::npos ||
      (slash != absl::string_view::npos && dot < slash) ||
      dot == (slash == absl::string_view::npos ? 0 : slash + 1)) {
    return std::string(path);
  }
  return std::string(path.substr(0, dot));
}

bool CompressionSuffix(absl::string_view path) {
  std::string p = absl::AsciiStrToLower(path);
  for (const char* ext : {".gz", ".bz2", ".xz", ".zst", ".zip"}) {
    if (absl::EndsWith(p, ext)) return true;
  }
  return false;
}

}  // namespace

std::vector<ChangedVersion> RewrittenOrRenamed(const Manifest& base,
                                               const Manifest& next) {
  std::vector<ChangedVersion> out;
  std::vector<const Entry*> deleted, added;
  ForEachPath(base, next, [&](const Entry* old, const Entry* now) {
    if (IsFile(old) && IsFile(now)) {
      if (old->sha256() != now->sha256()) out.push_back({old, now});
    } else if (IsFile(old) && now == nullptr) {
      deleted.push_back(old);
    } else if (old == nullptr && IsFile(now)) {
      added.push_back(now);
    }
  });
  if (deleted.empty() || added.empty()) return out;
  // Deleted files by their path and by their stem.
  std::map<std::string, const Entry*> by_key;
  for (const Entry* d : deleted) {
    by_key.emplace(d->path(), d);
    by_key.emplace(Stem(d->path()), d);
  }
  std::set<const Entry*> paired;  // Each deleted file renamed once at most.
  for (const Entry* a : added) {
    if (CompressionSuffix(a->path())) continue;
    const std::string stem = Stem(a->path());
    if (stem == a->path()) continue;  // No extension: not a rename to one.
    auto it = by_key.find(stem);
    if (it == by_key.end() || !paired.insert(it->second).second) continue;
    out.push_back({it->second, a});
  }
  return out;
}

bool LooksEncrypted(const ContentLook& old, const ContentLook& now,
                    double rise) {
  // An empty or tiny version says nothing about what the file was.
  if (now.bytes < 16 || old.bytes < 16 || old.entropy < 0 || now.entropy < 0) {
    return false;
  }
  const bool random = now.entropy > HighEntropyAbove(now.bytes) &&
                      now.entropy - old.entropy >= rise;
  const bool text_to_binary = old.text >= 0.95 && now.text < 0.75;
  return random || text_to_binary;
}

absl::Status CheckAnomaly(const Manifest& base, const Manifest& next,
                          const gwmirror::v1::AnomalyGuard& guard,
                          const ContentSampler& sample_new,
                          const ContentSampler& sample_old) {
  if (guard.off()) return absl::OkStatus();
  const size_t min_files = guard.min_files() > 0 ? guard.min_files() : 20;
  const double min_share =
      (guard.min_percent() > 0 ? guard.min_percent() : 10) / 100.0;
  const double rise =
      guard.entropy_rise_bits() > 0 ? guard.entropy_rise_bits() : 2.0;
  // The common case, without reading anything.
  const std::vector<ChangedVersion> changed = RewrittenOrRenamed(base, next);
  if (changed.size() < min_files) return absl::OkStatus();
  size_t files = 0;
  for (const Entry& e : base.entries())
    files += e.type() == gwmirror::v1::ENTRY_TYPE_FILE;
  if (changed.size() < min_share * files) return absl::OkStatus();

  // Sample at most kMaxSampled, spread evenly over the change set.
  std::vector<const Entry*> olds, nows;
  const size_t step = (changed.size() + kMaxSampled - 1) / kMaxSampled;
  for (size_t i = 0; i < changed.size(); i += step) {
    olds.push_back(changed[i].old);
    nows.push_back(changed[i].now);
  }
  absl::StatusOr<std::vector<ContentLook>> now_s = sample_new(nows);
  if (!now_s.ok()) return now_s.status();
  absl::StatusOr<std::vector<ContentLook>> old_s = sample_old(olds);
  if (!old_s.ok()) return old_s.status();
  if (now_s->size() != nows.size() || old_s->size() != olds.size()) {
    return absl::InternalError("entropy samples do not match their files");
  }
  size_t sampled = 0, suspicious = 0;
  double old_sum = 0, new_sum = 0;
  int64_t first_ns = INT64_MAX, last_ns = INT64_MIN;
  std::vector<std::string> examples;
  for (size_t i = 0; i < nows.size(); ++i) {
    const ContentLook& o = (*old_s)[i];
    const ContentLook& n = (*now_s)[i];
    if (o.entropy < 0 || n.entropy < 0) continue;
    ++sampled;
    if (LooksEncrypted(o, n, rise)) {
      ++suspicious;
      old_sum += o.entropy;
      new_sum += n.entropy;
      first_ns = std::min(first_ns, nows[i]->mtime_ns());
      last_ns = std::max(last_ns, nows[i]->mtime_ns());
      if (examples.size() < 3) {
        examples.push_back(
            nows[i]->path() == olds[i]->path()
                ? nows[i]->path()
                : absl::StrCat(olds[i]->path(), " -> ", nows[i]->path()));
      }
    }
  }
  // Scaled back to the whole change set when only part was sampled.
  const size_t suspicious_files = suspicious * step;
  if (sampled == 0 || suspicious_files < min_files ||
      2 * suspicious < sampled) {
    return absl::OkStatus();
  }
  return HeldStatus(
      "anomaly",
      absl::StrFormat(
          "%s: %d files rewritten %s, entropy up from %.1f to %.1f "
          "bits per byte: they look encrypted (%d of the slot's %d files "
          "changed in this cut; e.g. %s). Nothing of it was committed on the "
          "standby. If this is intended, run `gwmirror release --slot "
          "<slot>`; otherwise stop what writes them and restore the files",
          kAnomalyHeld, suspicious_files,
          last_ns - first_ns < 100'000'000
              ? std::string("within 0.1 s")
              : absl::StrFormat("in %.1f s", (last_ns - first_ns) / 1e9),
          old_sum / suspicious, new_sum / suspicious, changed.size(), files,
          absl::StrJoin(examples, ", ")));
}

bool IsAnomalyHeld(const absl::Status& st) { return HeldKind(st) == "anomaly"; }

}  // namespace gwmirror
