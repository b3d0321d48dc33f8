#include "common/block_delta.h"

#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <random>

#include "common/delta.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// Text that repeats itself a lot, as dumps and XML stores do.
std::string Rows(size_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s;
  for (size_t i = 0; i < rows; ++i) {
    s += "INSERT INTO metrics VALUES (" + std::to_string(i) + ",'api-" +
         std::to_string(rng() % 50) + "'," + std::to_string(rng() % 100000) +
         ");\n";
  }
  return s;
}

// The basis's librsync signature in 1 KiB blocks, parsed.
BlockSignature SignatureFor(const std::string& basis) {
  auto bytes = SignatureOf(basis, 1024);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  auto sig = BlockSignature::Parse(bytes.ok() ? *bytes : "");
  EXPECT_TRUE(sig.ok()) << sig.status();
  return sig.ok() ? *std::move(sig) : BlockSignature();
}

// librsync's patcher over a memory file: what the replica runs.
std::string Patch(const std::string& basis, const std::string& delta) {
  UniqueFd fd(memfd_create("basis", MFD_CLOEXEC));
  EXPECT_EQ(write(fd.get(), basis.data(), basis.size()),
            static_cast<ssize_t>(basis.size()));
  Patcher p(fd.get(), 1ull << 40);
  std::string out;
  absl::Status st = p.Feed(delta, true, [&](absl::string_view s) {
    out.append(s.data(), s.size());
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

// Our delta of `target` patches back to it, and is no bigger than
// librsync's own (give or take a few command bytes); against gwmirror's
// own signature of the basis it is the same delta (the same blocks match).
std::string RoundTrip(const std::string& basis, const std::string& target,
                      uint32_t block_len = 1024) {
  auto sig = SignatureOf(basis, block_len);
  EXPECT_TRUE(sig.ok()) << sig.status();
  auto ours = BlockDeltaOf(*sig, target);
  EXPECT_TRUE(ours.ok()) << ours.status();
  EXPECT_TRUE(Patch(basis, *ours) == target);
  auto theirs = DeltaOf(*sig, target);
  EXPECT_TRUE(theirs.ok()) << theirs.status();
  EXPECT_LE(ours->size(), theirs->size() + 64);
  auto fast = SignatureOf(basis, block_len, SignatureKind::kSeededXxh3);
  EXPECT_TRUE(fast.ok()) << fast.status();
  auto with_fast = BlockDeltaOf(*fast, target);
  EXPECT_TRUE(with_fast.ok()) << with_fast.status();
  EXPECT_TRUE(*with_fast == *ours);
  return *ours;
}

// Each block of `basis` (1 KiB blocks) has its weak sum and, by
// `strong_sum`, its strong sum in `parsed`.
void ExpectEveryBlock(
    const std::string& basis, const BlockSignature& parsed,
    const std::function<void(absl::string_view, uint8_t*)>& strong_sum) {
  for (uint32_t b = 0; b < parsed.blocks(); ++b) {
    absl::string_view data = absl::string_view(basis).substr(b * 1024, 1024);
    EXPECT_EQ(parsed.weak(b), RabinKarpSum(data)) << b;
    uint8_t strong[32];
    strong_sum(data, strong);
    EXPECT_EQ(memcmp(strong, parsed.strong(b), parsed.strong_len()), 0) << b;
  }
}

TEST(BlockDeltaTest, ReadsLibrsyncsSignatureBlockByBlock) {
  // A short last block, as most files have.
  std::string basis = testing::RandomBytes(10 * 1024 + 100, 1);
  auto sig = SignatureOf(basis, 1024);
  ASSERT_TRUE(sig.ok()) << sig.status();
  auto parsed = BlockSignature::Parse(*sig);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->blocks(), 11u);
  EXPECT_EQ(parsed->block_len(), 1024u);
  ExpectEveryBlock(basis, *parsed, BlakeStrongSum);
}

TEST(BlockDeltaTest, TheWeakSumIsLibrsyncsRollsumAtEveryLength) {
  // librsync's definition, one byte per step: sum = sum * M + c, from 1.
  auto reference = [](absl::string_view d) {
    uint32_t s = 1;
    for (unsigned char c : d) s = s * 0x08104225u + c;
    return s;
  };
  const std::string data = testing::RandomBytes(5000, 9);
  for (size_t len = 0; len <= 300; ++len) {
    for (size_t at : {size_t{0}, size_t{1}, size_t{7}}) {
      absl::string_view d = absl::string_view(data).substr(at, len);
      ASSERT_EQ(RabinKarpSum(d), reference(d)) << len << " at " << at;
    }
  }
  for (size_t len : {1023u, 1024u, 2048u, 4099u}) {
    absl::string_view d = absl::string_view(data).substr(0, len);
    EXPECT_EQ(RabinKarpSum(d), reference(d)) << len;
  }
  EXPECT_EQ(RabinKarpSum(std::string(64, '\xff')),
            reference(std::string(64, '\xff')));
}

TEST(BlockDeltaTest, ReadsGwmirrorsSignatureBlockByBlock) {
  std::string basis = testing::RandomBytes(10 * 1024 + 100, 1);
  auto sig = SignatureOf(basis, 1024, SignatureKind::kSeededXxh3);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->substr(0, 4), "gw\x01X");
  auto parsed = BlockSignature::Parse(*sig);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->blocks(), 11u);
  EXPECT_EQ(parsed->block_len(), 1024u);
  EXPECT_LE(parsed->strong_len(), 16u);
  ExpectEveryBlock(basis, *parsed, [&](absl::string_view d, uint8_t* out) {
    parsed->StrongSum(d, out);
  });
  // Each signature has a seed of its own: the same data, other strong sums.
  auto again = SignatureOf(basis, 1024, SignatureKind::kSeededXxh3);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(sig->substr(12, 8), again->substr(12, 8));
  EXPECT_NE(sig->substr(20), again->substr(20));
}

