#include "common/manifest.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/le.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr absl::string_view kMagic = "GWM1";
constexpr absl::string_view kFileMagic = "GWMF";
// Each entry: type, mode, uid, gid, mtime, size, path length (31 bytes),
// the path, sha256 length, the sha256, link length, the link.
constexpr size_t kEntryFixedBytes = 31 + 1 + 2;

// What FromCheckedEntries and Edit are promised (checked in debug builds;
// a source's manifests may hold pending digests).
void AssertChecked(const std::vector<Entry>& entries) {
#ifndef NDEBUG
  for (size_t i = 0; i < entries.size(); ++i) {
    assert(ValidateEntry(entries[i], Digests::kMayBePending).ok());
    assert(i == 0 || entries[i - 1].path() < entries[i].path());
  }
#else
  (void)entries;
#endif
}

std::string ParentOf(absl::string_view path) {
  size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? ""
                                          : std::string(path.substr(0, slash));
}

}  // namespace

absl::Status ValidateEntry(const Entry& e, Digests digests) {
  RETURN_IF_ERROR(ValidateRelativePath(e.path()));
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry \"", e.path(), "\": ", why));
  };
  if (e.mode() > 07777) return bad("mode has bits outside 07777");
  switch (e.type()) {
    case gwmirror::v1::ENTRY_TYPE_FILE:
      if (e.sha256().size() != 32 &&
          (digests == Digests::kRequired || !e.sha256().empty())) {
        return bad("file without a 32-byte sha256");
      }
      if (!e.link_target().empty()) return bad("file with a link target");
      break;
    case gwmirror::v1::ENTRY_TYPE_DIRECTORY:
      if (!e.sha256().empty() || e.size() != 0 || !e.link_target().empty()) {
        return bad("directory with content fields");
      }
      break;
    case gwmirror::v1::ENTRY_TYPE_SYMLINK:
      if (e.link_target().empty()) return bad("symlink without a target");
      if (e.link_target().size() > 4095) return bad("symlink target too long");
      if (e.link_target().find('\0') != std::string::npos) {
        return bad("symlink target contains NUL");
      }
      if (!e.sha256().empty() || e.size() != 0) {
        return bad("symlink with content fields");
      }
      break;
    default:
      return bad("unknown entry type");
  }
  return absl::OkStatus();
}

bool SameContent(const Entry& a, const Entry& b) {
  return a.type() == b.type() && a.sha256() == b.sha256() &&
         a.size() == b.size() && a.link_target() == b.link_target();
}

bool SameEntry(const Entry& a, const Entry& b) {
  return SameContent(a, b) && a.mode() == b.mode() && a.uid() == b.uid() &&
         a.gid() == b.gid() && a.mtime_ns() == b.mtime_ns();
}

absl::StatusOr<Manifest> Manifest::FromEntries(std::vector<Entry> entries,
                                               Digests digests) {
  auto by_path = [](const Entry& a, const Entry& b) {
    return a.path() < b.path();
  };
  // Scans hand over their entries sorted already.
  if (!std::is_sorted(entries.begin(), entries.end(), by_path)) {
    std::sort(entries.begin(), entries.end(), by_path);
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    RETURN_IF_ERROR(ValidateEntry(entries[i], digests));
    if (i > 0 && entries[i].path() == entries[i - 1].path()) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate manifest path \"", entries[i].path(), "\""));
    }
  }
  return FromBlock(std::move(entries));
}

Manifest Manifest::FromCheckedEntries(std::vector<Entry> entries) {
  AssertChecked(entries);
  return FromBlock(std::move(entries));
}

Manifest Manifest::FromBlock(Block entries) {
  auto body = std::make_shared<Body>();
  auto block = std::make_shared<const Block>(std::move(entries));
  body->index.reserve(block->size());
  for (const Entry& e : *block) body->index.push_back(&e);
  body->stored = block->size();
  if (!block->empty()) body->blocks.push_back(std::move(block));
  Manifest m;
  m.body_ = std::move(body);
  return m;
}

