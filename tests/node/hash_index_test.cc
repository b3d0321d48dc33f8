#include "node/hash_index.h"

#include <sys/stat.h>
#include <utime.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "node/scanner.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> Root() {
  google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> r;
  r.Add()->set_path("r");
  return r;
}

void Age(const std::string& path) {
  struct utimbuf t = {1600000000, 1600000000};
  ASSERT_EQ(utime(path.c_str(), &t), 0);
}

TEST(HashIndexTest, SecondScanReadsOnlyChangedFiles) {
  testing::TempDir dir;
  testing::WriteFile(dir / "r/a", std::string(10000, 'a'));
  testing::WriteFile(dir / "r/b", std::string(20000, 'b'));
  Age(dir / "r/a");
  Age(dir / "r/b");
  // ctime is now; the index trusts entries only once both are settled, so
  // record with an index whose clock is "later" by scanning twice after
  // a save/load round trip.
  auto first = ScanMirrorSet(dir.path(), Root());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->bytes_hashed, 30000u);
  auto loaded = HashIndex::Decode(first->index.Encode("boot"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->size(), 2u);
  auto second = ScanMirrorSet(dir.path(), Root(), &*loaded);
  ASSERT_TRUE(second.ok());
  // ctime was set moments ago: too recent to trust, so both are re-read.
  EXPECT_EQ(second->index_hits, 0u);
  EXPECT_EQ(second->manifest.ComputeDigest(), first->manifest.ComputeDigest());
}

TEST(HashIndexTest, TrustsOnlyMatchingSettledStat) {
  testing::TempDir dir;
  testing::WriteFile(dir / "f", "x");
  struct stat st;
  ASSERT_EQ(stat((dir / "f").c_str(), &st), 0);
  st.st_mtim.tv_sec -= 100;
  st.st_ctim.tv_sec -= 100;
  HashIndex index;
  index.Record("r/f", st, std::string(32, 's'));
  EXPECT_EQ(index.Lookup("r/f", st), std::string(32, 's'));
  struct stat changed = st;
  changed.st_size += 1;
  EXPECT_FALSE(index.Lookup("r/f", changed).has_value());
  changed = st;
  changed.st_mtim.tv_nsec ^= 1;
  EXPECT_FALSE(index.Lookup("r/f", changed).has_value());
  EXPECT_FALSE(index.Lookup("r/other", st).has_value());
  struct stat fresh;
  ASSERT_EQ(stat((dir / "f").c_str(), &fresh), 0);
  index.Record("r/g", fresh, std::string(32, 't'));
  EXPECT_FALSE(index.Lookup("r/g", fresh).has_value()) << "too recent to trust";
}

TEST(HashIndexTest, DamagedIndexIsRefused) {
  HashIndex index;
  struct stat st {};
  st.st_size = 5;
  index.Record("r/f", st, std::string(32, 's'));
  std::string enc = index.Encode("boot");
  for (size_t n = 0; n < enc.size(); n += 7) {
    EXPECT_FALSE(HashIndex::Decode(enc.substr(0, n)).ok());
  }
  enc[10] ^= 1;
  EXPECT_EQ(HashIndex::Decode(enc).status().code(),
            absl::StatusCode::kDataLoss);
  testing::TempDir dir;
  auto missing = HashIndex::Load(dir / "none");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->size(), 0u);
}

// After a reboot nothing in the index is trusted: a power cut may have
// kept a file's new inode times and lost its new bytes, so the stat data
// the index vouches for no longer vouches for the content.
TEST(HashIndexTest, AnIndexFromAnotherBootIsNotTrusted) {
  testing::TempDir dir;
  testing::WriteFile(dir / "host/r/a", "a");
  HashIndex index;
  struct stat st;
  ASSERT_EQ(stat((dir / "host/r/a").c_str(), &st), 0);
  index.Record("r/a", st, std::string(32, 'a'));
  // The index lies outside the env's tracked tree: its save is not synced
  // and would be rolled back with the power cut.
  testing::FaultInjectionEnv env(dir / "host", dir / "attic");
  ASSERT_TRUE(index.Save(dir / "index", &env).ok());
  auto same_boot = HashIndex::Load(dir / "index", &env);
  ASSERT_TRUE(same_boot.ok()) << same_boot.status();
  EXPECT_EQ(same_boot->size(), 1u);
  EXPECT_EQ(same_boot->boot_id(), Env::Default()->BootId());

  env.PowerCut();  // The machine reboots.
  auto rebooted = HashIndex::Load(dir / "index", &env);
  EXPECT_EQ(rebooted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(rebooted.status().message(),
                                "before the machine last booted"))
      << rebooted.status();
  // What is written from now on is trusted again in this boot.
  ASSERT_TRUE(index.Save(dir / "index", &env).ok());
  EXPECT_TRUE(HashIndex::Load(dir / "index", &env).ok());
  // An index of a build before boot ids (GWMI1) is a damaged one.
  testing::WriteFile(dir / "index", "GWMI1" + std::string(80, '\0'));
  EXPECT_EQ(HashIndex::Load(dir / "index", &env).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace gwmirror