TEST(BlockDeltaTest, EditsInsertionsAndDeletionsRoundTrip) {
  std::string basis = Rows(20000, 2);
  std::string target = basis;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40; ++i) {
    size_t at = rng() % (target.size() - 100);
    switch (i % 3) {
      case 0:
        target[at] = '#';
        break;
      case 1:
        target.insert(at, "a row that was not there;\n");
        break;
      case 2:
        target.erase(at, 1 + rng() % 90);
        break;
    }
  }
  std::string delta = RoundTrip(basis, target);
  // 40 changes of about one 1 KiB block each, of a file of ~800 KB.
  EXPECT_LT(delta.size(), 40 * 2 * 1024u);
  for (uint32_t bl : {16u, 64u, 700u, 4096u}) {
    SCOPED_TRACE(bl);
    RoundTrip(basis, target, bl);
  }
}

TEST(BlockDeltaTest, AwkwardSizesRoundTrip) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1023}, size_t{1024},
                   size_t{1025}, size_t{(1 << 18) + 1}}) {
    SCOPED_TRACE(n);
    std::string basis = testing::RandomBytes(n, 4);
    std::string target = basis;
    if (!target.empty()) target[target.size() / 2] ^= 0x5a;
    RoundTrip(basis, target);
    RoundTrip("", basis);
    RoundTrip(basis, "");
    RoundTrip(basis, basis + basis);
  }
}

TEST(BlockDeltaTest, AnUnchangedFileIsOneCopy) {
  std::string basis =
      testing::RandomBytes(100 * 1024 + 7, 5);  // Short last block too.
  std::string delta = RoundTrip(basis, basis);
  // Magic, one copy command (opcode, 1-byte offset 0, 4-byte length), end.
  EXPECT_EQ(delta.size(), 4u + 1 + 1 + 4 + 1);
}

