#include "common/delta.h"

#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/direct_io.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// Patches `delta` against `basis` through a real file descriptor (read
// with pread, or through a DirectReader if `direct`), feeding the delta in
// pieces of `split` bytes.
absl::StatusOr<std::string> Patch(const std::string& basis,
                                  const std::string& delta, size_t split,
                                  uint64_t max_out, bool direct = false) {
  testing::TempDir dir;
  std::string path = dir / "basis";
  testing::WriteFile(path, basis);
  UniqueFd fd(open(path.c_str(), O_RDONLY));
  // The reader sets O_DIRECT on the descriptor: only when asked.
  std::optional<DirectReader> reader;
  if (direct) reader.emplace(Env::Default(), fd.get());
  Patcher p = direct ? Patcher(&*reader, max_out) : Patcher(fd.get(), max_out);
  std::string out;
  auto sink = [&](absl::string_view s) {
    out.append(s.data(), s.size());
    return absl::OkStatus();
  };
  for (size_t off = 0; off < delta.size(); off += split) {
    absl::Status st =
        p.Feed(absl::string_view(delta).substr(off, split), false, sink);
    if (!st.ok()) return st;
  }
  absl::Status st = p.Feed("", true, sink);
  if (!st.ok()) return st;
  return out;
}

void RoundTrip(const std::string& basis, const std::string& target,
               size_t split = 7) {
  auto sig = SignatureOf(basis, 2048);
  ASSERT_TRUE(sig.ok()) << sig.status();
  auto delta = DeltaOf(*sig, target);
  ASSERT_TRUE(delta.ok()) << delta.status();
  auto out = Patch(basis, *delta, split, target.size());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), target.size());
  EXPECT_TRUE(*out == target);
}

// librsync's own signature job, the reference SignatureBuilder must match.
std::string LibrsyncSignature(const std::string& data, uint32_t block_len) {
  rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
  size_t blen = block_len, strong = static_cast<size_t>(-1);
  EXPECT_EQ(rs_sig_args(data.size(), &magic, &blen, &strong), RS_DONE);
  RsStream job(RsJobPtr(rs_sig_begin(blen, strong, magic)), "signature");
  std::string out;
  EXPECT_TRUE(job.Feed(data, true,
                       [&](absl::string_view s) {
                         out.append(s.data(), s.size());
                         return absl::OkStatus();
                       })
                  .ok());
  return out;
}

TEST(DeltaTest, SignaturesAreLibrsyncsByteForByte) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1023}, size_t{1024},
                   size_t{5000}, size_t{3 << 20}}) {
    for (uint32_t bl : {16u, 1024u, 2048u}) {
      for (size_t split : {size_t{1}, size_t{1000}, size_t{1} << 22}) {
        if (split == 1 && n > 5000) continue;
        SCOPED_TRACE(absl::StrCat(n, " bytes, block ", bl, ", split ", split));
        std::string data = testing::RandomBytes(n, n + bl);
        SignatureBuilder b(n, bl, SignatureKind::kLibrsync);
        std::string ours;
        auto sink = [&](absl::string_view s) {
          ours.append(s.data(), s.size());
          return absl::OkStatus();
        };
        for (size_t off = 0; off < n; off += split) {
          ASSERT_TRUE(
              b.Feed(absl::string_view(data).substr(off, split), false, sink)
                  .ok());
        }
        ASSERT_TRUE(b.Feed("", true, sink).ok());
        EXPECT_TRUE(ours == LibrsyncSignature(data, bl));
        EXPECT_EQ(b.Feed("more", true, sink).code(),
                  absl::StatusCode::kDataLoss);
      }
    }
  }
}

TEST(DeltaTest, AwkwardSizesRoundTrip) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{2047}, size_t{2048},
                   size_t{2049}, size_t{(1 << 20) + 1}}) {
    SCOPED_TRACE(n);
    std::string basis = testing::RandomBytes(n, 1);
    std::string target = basis;
    if (!target.empty()) target[target.size() / 2] ^= 0x5a;
    RoundTrip(basis, target, n > 100000 ? 65536 : 7);
    RoundTrip("", basis, 1000);
    RoundTrip(basis, "", 1000);
  }
}

TEST(DeltaTest, HundredMebibytesWithShiftsIsSmall) {
  std::string basis = testing::RandomBytes(100 << 20, 2);
  std::string target = basis;
  target.insert(10 << 20, "inserted row\n");
  target.erase(60 << 20, 5000);
  target[90 << 20] ^= 1;
  auto sig = SignatureOf(basis, 2048);
  ASSERT_TRUE(sig.ok());
  auto delta = DeltaOf(*sig, target);
  ASSERT_TRUE(delta.ok());
  EXPECT_LT(delta->size(), 64u << 10) << "delta should carry only the edits";
  auto out = Patch(basis, *delta, 1 << 20, target.size());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == target);
}

TEST(DeltaTest, IdenticalUnrelatedAndBinaryInputs) {
  std::string a = testing::RandomBytes(300000, 3);
  RoundTrip(a, a);
  RoundTrip(a, testing::RandomBytes(300000, 4));
  std::string text;
  for (int i = 0; i < 20000; ++i)
    text += "INSERT INTO t VALUES (" + std::to_string(i) + ");\n";
  std::string edited = text;
  edited.replace(1000, 10, "CHANGED!!!");
  RoundTrip(text, edited, 3);
  auto sig = SignatureOf(a, 2048);
  auto same = DeltaOf(*sig, a);
  ASSERT_TRUE(same.ok());
  EXPECT_LT(same->size(), 2000u);
}

