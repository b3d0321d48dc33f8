#include "common/manifest.h"

#include <map>
#include <random>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/manifest_edit.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

Entry File(const std::string& path, const std::string& content) {
  Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e.set_mode(04755);
  e.set_uid(1000);
  e.set_gid(100);
  e.set_mtime_ns(1700000000123456789LL);
  e.set_size(content.size());
  e.set_sha256(DigestBytes(Sha256Of(content)));
  return e;
}

Entry Dir(const std::string& path) {
  Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_DIRECTORY);
  e.set_mode(01777);
  return e;
}

Entry Link(const std::string& path, const std::string& target) {
  Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_SYMLINK);
  e.set_mode(0777);
  e.set_link_target(target);
  return e;
}

TEST(ManifestTest, EncodeDecodeRoundTripAndDigestIsStable) {
  auto m = Manifest::FromEntries(
      {File("r/b", "x"), Dir("r/a"), Link("r/a/l", "../b"), File("r/a/f", "")});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->entries()[0].path(), "r/a");
  auto back = Manifest::Decode(m->Encode());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Encode(), m->Encode());
  EXPECT_EQ(back->ComputeDigest(), m->ComputeDigest());
  EXPECT_TRUE(m->CheckStructure({"r"}).ok());
}

// Edit shares the base's entries and must give exactly the manifest that
// FromEntries builds from the same entries: random edits over many
// generations (past the compaction of dead blocks), each compared whole,
// digest and encoding included.
TEST(ManifestTest, EditsGiveWhatABuildFromScratchGives) {
  std::mt19937 rng(7);
  std::map<std::string, Entry> want;
  for (int i = 0; i < 300; ++i) {
    std::string p = absl::StrCat("r/f", i);
    want[p] = File(p, absl::StrCat(i));
  }
  std::vector<Entry> all;
  for (const auto& [p, e] : want) all.push_back(e);
  Manifest m = Manifest::FromCheckedEntries(all);
  int compacted = 0;
  for (int gen = 0; gen < 400; ++gen) {
    std::map<std::string, Entry> set;
    std::set<std::string> removed;
    const int changes = 1 + rng() % 12;
    for (int c = 0; c < changes; ++c) {
      std::string p = absl::StrCat("r/f", rng() % 400);
      if (rng() % 4 == 0 && want.count(p) && !set.count(p)) {
        removed.insert(p);
      } else if (!removed.count(p)) {
        set[p] = File(p, absl::StrCat(gen, "/", c));
      }
    }
    for (const std::string& p : removed) want.erase(p);
    for (const auto& [p, e] : set) want[p] = e;
    std::vector<Entry> set_v;
    for (const auto& [p, e] : set) set_v.push_back(e);
    const Manifest before = m;
    m = Manifest::Edit(
        m, std::move(set_v),
        std::vector<std::string>(removed.begin(), removed.end()));
    std::vector<Entry> fresh;
    for (const auto& [p, e] : want) fresh.push_back(e);
    auto built = Manifest::FromEntries(fresh);
    ASSERT_TRUE(built.ok());
    ASSERT_EQ(m.size(), built->size()) << "generation " << gen;
    ASSERT_EQ(m.Encode(), built->Encode()) << "generation " << gen;
    ASSERT_EQ(m.EncodedSize(), m.Encode().size());
    ASSERT_EQ(m.ComputeDigest(), built->ComputeDigest());
    for (const auto& [p, e] : want) {
      const Entry* got = m.Find(p);
      ASSERT_NE(got, nullptr) << p;
      ASSERT_TRUE(SameEntry(*got, e)) << p;
    }
    // Unchanged entries are the base's own, not copies (until a
    // compaction moves every live entry to one new block).
    size_t shared = 0;
    ForEachPath(before, m, [&](const Entry* o, const Entry* e) {
      shared += o != nullptr && o == e;
    });
    if (shared == 0 && m.size() > 0) ++compacted;
  }
  EXPECT_GT(compacted, 0) << "400 generations never compacted";
  EXPECT_LT(compacted, 10);
  // The base of an edit stays whole after the edit.
  const Manifest base = m;
  const std::string base_bytes = base.Encode();
  Manifest edited = Manifest::Edit(base, {File("r/new", "n")}, {});
  EXPECT_EQ(base.Encode(), base_bytes);
  EXPECT_EQ(edited.size(), base.size() + 1);
}