TEST(BlockDeltaTest, ContentFromFarAwayIsFoundAfterALongLiteralRun) {
  // The part of the new file at offset 0 holds what the basis has at
  // 256 KiB; the near window is 8 KiB either side.
  std::string basis = testing::RandomBytes(512 * 1024, 6);
  std::string part = basis.substr(256 * 1024, 64 * 1024);
  const BlockSignature sig = SignatureFor(basis);
  ASSERT_GT(sig.blocks(), 0u);
  BlockDeltaOptions opt;
  opt.near_bytes = 8 * 1024;
  opt.far_after = 4096;
  BlockRange r = NearBlocks(sig, 0, part.size(), opt);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.end, 72u);
  BlockIndex near(sig, r.first, r.end);
  BlockIndex all(sig, 0, sig.blocks());
  // Every fourth block, as BlockIndex::Far keeps of a signature too large to
  // index whole: a quarter of the memory.
  BlockIndex strided(sig, 0, sig.blocks(), 4);
  EXPECT_LE(strided.bytes() * 4, all.bytes());
  EXPECT_FALSE(strided.Covers(0, sig.blocks()));

  std::string near_only, with_far, with_strided;
  BlockDelta(sig, near, nullptr, part, false, opt, &near_only);
  BlockDelta(sig, near, &all, part, false, opt, &with_far);
  BlockDelta(sig, near, &strided, part, false, opt, &with_strided);
  // Alone, the near blocks cannot help; with every block, only the first
  // far_after bytes (and the roll up to the next block) go literally; with
  // every fourth, at most three blocks more, since each copy is followed
  // by the basis's next block.
  EXPECT_GT(near_only.size(), part.size());
  EXPECT_LT(with_far.size(), opt.far_after + 1024 + 64);
  EXPECT_LT(with_strided.size(), opt.far_after + 4 * 1024 + 64);
  // Either way the part is what the patch gives (a part is a delta stream
  // of its own; the patcher concatenates the parts).
  EXPECT_TRUE(Patch(basis, near_only) == part);
  EXPECT_TRUE(Patch(basis, with_far) == part);
  EXPECT_TRUE(Patch(basis, with_strided) == part);
}

// The index's filter (a bit per weak sum, set for each indexed block)
// never hides an indexed block, whatever the index's size or stride, and
// a sum it holds no block of is not found.
TEST(BlockDeltaTest, EveryIndexedBlockIsFound) {
  const std::string basis = testing::RandomBytes(3000 * 256 + 100, 8);
  auto bytes = SignatureOf(basis, 256, SignatureKind::kSeededXxh3);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto sig = BlockSignature::Parse(*bytes);
  ASSERT_TRUE(sig.ok()) << sig.status();
  ASSERT_EQ(sig->blocks(), 3001u);
  struct Range {
    uint32_t first, end, stride;
  };
  for (Range r : {Range{0, 0, 1}, Range{5, 6, 1}, Range{0, 3001, 1},
                  Range{1000, 1100, 1}, Range{0, 3001, 7}}) {
    SCOPED_TRACE(::testing::Message()
                 << r.first << ".." << r.end << " by " << r.stride);
    BlockIndex index(*sig, r.first, r.end, r.stride);
    for (uint32_t b = 0; b < sig->blocks(); ++b) {
      const bool indexed =
          b >= r.first && b < r.end && (b - r.first) % r.stride == 0;
      int64_t found = index.Find(sig->weak(b), [&] { return sig->strong(b); });
      if (indexed) {
        // This block, or an earlier one with the same sums.
        ASSERT_GE(found, 0) << b;
        EXPECT_EQ(memcmp(sig->strong(found), sig->strong(b), sig->strong_len()),
                  0);
      } else if (found >= 0) {
        EXPECT_EQ(memcmp(sig->strong(found), sig->strong(b), sig->strong_len()),
                  0);
      }
    }
    // Random bytes: no other block's weak sum is likely to be indexed.
    int found = 0;
    for (uint32_t w = 0; w < 10000; ++w) {
      found +=
          index.Find(w * 2654435761u + 1, [&] { return sig->strong(0); }) >= 0;
    }
    EXPECT_EQ(found, 0);
  }
}