TEST(DeltaTest, ConcatenatedStreamsPatchConsecutiveParts) {
  std::string basis = testing::RandomBytes(300000, 8);
  std::string target = basis;
  target.insert(5000, "early insert");
  target.replace(250000, 4, "edit");
  auto sig = SignatureOf(basis, 2048);
  ASSERT_TRUE(sig.ok());
  // Three independent streams over consecutive thirds of the target.
  std::string delta;
  size_t third = target.size() / 3;
  for (size_t off = 0; off < target.size(); off += third) {
    auto d = DeltaOf(*sig, absl::string_view(target).substr(off, third));
    ASSERT_TRUE(d.ok());
    delta += *d;
  }
  for (size_t split : {size_t{1}, size_t{7}, size_t{4096}, delta.size()}) {
    auto out = Patch(basis, delta, split, target.size());
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(*out == target) << split;
  }
  // A stream cut short after a complete one is still an error.
  auto first = DeltaOf(*sig, target.substr(0, 1000));
  EXPECT_EQ(
      Patch(basis, *first + first->substr(0, 10), 3, 1 << 20).status().code(),
      absl::StatusCode::kDataLoss);
}

TEST(DeltaTest, CorruptDeltaIsDataLoss) {
  std::string basis = testing::RandomBytes(100000, 5);
  auto sig = SignatureOf(basis, 2048);
  auto delta = DeltaOf(*sig, basis + "tail");
  ASSERT_TRUE(delta.ok());
  std::string bad = *delta;
  bad[0] ^= 0xff;  // Magic.
  EXPECT_EQ(Patch(basis, bad, 100, 1 << 20).status().code(),
            absl::StatusCode::kDataLoss);
  std::string truncated = delta->substr(0, delta->size() / 2);
  EXPECT_EQ(Patch(basis, truncated, 100, 1 << 20).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(DeltaTest, OutputBeyondDeclaredSizeIsRefused) {
  std::string basis = testing::RandomBytes(10000, 6);
  auto sig = SignatureOf(basis, 2048);
  auto delta = DeltaOf(*sig, basis + basis);
  ASSERT_TRUE(delta.ok());
  auto out = Patch(basis, *delta, 100, basis.size());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("declared size"), std::string::npos);
}

TEST(DeltaTest, CopyPastTheBasisIsRefused) {
  // A delta made against a longer basis references bytes this one lacks.
  std::string big = testing::RandomBytes(50000, 7);
  auto sig = SignatureOf(big, 2048);
  auto delta = DeltaOf(*sig, big);
  ASSERT_TRUE(delta.ok());
  for (bool direct : {false, true}) {
    auto out = Patch(big.substr(0, 1000), *delta, 100, 1 << 20, direct);
    EXPECT_FALSE(out.ok()) << direct;
  }
}

// A basis that cannot be read fails the patch naming the read, not the
// delta (librsync alone says "IO error"), through either reader.
TEST(DeltaTest, AnUnreadableBasisIsNamed) {
  testing::TempDir dir;
  const std::string basis = testing::RandomBytes(50000, 8);
  auto sig = SignatureOf(basis, 2048);
  ASSERT_TRUE(sig.ok());
  auto delta = DeltaOf(*sig, basis);
  ASSERT_TRUE(delta.ok());
  auto sink = [](absl::string_view) { return absl::OkStatus(); };
  // pread on a directory fails (EISDIR).
  UniqueFd dir_fd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY));
  Patcher plain(dir_fd.get(), 1 << 20);
  absl::Status st = plain.Feed(*delta, true, sink);
  EXPECT_NE(st.message().find("reading the basis: read: Is a directory"),
            std::string::npos)
      << st;
  // A DirectReader whose read fails (EIO, injected).
  ASSERT_EQ(mkdir((dir / "w").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir / "attic").c_str(), 0700), 0);
  testing::FaultInjectionEnv env(dir / "w", dir / "attic");
  testing::WriteFile(dir / "w/basis", basis);
  UniqueFd fd(open((dir / "w/basis").c_str(), O_RDONLY | O_CLOEXEC));
  DirectReader reader(&env, fd.get());
  Patcher direct(&reader, 1 << 20);
  env.FailNext("read", "/basis", EIO);
  st = direct.Feed(*delta, true, sink);
  EXPECT_NE(st.message().find("reading the basis: read: Input/output error"),
            std::string::npos)
      << st;
}

// A basis read through a DirectReader's window (past the page cache where
// the file system allows it): copies that cross its 4 MiB edges, and
// blocks moved backwards, patch exactly.
TEST(DeltaTest, ABasisReadPastThePageCachePatchesExactly) {
  const std::string basis = testing::RandomBytes(9 << 20, 31);
  std::string target = basis;
  target.replace(kDirectPiece - 100, 200, std::string(200, 'e'));
  target.insert(5 << 20, "inserted");
  target += basis.substr(1 << 20, 3 << 20);  // Far back.
  auto sig = SignatureOf(basis, 2048);
  ASSERT_TRUE(sig.ok());
  auto delta = DeltaOf(*sig, target);
  ASSERT_TRUE(delta.ok());
  auto out = Patch(basis, *delta, 1 << 20, target.size(), /*direct=*/true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == target);
}

}  // namespace
}  // namespace gwmirror
