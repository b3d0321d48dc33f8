#include "common/manifest_edit.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr absl::string_view kMagic = "GWME";

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out->push_back(static_cast<char>(v >> (8 * i)));
}

bool GetLe(absl::string_view* in, int bytes, uint64_t* v) {
  if (in->size() < static_cast<size_t>(bytes)) return false;
  *v = 0;
  for (int i = 0; i < bytes; ++i) {
    *v |= static_cast<uint64_t>(static_cast<unsigned char>((*in)[i]))
          << (8 * i);
  }
  in->remove_prefix(bytes);
  return true;
}

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
  PutLe(&out, e.checkpoint, 8);
  out += e.base_digest;
  out += e.digest;
  PutLe(&out, e.removed.size(), 8);
  for (const std::string& p : e.removed) {
    PutLe(&out, p.size(), 2);
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
  data.remove_prefix(kMagic.size());
  ManifestEdit e;
  uint64_t removed = 0;
  GetLe(&data, 8, &e.checkpoint);
  e.base_digest = std::string(data.substr(0, 32));
  e.digest = std::string(data.substr(32, 32));
  data.remove_prefix(64);
  if (!GetLe(&data, 8, &removed) || removed > data.size() / 2) {
    return bad("removed count exceeds the data");
  }
  e.removed.reserve(removed);
  for (uint64_t i = 0; i < removed; ++i) {
    uint64_t len = 0;
    if (!GetLe(&data, 2, &len) || data.size() < len) {
      return bad(absl::StrCat("truncated at removed path ", i));
    }
    std::string p(data.substr(0, len));
    data.remove_prefix(len);
    if (absl::Status st = ValidateRelativePath(p); !st.ok()) {
      return bad(st.message());
    }
    if (!e.removed.empty() && !(e.removed.back() < p)) {
      return bad("removed paths not sorted and unique");
    }
    e.removed.push_back(std::move(p));
  }
  absl::StatusOr<Manifest> set = Manifest::Decode(data);
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