// The search rolls over positions the near filter rules out in a loop of
// its own: it must stop at every position that could match. A basis block
// after a literal run of any length is copied: a near block wherever it
// starts, a block only the far table holds once the run reaches
// far_after (where the far table is first probed), at the part's end or
// before a tail.
TEST(BlockDeltaTest, ABlockAfterALiteralRunIsFoundWhereverItCanBe) {
  const std::string basis = testing::RandomBytes(64 * 1024, 11);
  const BlockSignature sig = SignatureFor(basis);
  ASSERT_EQ(sig.blocks(), 64u);
  BlockDeltaOptions opt;
  opt.near_bytes = 8 * 1024;
  opt.far_after = 4096;
  BlockIndex all(sig, 0, sig.blocks());
  for (uint32_t block : {2u, 50u}) {  // Near the part, and far from it.
    for (size_t run :
         {size_t{0}, size_t{1}, size_t{1023}, size_t{1024}, size_t{4095},
          size_t{4096}, size_t{4097}, size_t{6000}}) {
      for (size_t tail : {size_t{0}, size_t{100}}) {
        SCOPED_TRACE(::testing::Message() << "block " << block << ", run "
                                          << run << ", tail " << tail);
        const std::string target = testing::RandomBytes(run, 100 + run) +
                                   basis.substr(block * 1024, 1024) +
                                   testing::RandomBytes(tail, 7);
        BlockRange r = NearBlocks(sig, 0, target.size(), opt);
        ASSERT_LT(r.end, 50u);
        BlockIndex near(sig, r.first, r.end);
        std::string delta;
        BlockDelta(sig, near, &all, target, false, opt, &delta);
        EXPECT_TRUE(Patch(basis, delta) == target);
        const bool found = block < r.end || run >= opt.far_after;
        if (found) {
          // The literal bytes, one copy and a few command bytes.
          EXPECT_LT(delta.size(), run + tail + 24) << delta.size();
        } else {
          EXPECT_GT(delta.size(), run + tail + 1024) << delta.size();
        }
      }
    }
  }
}

TEST(BlockDeltaTest, AMappedSignatureIsReadInPlaceAndSurvivesItsRelease) {
  // The source maps its cached signatures: the same search as over the
  // bytes in memory, and pages given back are read again when needed.
  std::string basis = Rows(40000, 11);
  std::string target = basis;
  target.insert(5000, "moved;\n");
  target.replace(target.size() / 3, 200, std::string(200, 'x'));
  auto bytes = SignatureOf(basis, 1024, SignatureKind::kSeededXxh3);
  ASSERT_TRUE(bytes.ok());
  testing::TempDir dir;
  const std::string path = dir / "sig";
  ASSERT_TRUE(WriteFileAtomic(path, *bytes, 0600, Durability::kCache).ok());
  auto file = MappedFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file).view(), *bytes);
  auto mapped = BlockSignature::Parse(
      std::make_shared<const MappedFile>(*std::move(file)));
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  auto in_memory = BlockSignature::Parse(*bytes);
  ASSERT_TRUE(in_memory.ok());
  ASSERT_EQ(mapped->blocks(), in_memory->blocks());

  auto delta = [&](const BlockSignature& sig) {
    BlockDeltaOptions opt;
    opt.near_bytes = 16 * 1024;
    auto far = BlockIndex::Far(sig, opt.far_blocks);
    BlockRange r = NearBlocks(sig, 0, target.size(), opt);
    BlockIndex near(sig, r.first, r.end);
    std::string out;
    BlockDelta(sig, near, far.get(), target, true, opt, &out);
    return out;
  };
  const std::string expected = delta(*in_memory);
  EXPECT_EQ(delta(*mapped), expected);
  mapped->Release(0, mapped->blocks());
  EXPECT_EQ(delta(*mapped), expected);
  EXPECT_TRUE(Patch(basis, expected) == target);
  // A missing file, or one that is not a regular file, is named.
  auto missing = MappedFile::Open(dir / "none");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  auto directory = MappedFile::Open(dir.path());
  EXPECT_FALSE(directory.ok());
}