TEST(ManifestTest, AnEditRoundTripsAndRefusesDamage) {
  const Manifest a = *Manifest::FromEntries(
      {Dir("r/a"), File("r/a/f", "1"), File("r/b", "2"), Link("r/l", "b")});
  const Manifest b =
      *Manifest::FromEntries({Dir("r/a"), File("r/a/f", "1 changed"),
                              Link("r/l", "a"), File("r/new", "3")});
  ManifestEdit e = DiffManifests(a, b, 12);
  EXPECT_EQ(e.removed, std::vector<std::string>{"r/b"});
  ASSERT_EQ(e.set.size(), 3u);
  const std::string bytes = EncodeManifestEdit(e);
  auto back = DecodeManifestEdit(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint, 12u);
  EXPECT_EQ(back->digest, DigestBytes(b.ComputeDigest()));
  EXPECT_EQ(back->base_digest, DigestBytes(a.ComputeDigest()));
  auto applied = ApplyManifestEdit(a, *back);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->Encode(), b.Encode());
  // Any byte changed or cut: refused by name, never misread.
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    EXPECT_EQ(DecodeManifestEdit(bad).status().code(),
              absl::StatusCode::kDataLoss);
    EXPECT_FALSE(DecodeManifestEdit(bytes.substr(0, i)).ok());
  }
  // On a base that lacks a removed path: refused.
  EXPECT_EQ(ApplyManifestEdit(b, *back).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The canonical encoding, byte for byte (docs/ARCHITECTURE.md, "Manifest
// format"): digests on disk and on the wire depend on it.
TEST(ManifestTest, TheEncodingIsTheDocumentedOne) {
  Entry e = File("r/f", "x");
  e.set_mode(0640);
  e.set_uid(0x01020304);
  e.set_gid(7);
  e.set_mtime_ns(0x1122334455667788LL);
  e.set_size(9);
  const Manifest m = *Manifest::FromEntries({e, Link("r/l", "f")});
  std::string want("GWM1\x02\0\0\0\0\0\0\0", 12);
  want += std::string("\x01\xa0\x01\0\0\x04\x03\x02\x01\x07\0\0\0", 13);
  want += std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8);
  want += std::string("\x09\0\0\0\0\0\0\0\x03\0r/f\x20", 14);
  want += e.sha256();
  want += std::string("\0\0", 2);
  want += std::string("\x03\xff\x01\0\0\0\0\0\0\0\0\0\0", 13);
  want += std::string(16, '\0');
  want += std::string("\x03\0r/l\0\x01\0f", 9);
  EXPECT_EQ(absl::BytesToHexString(m.Encode()), absl::BytesToHexString(want));
  EXPECT_EQ(m.EncodedSize(), want.size());
}

TEST(ManifestTest, RefusesBadEntries) {
  Entry bad_mode = File("r/x", "1");
  bad_mode.set_mode(010000);
  Entry no_sha = File("r/x", "1");
  no_sha.clear_sha256();
  Entry unknown = Dir("r/x");
  unknown.set_type(static_cast<gwmirror::v1::EntryType>(9));
  for (const Entry& e : {bad_mode, no_sha, unknown, File("../x", "1"),
                         File("/abs", "1"), Link("r/l", "")}) {
    EXPECT_EQ(Manifest::FromEntries({e}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << e.ShortDebugString();
  }
  EXPECT_FALSE(
      Manifest::FromEntries({File("r/x", "1"), File("r/x", "2")}).ok());
}

TEST(ManifestTest, StructureNeedsRootsAndParents) {
  auto outside = Manifest::FromEntries({File("etc/passwd", "x")});
  EXPECT_EQ(outside->CheckStructure({"r"}).code(),
            absl::StatusCode::kPermissionDenied);
  auto orphan = Manifest::FromEntries({File("r/d/x", "x")});
  EXPECT_EQ(orphan->CheckStructure({"r"}).code(),
            absl::StatusCode::kInvalidArgument);
  auto under_file =
      Manifest::FromEntries({File("r/d", "x"), File("r/d/x", "y")});
  EXPECT_FALSE(under_file->CheckStructure({"r"}).ok());
  auto root_itself = Manifest::FromEntries({Dir("r")});
  EXPECT_FALSE(root_itself->CheckStructure({"r"}).ok());
}

TEST(ManifestTest, DecodeRefusesGarbageAndTruncation) {
  auto m = Manifest::FromEntries({File("r/a", "x"), Dir("r/d")});
  std::string enc = m->Encode();
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_FALSE(Manifest::Decode(enc.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(Manifest::Decode(enc + "x").ok());
}

TEST(ManifestTest, FileRoundTripAndChecksum) {
  testing::TempDir dir;
  auto m = Manifest::FromEntries({File("r/a", "x")});
  ASSERT_TRUE(WriteManifestFile(dir / "m", 42, *m).ok());
  auto back = ReadManifestFile(dir / "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint, 42u);
  EXPECT_EQ(back->manifest.Encode(), m->Encode());
  std::string raw = testing::ReadFile(dir / "m");
  raw[10] ^= 1;
  testing::WriteFile(dir / "m", raw);
  EXPECT_EQ(ReadManifestFile(dir / "m").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace gwmirror
