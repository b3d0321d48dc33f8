#include "common/manifest_delta.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace gwmirror {

uint64_t EntryBytes(const Entry& e) {
  return sizeof(Entry) + e.path().size() + e.sha256().size() +
         e.link_target().size();
}

absl::Status EncodeManifestDelta(
    const Manifest& base, const Manifest& next, size_t per_part,
    const std::function<absl::Status(gwmirror::v1::ManifestPart)>& emit) {
  gwmirror::v1::ManifestPart part;
  absl::Status st;
  ForEachPath(base, next, [&](const Entry* old, const Entry* now) {
    if (!st.ok() || (old != nullptr && now != nullptr && SameEntry(*old, *now)))
      return;
    if (now != nullptr) {
      *part.add_entries() = *now;
    } else {
      part.add_removed(old->path());
    }
    if (static_cast<size_t>(part.entries_size() + part.removed_size()) >=
        per_part) {
      st = emit(std::move(part));
      part.Clear();
    }
  });
  RETURN_IF_ERROR(st);
  if (part.entries_size() + part.removed_size() > 0) {
    return emit(std::move(part));
  }
  return absl::OkStatus();
}

ManifestDeltaDecoder::ManifestDeltaDecoder(
    bool delta, uint64_t max_bytes,
    std::function<absl::Status(const Entry&)> admit)
    : delta_(delta), max_bytes_(max_bytes), admit_(std::move(admit)) {}

absl::Status ManifestDeltaDecoder::Add(const gwmirror::v1::ManifestPart& part) {
  if (!delta_ && part.removed_size() > 0) {
    return absl::InvalidArgumentError(
        "removed paths in a push that sends the whole manifest");
  }
  uint64_t bytes = bytes_;
  for (const Entry& e : part.entries()) {
    RETURN_IF_ERROR(ValidateEntry(e));
    if (admit_) RETURN_IF_ERROR(admit_(e));
    bytes += EntryBytes(e);
  }
  for (const std::string& p : part.removed()) {
    RETURN_IF_ERROR(ValidateRelativePath(p));
    bytes += sizeof(std::string) + p.size();
  }
  if (bytes > max_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the pushed manifest exceeds this replica's limit of ",
                     max_bytes_, " bytes (replica.max_push_manifest_bytes)"));
  }
  bytes_ = bytes;
  entries_.insert(entries_.end(), part.entries().begin(), part.entries().end());
  removed_.insert(removed_.end(), part.removed().begin(), part.removed().end());
  return absl::OkStatus();
}

absl::StatusOr<Manifest> ManifestDeltaDecoder::Finish(
    const Manifest& base, absl::string_view digest) {
  Manifest m;
  if (!delta_) {
    ASSIGN_OR_RETURN(m, Manifest::FromEntries(std::move(entries_)));
  } else {
    // The base with new and changed entries replacing theirs and removed
    // paths gone; the base's entries are shared, not copied, and only the
    // delta's are checked (the base's were when it was built).
    auto by_path = [](const Entry& a, const Entry& b) {
      return a.path() < b.path();
    };
    std::vector<Entry> changed = std::move(entries_);
    std::sort(changed.begin(), changed.end(), by_path);
    for (size_t i = 0; i < changed.size(); ++i) {
      RETURN_IF_ERROR(ValidateEntry(changed[i]));
      if (i > 0 && changed[i].path() == changed[i - 1].path()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "duplicate manifest path \"", changed[i].path(), "\""));
      }
    }
    auto in_changed = [&](const std::string& p) {
      auto it = std::lower_bound(
          changed.begin(), changed.end(), p,
          [](const Entry& e, const std::string& q) { return e.path() < q; });
      return it != changed.end() && it->path() == p;
    };
    std::vector<std::string> removed = std::move(removed_);
    std::sort(removed.begin(), removed.end());
    removed.erase(std::unique(removed.begin(), removed.end()), removed.end());
    for (const std::string& p : removed) {
      if (base.Find(p) == nullptr || in_changed(p)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "manifest delta removes \"", p.substr(0, 200),
            "\", which the base does not hold or the delta also sets"));
      }
    }
    m = Manifest::Edit(base, std::move(changed), removed);
  }
  std::string computed = DigestBytes(m.ComputeDigest());
  if (computed != digest) {
    return absl::DataLossError(absl::StrCat(
        "manifest digest mismatch: received entries hash to ",
        HexOf(computed).substr(0, 16), "..., the source announced ",
        HexOf(digest).substr(0, 16), "..."));
  }
  return m;
}

absl::Status ManifestAssembler::Add(gwmirror::v1::ManifestBatch batch) {
  uint64_t bytes = bytes_;
  for (const Entry& e : batch.entries()) {
    RETURN_IF_ERROR(ValidateEntry(e));
    bytes += EntryBytes(e);
  }
  if (bytes > max_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the replica's manifest exceeds ", max_bytes_,
        " bytes: more than any mirror set this source would send"));
  }
  bytes_ = bytes;
  for (Entry& e : *batch.mutable_entries()) entries_.push_back(std::move(e));
  return absl::OkStatus();
}

absl::StatusOr<Manifest> ManifestAssembler::Finish(absl::string_view digest) {
  ASSIGN_OR_RETURN(Manifest m, Manifest::FromEntries(std::move(entries_)));
  if (DigestBytes(m.ComputeDigest()) != digest) {
    return absl::AbortedError(
        "the replica's manifest changed while it was read; retry");
  }
  return m;
}

}  // namespace gwmirror