TEST(BlockDeltaTest, ThePartsOfAFileConcatenateIntoOneDelta) {
  std::string basis = Rows(30000, 7);
  std::string target = basis;
  target.insert(1000, "shifted;\n");
  target.erase(target.size() / 2, 300);
  const BlockSignature sig = SignatureFor(basis);
  ASSERT_GT(sig.blocks(), 0u);
  BlockDeltaOptions opt;
  opt.near_bytes = 64 * 1024;
  BlockIndex all(sig, 0, sig.blocks());
  const size_t part = 200 * 1024;
  std::string delta;
  for (size_t off = 0; off < target.size(); off += part) {
    absl::string_view piece = absl::string_view(target).substr(off, part);
    BlockRange r = NearBlocks(sig, off, piece.size(), opt);
    BlockIndex near(sig, r.first, r.end);
    BlockDelta(sig, near, &all, piece, off + part >= target.size(), opt,
               &delta);
  }
  EXPECT_TRUE(Patch(basis, delta) == target);
  EXPECT_LT(delta.size(), 16 * 1024u);
}

TEST(BlockDeltaTest, EverySignatureFitsItsBound) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{1023}, size_t{1024}, size_t{1 << 20}}) {
    for (uint32_t bl : {16u, 1024u}) {
      for (SignatureKind kind :
           {SignatureKind::kLibrsync, SignatureKind::kSeededXxh3}) {
        auto sig = SignatureOf(testing::RandomBytes(n, n), bl, kind);
        ASSERT_TRUE(sig.ok());
        EXPECT_LE(sig->size(), MaxSignatureBytes(n, bl)) << n << " " << bl;
      }
    }
  }
  // The bound is tight enough to matter: a 1 MiB file's, in 1 KiB blocks.
  EXPECT_LT(MaxSignatureBytes(1 << 20, 1024), 40u << 10);
}

TEST(BlockDeltaTest, ASignatureThatIsNotOneIsRefusedByName) {
  auto sig = SignatureOf(testing::RandomBytes(5000, 8), 1024);
  ASSERT_TRUE(sig.ok());
  auto expect = [](std::string bytes, absl::string_view says) {
    auto s = BlockSignature::Parse(bytes);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(s.status().message().find(says), absl::string_view::npos)
        << s.status();
  };
  expect(sig->substr(0, 11), "header");
  expect(sig->substr(0, sig->size() - 1), "not whole");
  std::string bad = *sig;
  bad[0] = 'x';
  expect(bad, "magic");
  bad = *sig;
  bad[4] = bad[5] = bad[6] = bad[7] = 0;
  expect(bad, "block length 0");
  bad = *sig;
  bad[11] = 33;
  expect(bad, "strong sum length 33");
  auto ok = BlockSignature::Parse(sig->substr(0, 12));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->blocks(), 0u);
  // gwmirror's kind: its longer header, its shorter strong sums.
  auto fast = SignatureOf(testing::RandomBytes(5000, 8), 1024,
                          SignatureKind::kSeededXxh3);
  ASSERT_TRUE(fast.ok());
  expect(fast->substr(0, 19), "20-byte XXH3 header");
  bad = *fast;
  bad[11] = 17;
  expect(bad, "strong sum length 17 is outside 1..16");
  ok = BlockSignature::Parse(fast->substr(0, 20));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->blocks(), 0u);
}

}  // namespace
}  // namespace gwmirror
