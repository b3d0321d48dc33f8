#include "common/manifest_edit.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/le.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr absl::string_view kMagic = "GWME";

}  // namespace

ManifestEdit DiffManifests(const Manifest& base, const Manifest& next,
                           uint64_t checkpoint) {
  ManifestEdit e;
  e.checkpoint = checkpoint;
  e.base_digest = DigestBytes(base.ComputeDigest());
  e.digest = DigestBytes(next.ComputeDigest());
  ForEachPath(base, next, [&](const Entry* o, const Entry* n) {
    if (n == nullptr) {
      e.removed.push_back(o->path());
    } else if (o != n && (o == nullptr || !SameEntry(*o, *n))) {
      e.set.push_back(*n);
    }
  });
  return e;
}

std::string EncodeManifestEdit(const ManifestEdit& e) {
  std::string out(kMagic.data(), kMagic.size());
  PutLe<uint64_t>(&out, e.checkpoint);
  out += e.base_digest;
  out += e.digest;
  PutLe<uint64_t>(&out, e.removed.size());
  for (const std::string& p : e.removed) {
    PutLe<uint16_t>(&out, p.size());
    out += p;
  }
  out += Manifest::FromCheckedEntries(e.set).Encode();
  out += DigestBytes(Sha256Of(out));
  return out;
}

absl::StatusOr<ManifestEdit> DecodeManifestEdit(absl::string_view data) {
  auto bad = [](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("manifest edit: ", why));
  };
  if (data.size() < kMagic.size() + 8 + 32 + 32 + 8 + 32 ||
      data.substr(0, kMagic.size()) != kMagic) {
    return bad("not a manifest edit");
  }
  absl::string_view sum = data.substr(data.size() - 32);
  data.remove_suffix(32);
  if (DigestBytes(Sha256Of(data)) != sum) return bad("checksum mismatch");
  LeReader r(data.substr(kMagic.size()));
  ManifestEdit e;
  uint64_t removed = 0;
  r.Get(&e.checkpoint);
  r.Bytes(32, &e.base_digest);
  r.Bytes(32, &e.digest);
  if (!r.Get(&removed) || removed > r.size() / 2) {
    return bad("removed count exceeds the data");
  }
  e.removed.reserve(removed);
  for (uint64_t i = 0; i < removed; ++i) {
    uint16_t len = 0;
    std::string p;
    if (!r.Get(&len) || !r.Bytes(len, &p)) {
      return bad(absl::StrCat("truncated at removed path ", i));
    }
    if (absl::Status st = ValidateRelativePath(p); !st.ok()) {
      return bad(st.message());
    }
    if (!e.removed.empty() && !(e.removed.back() < p)) {
      return bad("removed paths not sorted and unique");
    }
    e.removed.push_back(std::move(p));
  }
  absl::StatusOr<Manifest> set = Manifest::Decode(r.rest());
  if (!set.ok()) return bad(set.status().message());
  e.set.assign(set->entries().begin(), set->entries().end());
  return e;
}

absl::StatusOr<Manifest> ApplyManifestEdit(const Manifest& base,
                                           const ManifestEdit& e) {
  for (const std::string& p : e.removed) {
    auto in_set = std::lower_bound(
        e.set.begin(), e.set.end(), p,
        [](const Entry& x, const std::string& q) { return x.path() < q; });
    if (base.Find(p) == nullptr ||
        (in_set != e.set.end() && in_set->path() == p)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", e.checkpoint, "'s edit removes \"", p.substr(0, 200),
          "\", which its base does not hold or the edit also sets"));
    }
  }
  return Manifest::Edit(base, e.set, e.removed);
}

}  // namespace gwmirror