Manifest Manifest::Edit(const Manifest& base, std::vector<Entry> set,
                        const std::vector<std::string>& removed) {
  AssertChecked(set);
#ifndef NDEBUG
  for (size_t i = 0; i < removed.size(); ++i) {
    assert(i == 0 || removed[i - 1] < removed[i]);
    assert(base.Find(removed[i]) != nullptr);
  }
#endif
  const Entries old = base.entries();
  auto block = std::make_shared<const Block>(std::move(set));
  auto body = std::make_shared<Body>();
  body->index.reserve(old.size() + block->size());
  size_t i = 0, j = 0, k = 0;
  while (i < old.size() || j < block->size()) {
    if (j == block->size() ||
        (i < old.size() && old[i].path() < (*block)[j].path())) {
      if (k < removed.size() && removed[k] == old[i].path()) {
        ++k;
      } else {
        body->index.push_back(&old[i]);
      }
      ++i;
      continue;
    }
    if (i < old.size() && old[i].path() == (*block)[j].path()) ++i;
    body->index.push_back(&(*block)[j++]);
  }
  assert(k == removed.size());
  const size_t stored =
      (base.body_ == nullptr ? 0 : base.body_->stored) + block->size();
  // Blocks stay while one of their entries does: once they hold more than
  // twice what is live, the live entries move to one new block (a copy now
  // and then, amortized over the edits that made the garbage).
  if (stored > 2 * body->index.size() + 1024) {
    Block live;
    live.reserve(body->index.size());
    for (const Entry* e : body->index) live.push_back(*e);
    return FromBlock(std::move(live));
  }
  if (base.body_ != nullptr) body->blocks = base.body_->blocks;
  if (!block->empty()) body->blocks.push_back(std::move(block));
  body->stored = stored;
  Manifest m;
  m.body_ = std::move(body);
  return m;
}

Manifest::Entries Manifest::entries() const {
  if (body_ == nullptr) return Entries(nullptr, 0);
  return Entries(body_->index.data(), body_->index.size());
}

const Entry* Manifest::Find(absl::string_view path) const {
  const Entries v = entries();
  auto it = std::lower_bound(
      v.begin(), v.end(), path,
      [](const Entry& e, absl::string_view p) { return e.path() < p; });
  return it != v.end() && it->path() == path ? &*it : nullptr;
}

size_t Manifest::EncodedSize() const {
  size_t n = kMagic.size() + 8;
  for (const Entry& e : entries()) {
    n += kEntryFixedBytes + e.path().size() + e.sha256().size() +
         e.link_target().size();
  }
  return n;
}

void Manifest::EncodeInPieces(
    absl::FunctionRef<void(absl::string_view)> emit) const {
  // Little-endian stores into a buffer sized per entry: a byte-wise append
  // per field was most of the cost of hashing a 19,000-entry manifest.
  constexpr size_t kPiece = 64 << 10;
  std::string out;
  out.reserve(kPiece + 8192);
  out.append(kMagic.data(), kMagic.size());
  PutLe<uint64_t>(&out, entries().size());
  auto copy = [](char* p, const std::string& s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return p + s.size();
  };
  for (const Entry& e : entries()) {
    const size_t at = out.size();
    out.resize(at + kEntryFixedBytes + e.path().size() + e.sha256().size() +
               e.link_target().size());
    char* p = out.data() + at;
    p = StoreLe<uint8_t>(p, e.type());
    p = StoreLe<uint32_t>(p, e.mode());
    p = StoreLe<uint32_t>(p, e.uid());
    p = StoreLe<uint32_t>(p, e.gid());
    p = StoreLe<int64_t>(p, e.mtime_ns());
    p = StoreLe<uint64_t>(p, e.size());
    p = StoreLe<uint16_t>(p, e.path().size());
    p = copy(p, e.path());
    p = StoreLe<uint8_t>(p, e.sha256().size());
    p = copy(p, e.sha256());
    p = StoreLe<uint16_t>(p, e.link_target().size());
    copy(p, e.link_target());
    if (out.size() >= kPiece) {
      emit(out);
      out.clear();
    }
  }
  if (!out.empty()) emit(out);
}

std::string Manifest::Encode() const {
  std::string out;
  out.reserve(EncodedSize());
  EncodeInPieces(
      [&](absl::string_view piece) { out.append(piece.data(), piece.size()); });
  return out;
}

Digest Manifest::ComputeDigest() const {
  auto compute = [this] {
    Sha256 h;
    EncodeInPieces([&](absl::string_view piece) { h.Update(piece); });
    return h.Finish();
  };
  if (body_ == nullptr) return compute();
  absl::call_once(body_->digest_once, [&] { body_->digest = compute(); });
  return body_->digest;
}

