// The mass-deletion guard's rules.
#include "node/source/deletion_guard.h"

#include "gtest/gtest.h"

namespace gwmirror {
namespace {

Manifest Files(const std::vector<std::string>& paths) {
  std::vector<Entry> es;
  for (const auto& p : paths) {
    Entry e;
    e.set_path(p);
    e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
    e.set_sha256(std::string(32, 'x'));
    es.push_back(e);
  }
  return *Manifest::FromEntries(es);
}

std::vector<std::string> Range(const std::string& dir, int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back(dir + "/f" + std::to_string(i));
  return v;
}

std::vector<std::string> Cat(std::vector<std::string> a,
                             const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(DeletionGuardTest, HoldsMoreThanTheShareOfARoot) {
  Manifest base = Files(Cat(Range("a", 0, 10), Range("b", 0, 10)));
  Manifest next =
      Files(Cat(Range("a", 0, 4), Range("b", 0, 10)));  // 6 of 10 gone
  absl::Status st = CheckMassDeletion(base, next, {"a", "b"}, 0.5);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("a would lose 6 of its 10 entries (60%)"),
            std::string::npos)
      << st;
  EXPECT_NE(st.message().find("gwmirror release"), std::string::npos);
  // Half exactly is allowed; so is the same deletion under a higher share.
  EXPECT_TRUE(CheckMassDeletion(base,
                                Files(Cat(Range("a", 0, 5), Range("b", 0, 10))),
                                {"a", "b"}, 0.5)
                  .ok());
  EXPECT_TRUE(CheckMassDeletion(base, next, {"a", "b"}, 0.7).ok());
}

TEST(DeletionGuardTest, HoldsARootThatVanished) {
  Manifest base = Files(Cat(Range("a", 0, 4), Range("b", 0, 10)));
  absl::Status st =
      CheckMassDeletion(base, Files(Range("b", 0, 10)), {"a", "b"}, 0.5);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("a would lose all of its 4 entries"),
            std::string::npos)
      << st;
  // Regression: a random change set deleting both files of a two-file root
  // was held as a vanished disk.
  Manifest two = Files(Cat(Range("a", 0, 2), Range("b", 0, 10)));
  EXPECT_TRUE(
      CheckMassDeletion(two, Files(Range("b", 0, 10)), {"a", "b"}, 0.5).ok());
}

TEST(DeletionGuardTest, SmallOrOrdinaryChangesPass) {
  // Replacing the files of a small root: fewer deletions than the minimum.
  Manifest base = Files(Cat(Range("a", 0, 3), Range("b", 0, 10)));
  Manifest next = Files(Cat(Range("a", 3, 6), Range("b", 0, 10)));
  EXPECT_TRUE(CheckMassDeletion(base, next, {"a", "b"}, 0.5).ok());
  // Additions never hold; an empty root staying empty neither.
  EXPECT_TRUE(
      CheckMassDeletion(Files({}), Files(Range("a", 0, 50)), {"a", "b"}, 0.5)
          .ok());
}

}  // namespace
}  // namespace gwmirror
