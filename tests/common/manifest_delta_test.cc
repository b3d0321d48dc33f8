// The manifest on the wire: decode(encode(x)) == x over awkward part
// sizes, and the decoders' bounds and checks.
#include "common/manifest_delta.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

Entry File(const std::string& path, const std::string& content) {
  Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e.set_mode(0644);
  e.set_size(content.size());
  e.set_sha256(DigestBytes(Sha256Of(content)));
  return e;
}

Manifest Of(std::vector<Entry> entries) {
  auto m = Manifest::FromEntries(std::move(entries));
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

TEST(ManifestDeltaTest, DecodeOfEncodeIsTheNextManifestForEveryPartSize) {
  std::vector<Entry> base_entries, next_entries;
  for (int i = 0; i < 50; ++i) {
    base_entries.push_back(File(absl::StrCat("r/f", 100 + i), "old"));
    if (i % 3 == 0) continue;  // Removed.
    next_entries.push_back(
        File(absl::StrCat("r/f", 100 + i), i % 5 == 0 ? "changed" : "old"));
  }
  for (int i = 0; i < 7; ++i) {
    next_entries.push_back(File(absl::StrCat("r/new", i), "n"));
  }
  const Manifest base = Of(base_entries), next = Of(next_entries);
  const std::string digest = DigestBytes(next.ComputeDigest());
  for (size_t per_part : {1, 2, 7, 2000}) {
    ManifestDeltaDecoder decoder(true, 1 << 20, nullptr);
    int parts = 0;
    ASSERT_TRUE(EncodeManifestDelta(base, next, per_part,
                                    [&](gwmirror::v1::ManifestPart p) {
                                      ++parts;
                                      return decoder.Add(p);
                                    })
                    .ok());
    auto got = decoder.Finish(base, digest);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->entries().size(), next.entries().size());
    EXPECT_EQ(DigestBytes(got->ComputeDigest()), digest);
    EXPECT_GT(parts, 0);
  }
  // Nothing changed: no part at all.
  int parts = 0;
  ASSERT_TRUE(
      EncodeManifestDelta(next, next, 2000, [&](gwmirror::v1::ManifestPart) {
        ++parts;
        return absl::OkStatus();
      }).ok());
  EXPECT_EQ(parts, 0);
}

TEST(ManifestDeltaTest, DecodersRefuseBadEntriesAndHoldNoMoreThanTheirBound) {
  ManifestDeltaDecoder decoder(true, 4096, [](const Entry& e) {
    return absl::StartsWith(e.path(), "r/")
               ? absl::OkStatus()
               : absl::PermissionDeniedError(e.path());
  });
  gwmirror::v1::ManifestPart part;
  *part.add_entries() = File("etc/evil", "x");
  EXPECT_TRUE(absl::IsPermissionDenied(decoder.Add(part)));
  part.Clear();
  part.add_removed("r/../x");
  EXPECT_TRUE(absl::IsInvalidArgument(decoder.Add(part)));
  EXPECT_EQ(decoder.bytes(), 0u) << "nothing of a refused part is kept";
  absl::Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) {
    part.Clear();
    *part.add_entries() =
        File(absl::StrCat("r/", std::string(200, 'a'), i), "");
    st = decoder.Add(part);
  }
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_LE(decoder.bytes(), 4096u);

  ManifestAssembler assembler(4096);
  gwmirror::v1::ManifestBatch batch;
  for (int i = 0; i < 100; ++i) {
    *batch.add_entries() = File(absl::StrCat("r/", i), "");
  }
  EXPECT_TRUE(absl::IsResourceExhausted(assembler.Add(batch)));
  ManifestAssembler small(1 << 20);
  ASSERT_TRUE(small.Add(batch).ok());
  EXPECT_TRUE(absl::IsAborted(small.Finish(std::string(32, 'x')).status()))
      << "a digest that differs: read again";
}

}  // namespace
}  // namespace gwmirror