absl::StatusOr<Manifest> Manifest::Decode(absl::string_view data) {
  auto corrupt = [](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("manifest: ", why));
  };
  if (data.substr(0, kMagic.size()) != kMagic) return corrupt("bad magic");
  LeReader r(data.substr(kMagic.size()));
  uint64_t n = 0;
  if (!r.Get(&n)) return corrupt("truncated count");
  // Each entry takes at least 34 bytes; a count beyond that is a lie.
  if (n > data.size() / 34) return corrupt("entry count exceeds data");
  std::vector<Entry> entries;
  entries.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint8_t type, sha_len;
    uint32_t mode, uid, gid;
    int64_t mtime;
    uint64_t size;
    uint16_t path_len, link_len;
    std::string path, sha, link;
    if (!r.Get(&type) || !r.Get(&mode) || !r.Get(&uid) || !r.Get(&gid) ||
        !r.Get(&mtime) || !r.Get(&size) || !r.Get(&path_len) ||
        !r.Bytes(path_len, &path) || !r.Get(&sha_len) ||
        !r.Bytes(sha_len, &sha) || !r.Get(&link_len) ||
        !r.Bytes(link_len, &link)) {
      return corrupt(absl::StrCat("truncated at entry ", i));
    }
    Entry e;
    e.set_type(static_cast<gwmirror::v1::EntryType>(type));
    e.set_mode(mode);
    e.set_uid(uid);
    e.set_gid(gid);
    e.set_mtime_ns(mtime);
    e.set_size(size);
    e.set_path(std::move(path));
    e.set_sha256(std::move(sha));
    e.set_link_target(std::move(link));
    entries.push_back(std::move(e));
  }
  if (!r.empty()) return corrupt("trailing bytes");
  absl::StatusOr<Manifest> m = FromEntries(std::move(entries));
  if (!m.ok()) return corrupt(m.status().message());
  return m;
}

absl::Status Manifest::CheckStructure(
    const std::vector<std::string>& roots) const {
  // Siblings sit together in path order: one lookup serves them all.
  std::string checked_parent;
  bool have_checked = false;
  for (const Entry& e : entries()) {
    bool inside = false;
    for (const std::string& root : roots) {
      if (e.path() != root && PathIsWithin(e.path(), root)) inside = true;
    }
    if (!inside) {
      return absl::PermissionDeniedError(absl::StrCat(
          "entry \"", e.path(), "\" lies outside every mirrored root"));
    }
    std::string parent = ParentOf(e.path());
    if (have_checked && parent == checked_parent) continue;
    if (std::find(roots.begin(), roots.end(), parent) == roots.end()) {
      const Entry* p = Find(parent);
      if (p == nullptr || p->type() != gwmirror::v1::ENTRY_TYPE_DIRECTORY) {
        return absl::InvalidArgumentError(absl::StrCat(
            "entry \"", e.path(), "\" has no directory entry for its parent"));
      }
    }
    checked_parent = std::move(parent);
    have_checked = true;
  }
  return absl::OkStatus();
}

absl::Status WriteManifestFile(const std::string& path, uint64_t checkpoint,
                               const Manifest& m, Durability durability,
                               Env* env) {
  std::string out;
  out.reserve(kFileMagic.size() + 8 + m.EncodedSize() + 32);
  out.append(kFileMagic.data(), kFileMagic.size());
  PutLe<uint64_t>(&out, checkpoint);
  m.EncodeInPieces(
      [&](absl::string_view piece) { out.append(piece.data(), piece.size()); });
  out += DigestBytes(Sha256Of(out));
  return WriteFileAtomic(path, out, 0600, durability, env);
}

absl::StatusOr<ManifestFile> ReadManifestFile(const std::string& path,
                                              Env* env) {
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path, env));
  absl::string_view all(data);
  if (all.size() < kFileMagic.size() + 8 + 32 ||
      all.substr(0, kFileMagic.size()) != kFileMagic) {
    return absl::DataLossError(absl::StrCat(path, ": not a manifest file"));
  }
  absl::string_view sum = all.substr(all.size() - 32);
  all.remove_suffix(32);
  if (DigestBytes(Sha256Of(all)) != sum) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch"));
  }
  LeReader r(all.substr(kFileMagic.size()));
  ManifestFile f;
  r.Get(&f.checkpoint);
  ASSIGN_OR_RETURN(f.manifest,
                   Manifest::Decode(all.substr(kFileMagic.size() + 8)));
  return f;
}

}  // namespace gwmirror
