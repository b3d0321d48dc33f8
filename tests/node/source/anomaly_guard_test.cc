#include "node/source/anomaly_guard.h"

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/entropy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/source/deletion_guard.h"

namespace gwmirror {
namespace {

using ::testing::HasSubstr;

Entry File(const std::string& path, const std::string& content_tag,
           int64_t mtime_s = 100) {
  Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e.set_sha256(std::string(32, content_tag[0]));
  e.set_size(4096);
  e.set_mtime_ns(mtime_s * 1000000000LL);
  return e;
}

Manifest Of(std::vector<Entry> entries) {
  auto m = Manifest::FromEntries(std::move(entries));
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// A sampler answering from a path -> entropy table (4096 bytes sampled);
// counts its calls and the files it was asked about.
struct Table {
  std::map<std::string, double> entropy;
  int calls = 0;
  size_t asked = 0;
  ContentSampler Sampler() {
    return [this](const std::vector<const Entry*>& entries)
               -> absl::StatusOr<std::vector<ContentLook>> {
      ++calls;
      asked += entries.size();
      std::vector<ContentLook> out;
      for (const Entry* e : entries) {
        auto it = entropy.find(e->path());
        // XML is all text; what looks random, about 38 %.
        out.push_back(
            it == entropy.end()
                ? ContentLook{}
                : ContentLook{it->second, it->second > 7 ? 0.38 : 1.0, 4096});
      }
      return out;
    };
  }
};

// `total` XML files; the first `encrypted` rewritten with random-looking
// content over 3 s, the next `edited` rewritten as XML.
struct Slot {
  Manifest base, next;
  Table old_side, new_side;
};
Slot MakeSlot(int total, int encrypted, int edited) {
  Slot s;
  std::vector<Entry> base, next;
  for (int i = 0; i < total; ++i) {
    const std::string path = absl::StrCat("conf/store-", 1000 + i, ".xml");
    base.push_back(File(path, "a"));
    s.old_side.entropy[path] = 5.1;
    if (i < encrypted) {
      next.push_back(File(path, "b", 100 + (i % 4)));
      s.new_side.entropy[path] = 7.95;
    } else if (i < encrypted + edited) {
      next.push_back(File(path, "c"));
      s.new_side.entropy[path] = 5.2;
    } else {
      next.push_back(File(path, "a"));
    }
  }
  s.base = Of(base);
  s.next = Of(next);
  return s;
}

TEST(AnomalyGuardTest, EncryptingAThirdOfTheFilesIsHeldNamingWhatHappened) {
  Slot s = MakeSlot(300, 90, 0);
  absl::Status st = CheckAnomaly(s.base, s.next, {}, s.new_side.Sampler(),
                                 s.old_side.Sampler());
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(IsAnomalyHeld(st));
  EXPECT_TRUE(IsHeld(st));
  EXPECT_EQ(HeldKind(st), "anomaly");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("anomaly held: 90 files rewritten in 3.0 s, entropy "
                        "up from 5.1 to 8.0 bits per byte"));
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("90 of the slot's 300 files changed in this cut; "
                        "e.g. conf/store-1000.xml"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("gwmirror release"));
}

TEST(AnomalyGuardTest, SmallOrOrdinaryChangeSetsAreNeverRead) {
  // Fewer than 20 files, or under 10 % of the slot: nothing is sampled.
  for (auto [total, encrypted] : {std::pair{300, 19}, std::pair{1000, 60}}) {
    Slot s = MakeSlot(total, encrypted, 0);
    EXPECT_TRUE(CheckAnomaly(s.base, s.next, {}, s.new_side.Sampler(),
                             s.old_side.Sampler())
                    .ok());
    EXPECT_EQ(s.new_side.calls + s.old_side.calls, 0);
  }
  // Thresholds are the config's.
  Slot s = MakeSlot(1000, 60, 0);
  gwmirror::v1::AnomalyGuard g;
  g.set_min_percent(5);
  EXPECT_FALSE(CheckAnomaly(s.base, s.next, g, s.new_side.Sampler(),
                            s.old_side.Sampler())
                   .ok());
  g.set_off(true);
  EXPECT_TRUE(CheckAnomaly(s.base, s.next, g, s.new_side.Sampler(),
                           s.old_side.Sampler())
                  .ok());
}

TEST(AnomalyGuardTest, WhatLooksLikeAnAttackOnlyInPartIsLetThrough) {
  // Many XML files edited as XML (a redeploy in place), a few encrypted:
  // not half of the change set.
  Slot s = MakeSlot(300, 30, 70);
  EXPECT_TRUE(CheckAnomaly(s.base, s.next, {}, s.new_side.Sampler(),
                           s.old_side.Sampler())
                  .ok());
  // Jars replaced by jars: random before and after.
  Slot jars = MakeSlot(100, 50, 0);
  for (auto& [path, e] : jars.old_side.entropy) e = 7.9;
  EXPECT_TRUE(CheckAnomaly(jars.base, jars.next, {}, jars.new_side.Sampler(),
                           jars.old_side.Sampler())
                  .ok());
  // Files neither side could sample are not judged.
  Slot gone = MakeSlot(100, 50, 0);
  gone.new_side.entropy.clear();
  EXPECT_TRUE(CheckAnomaly(gone.base, gone.next, {}, gone.new_side.Sampler(),
                           gone.old_side.Sampler())
                  .ok());
}

TEST(AnomalyGuardTest, ASamplerErrorFailsTheCutAndAHugeChangeSetIsSampled) {
  Slot s = MakeSlot(300, 90, 0);
  ContentSampler broken = [](const std::vector<const Entry*>&)
      -> absl::StatusOr<std::vector<ContentLook>> {
    return absl::UnavailableError("replica went away");
  };
  absl::Status st =
      CheckAnomaly(s.base, s.next, {}, s.new_side.Sampler(), broken);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_FALSE(IsHeld(st));
  Slot big = MakeSlot(9000, 9000, 0);
  st = CheckAnomaly(big.base, big.next, {}, big.new_side.Sampler(),
                    big.old_side.Sampler());
  EXPECT_TRUE(IsAnomalyHeld(st));
  EXPECT_LE(big.new_side.asked, 2000u);
  EXPECT_THAT(std::string(st.message()), HasSubstr("9000 files rewritten"));
}

TEST(AnomalyGuardTest, RenamesToNewExtensionsCountCompressionDoesNot) {
  Manifest base =
      Of({File("a/x.xml", "a"), File("a/y.props", "a"), File("a/z.log", "a"),
          File("a/w", "a"), File("a/same.xml", "a"), File("a/v.xml", "a")});
  Manifest next = Of({File("a/same.xml", "b"), File("a/v.xml", "a"),
                      File("a/w2", "a"), File("a/x.xml.locked", "c"),
                      File("a/y.enc", "d"), File("a/z.log.gz", "e")});
  std::vector<std::string> got;
  for (const ChangedVersion& c : RewrittenOrRenamed(base, next)) {
    got.push_back(absl::StrCat(c.old->path(), ">", c.now->path()));
  }
  // One deleted file renamed twice counts once.
  Manifest twice_base = Of({File("b/x.xml", "a")});
  Manifest twice_next = Of({File("b/x.enc", "c"), File("b/x.xml.locked", "d")});
  EXPECT_EQ(RewrittenOrRenamed(twice_base, twice_next).size(), 1u);
  EXPECT_THAT(got, ::testing::UnorderedElementsAre("a/same.xml>a/same.xml",
                                                   "a/x.xml>a/x.xml.locked",
                                                   "a/y.props>a/y.enc"));
}

TEST(AnomalyGuardTest, WhatLooksEncrypted) {
  const ContentLook xml{5.1, 1.0, 4096}, random{7.95, 0.38, 4096};
  const ContentLook small_json{4.2, 1.0, 46}, small_xor{5.3, 0.4, 46};
  const ContentLook jar{7.9, 0.4, 4096}, gzip{7.9, 0.35, 4096};
  EXPECT_TRUE(LooksEncrypted(xml, random, 2.0));
  // A 46-byte JSON file cannot rise 2 bits, but text turned binary.
  EXPECT_TRUE(LooksEncrypted(small_json, small_xor, 2.0));
  EXPECT_TRUE(LooksEncrypted(xml, gzip, 2.0));
  EXPECT_FALSE(LooksEncrypted(jar, random, 2.0));
  EXPECT_FALSE(LooksEncrypted(xml, ContentLook{5.3, 1.0, 4096}, 2.0));
  // Under 16 bytes, or not sampled: not judged.
  EXPECT_FALSE(
      LooksEncrypted(ContentLook{1.5, 1.0, 5}, ContentLook{2.3, 0.2, 5}, 2.0));
  EXPECT_FALSE(LooksEncrypted(ContentLook{}, random, 2.0));
  // An empty placeholder filled with a keystore says nothing about an
  // attack; nor does text in another language.
  EXPECT_FALSE(LooksEncrypted(LookAt(""), random, 2.0));
  std::string japanese;
  while (japanese.size() < 4096) japanese += "label=\xe3\x83\xad\xe3\x82\xb0\n";
  EXPECT_EQ(LookAt(japanese).text, 1.0);
  EXPECT_FALSE(LooksEncrypted(xml, LookAt(japanese), 2.0));
  EXPECT_EQ(LookAt("<a>\n</a>\t\r").text, 1.0);
  EXPECT_EQ(LookAt(std::string("\0\1ab", 4)).text, 0.5);
}

TEST(EntropyTest, BitsPerByte) {
  EXPECT_EQ(ShannonEntropy(""), 0);
  EXPECT_EQ(ShannonEntropy("aaaa"), 0);
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_DOUBLE_EQ(ShannonEntropy(all), 8);
  std::mt19937_64 rng(1);
  std::string noise(kEntropySample, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  EXPECT_GT(ShannonEntropy(noise), 7.9);
  std::string xml;
  while (xml.size() < kEntropySample) {
    absl::StrAppend(&xml, "<entity type=\"DbConnection\"><fval name=\"url\">",
                    "<value>jdbc:mysql://h/db", xml.size(),
                    "</value></fval>\n");
  }
  EXPECT_LT(ShannonEntropy(xml), 5.5);
  EXPECT_DOUBLE_EQ(HighEntropyAbove(4096), 6.8);
  EXPECT_NEAR(HighEntropyAbove(100), 5.65, 0.01);
  EXPECT_EQ(HighEntropyAbove(1), 8);
}

}  // namespace
}  // namespace gwmirror
