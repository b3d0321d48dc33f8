#include "common/block_delta.h"

#include <blake2.h>
#include <librsync.h>
#include <xxhash.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <bit>

#include "absl/strings/str_cat.h"

namespace gwmirror {
namespace {

// librsync's RabinKarp: sum = seed * M^n + sum(c[i] * M^(n-1-i)), mod 2^32.
constexpr uint32_t kRkMult = 0x08104225u;
constexpr uint32_t kRkSeed = 1;
constexpr uint32_t kRkAdjust = kRkMult - 1;  // Keeps the seed's term on roll.
constexpr uint32_t kMaxBlockLen = 1 << 20;
constexpr uint32_t kMaxStrongLen = 32;  // BLAKE2b-256.
constexpr uint32_t kXxh3StrongLen = 16;
constexpr size_t kXxh3HeaderLen = 20;

uint32_t Power(uint32_t base, uint64_t exp) {
  uint32_t r = 1;
  for (; exp; exp >>= 1, base *= base) {
    if (exp & 1) r *= base;
  }
  return r;
}

uint32_t Be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 |
         p[3];
}

// librsync's delta commands (prototab): a literal of 1-64 bytes is its
// own opcode; longer literals and copies carry big-endian parameters of
// 1, 2, 4 or 8 bytes, chosen per value.
constexpr uint8_t kOpEnd = 0x00;
constexpr uint8_t kOpLiteralN1 = 0x41;
constexpr uint8_t kOpCopyN1N1 = 0x45;

int WidthIndex(uint64_t v) {
  return v <= 0xff ? 0 : v <= 0xffff ? 1 : v <= 0xffffffffu ? 2 : 3;
}

void PutBe(uint64_t v, int width_index, std::string* out) {
  for (int b = (1 << width_index) - 1; b >= 0; --b) {
    out->push_back(static_cast<char>(v >> (8 * b)));
  }
}

// Writes commands, merging adjacent copies.
class DeltaWriter {
 public:
  explicit DeltaWriter(std::string* out) : out_(out) {
    PutBe(RS_DELTA_MAGIC, 2, out_);
  }
  void Literal(absl::string_view data) {
    if (data.empty()) return;
    FlushCopy();
    if (data.size() <= 64) {
      out_->push_back(static_cast<char>(data.size()));
    } else {
      int w = WidthIndex(data.size());
      out_->push_back(static_cast<char>(kOpLiteralN1 + w));
      PutBe(data.size(), w, out_);
    }
    out_->append(data.data(), data.size());
  }
  void Copy(uint64_t offset, uint64_t len) {
    if (copy_len_ > 0 && copy_off_ + copy_len_ == offset) {
      copy_len_ += len;
      return;
    }
    FlushCopy();
    copy_off_ = offset;
    copy_len_ = len;
  }
  void End() {
    FlushCopy();
    out_->push_back(static_cast<char>(kOpEnd));
  }

 private:
  void FlushCopy() {
    if (copy_len_ == 0) return;
    int wo = WidthIndex(copy_off_), wl = WidthIndex(copy_len_);
    out_->push_back(static_cast<char>(kOpCopyN1N1 + wo * 4 + wl));
    PutBe(copy_off_, wo, out_);
    PutBe(copy_len_, wl, out_);
    copy_len_ = 0;
  }
  std::string* out_;
  uint64_t copy_off_ = 0, copy_len_ = 0;
};

// The weak sum's tail, four bytes per step (the multiplications of a step
// are independent), from `s` at byte `i`.
uint32_t RabinKarpFrom(const uint8_t* p, size_t n, size_t i, uint32_t s) {
  constexpr uint32_t m2 = kRkMult * kRkMult, m3 = m2 * kRkMult,
                     m4 = m3 * kRkMult;
  for (; i + 4 <= n; i += 4) {
    s = s * m4 + p[i] * m3 + p[i + 1] * m2 + p[i + 2] * kRkMult + p[i + 3];
  }
  for (; i < n; ++i) s = s * kRkMult + p[i];
  return s;
}

#if defined(__x86_64__)
// M^(31-k) for byte k of a 32-byte step, and M^32.
constexpr std::array<uint32_t, 32> kRkStepWeights = [] {
  std::array<uint32_t, 32> w{};
  uint32_t x = 1;
  for (int k = 31; k >= 0; --k, x *= kRkMult) w[k] = x;
  return w;
}();
constexpr uint32_t kRkMult32 = [] {
  uint32_t x = 1;
  for (int k = 0; k < 32; ++k) x *= kRkMult;
  return x;
}();

// 32 bytes per step: each byte times its weight in 8-lane vectors, summed,
// then one scalar step. About twice as fast as the scalar loop here.
__attribute__((target("avx2"))) uint32_t RabinKarpAvx2(const uint8_t* p,
                                                       size_t n) {
  const auto* w = reinterpret_cast<const __m256i*>(kRkStepWeights.data());
  const __m256i w0 = _mm256_loadu_si256(w), w1 = _mm256_loadu_si256(w + 1),
                w2 = _mm256_loadu_si256(w + 2), w3 = _mm256_loadu_si256(w + 3);
  size_t i = 0;
  uint32_t s = kRkSeed;
  for (; i + 32 <= n; i += 32) {
    const auto* q = reinterpret_cast<const __m128i*>(p + i);
    const __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(q));
    const __m256i b1 =
        _mm256_cvtepu8_epi32(_mm_srli_si128(_mm_loadu_si128(q), 8));
    const __m256i b2 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(q + 1));
    const __m256i b3 =
        _mm256_cvtepu8_epi32(_mm_srli_si128(_mm_loadu_si128(q + 1), 8));
    const __m256i a =
        _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(b0, w0),
                                          _mm256_mullo_epi32(b1, w1)),
                         _mm256_add_epi32(_mm256_mullo_epi32(b2, w2),
                                          _mm256_mullo_epi32(b3, w3)));
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(a),
                              _mm256_extracti128_si256(a, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    s = s * kRkMult32 + static_cast<uint32_t>(_mm_cvtsi128_si32(h));
  }
  return RabinKarpFrom(p, n, i, s);
}

bool HaveAvx2() {
  static const bool have =
      (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
  return have;
}
#endif

}  // namespace

uint32_t RabinKarpSum(absl::string_view data) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
#if defined(__x86_64__)
  if (HaveAvx2()) return RabinKarpAvx2(p, data.size());
#endif
  return RabinKarpFrom(p, data.size(), 0, kRkSeed);
}

uint64_t MaxSignatureBytes(uint64_t file_size, uint32_t block_len) {
  const uint64_t bl = std::max<uint32_t>(block_len, 1);
  return kXxh3HeaderLen + (file_size / bl + 1) * (4 + kMaxStrongLen);
}

absl::StatusOr<BlockSignature> BlockSignature::Parse(std::string sig) {
  auto owned = std::make_shared<const std::string>(std::move(sig));
  const absl::string_view view = *owned;
  return Parse(view, std::move(owned), nullptr);
}

absl::StatusOr<BlockSignature> BlockSignature::Parse(
    std::shared_ptr<const MappedFile> sig) {
  const MappedFile* mapped = sig.get();
  return Parse(mapped->view(), std::move(sig), mapped);
}

absl::StatusOr<BlockSignature> BlockSignature::Parse(
    absl::string_view sig, std::shared_ptr<const void> owner,
    const MappedFile* mapped) {
  const auto* p = reinterpret_cast<const uint8_t*>(sig.data());
  if (sig.size() < 12) {
    return absl::DataLossError(absl::StrCat(
        "signature: ", sig.size(), " bytes, shorter than its 12-byte header"));
  }
  BlockSignature s;
  size_t header = 12;
  if (Be32(p) == kSeededXxh3SigMagic) {
    header = kXxh3HeaderLen;
    if (sig.size() < header) {
      return absl::DataLossError(
          absl::StrCat("signature: ", sig.size(),
                       " bytes, shorter than its 20-byte XXH3 header"));
    }
    s.xxh3_ = true;
    s.seed_ = uint64_t{Be32(p + 12)} << 32 | Be32(p + 16);
  } else if (Be32(p) != RS_RK_BLAKE2_SIG_MAGIC) {
    return absl::DataLossError(absl::StrCat(
        "signature: magic 0x", absl::Hex(Be32(p)),
        " is neither librsync's RabinKarp + BLAKE2 nor gwmirror's XXH3"));
  }
  s.block_len_ = Be32(p + 4);
  s.strong_len_ = Be32(p + 8);
  const uint32_t max_strong = s.xxh3_ ? kXxh3StrongLen : kMaxStrongLen;
  if (s.block_len_ == 0 || s.block_len_ > kMaxBlockLen) {
    return absl::DataLossError(absl::StrCat("signature: block length ",
                                            s.block_len_, " is outside 1..",
                                            kMaxBlockLen));
  }
  if (s.strong_len_ == 0 || s.strong_len_ > max_strong) {
    return absl::DataLossError(absl::StrCat("signature: strong sum length ",
                                            s.strong_len_, " is outside 1..",
                                            max_strong));
  }
  const size_t per = 4 + s.strong_len_;
  const size_t body = sig.size() - header;
  if (body % per != 0) {
    return absl::DataLossError(absl::StrCat("signature: ", body,
                                            " bytes of blocks are not whole ",
                                            per, "-byte blocks"));
  }
  const size_t n = body / per;
  if (n >= UINT32_MAX) {
    return absl::DataLossError(absl::StrCat("signature: ", n, " blocks"));
  }
  s.blocks_ = static_cast<uint32_t>(n);
  s.per_ = per;
  s.body_ = p + header;
  s.owner_ = std::move(owner);
  s.mapped_ = mapped;
  return s;
}

void BlockSignature::Release(uint32_t first, uint32_t end) const {
  if (mapped_ != nullptr && first < end) {
    mapped_->Release(At(first), size_t{end - first} * per_);
  }
}

void BlakeStrongSum(absl::string_view data, uint8_t* out) {
  blake2b(out, data.data(), nullptr, kMaxStrongLen, data.size(), 0);
}

void Xxh3StrongSum(absl::string_view data, uint64_t seed, uint8_t* out) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(
      &c, XXH3_128bits_withSeed(data.data(), data.size(), seed));
  std::copy(c.digest, c.digest + kXxh3StrongLen, out);
}

BlockIndex::BlockIndex(const BlockSignature& sig, uint32_t first, uint32_t end,
                       uint32_t stride, Unfilled)
    : sig_(sig), first_(first), end_(end), stride_(std::max(stride, 1u)) {
  const size_t blocks = (size_t{end - first} + stride_ - 1) / stride_;
  const size_t want = std::max<size_t>(16, 2 * blocks);
  const int bits = std::bit_width(want - 1);
  shift_ = 32 - bits;
  mask_ = (size_t{1} << bits) - 1;
  slots_.assign(size_t{1} << bits, Slot{0, kEmpty});
  const int filter_bits =
      std::min<int>(28, std::bit_width(std::max<size_t>(64, 8 * blocks) - 1));
  filter_shift_ = 32 - filter_bits;
  filter_.assign((size_t{1} << filter_bits) / 64, 0);
}

BlockIndex::BlockIndex(const BlockSignature& sig, uint32_t first, uint32_t end,
                       uint32_t stride)
    : BlockIndex(sig, first, end, stride, Unfilled{}) {
  for (uint64_t b = first; b < end; b += stride_) {
    Insert(static_cast<uint32_t>(b));
  }
}

void BlockIndex::Insert(uint32_t b) {
  const uint32_t weak = sig_.weak(b);
  for (size_t i = Home(weak);; i = (i + 1) & mask_) {
    const uint32_t there = slots_[i].block;
    if (there == kEmpty) {
      slots_[i] = Slot{weak, b};
      const uint32_t bit = Bit(weak);
      filter_[bit >> 6] |= uint64_t{1} << (bit & 63);
      return;
    }
    if (slots_[i].weak == weak &&
        __builtin_memcmp(sig_.strong(there), sig_.strong(b),
                         sig_.strong_len()) == 0) {
      return;  // The same block again.
    }
  }
}

std::unique_ptr<BlockIndex> BlockIndex::Far(const BlockSignature& sig,
                                            uint32_t max_blocks) {
  const uint32_t n = sig.blocks();
  max_blocks = std::max(max_blocks, 1u);
  const uint32_t stride =
      static_cast<uint32_t>((uint64_t{n} + max_blocks - 1) / max_blocks);
  std::unique_ptr<BlockIndex> index(
      new BlockIndex(sig, 0, n, stride, Unfilled{}));
  // The signature is read once, in order, and probed rarely after: its
  // pages go back as the index is built, so they are never all resident.
  constexpr uint32_t kReleaseEvery = 1 << 16;
  uint64_t b = 0;
  for (uint32_t done = 0; b < n; b += index->stride_) {
    index->Insert(static_cast<uint32_t>(b));
    if (b - done >= kReleaseEvery) {
      sig.Release(done, static_cast<uint32_t>(b));
      done = static_cast<uint32_t>(b);
    }
  }
  sig.Release(0, n);
  return index;
}

BlockRange NearBlocks(const BlockSignature& sig, uint64_t offset, uint64_t len,
                      const BlockDeltaOptions& opt) {
  const uint64_t lo = offset > opt.near_bytes ? offset - opt.near_bytes : 0;
  const uint64_t hi = offset + len + opt.near_bytes;
  const uint64_t bl = sig.block_len();
  return BlockRange{
      static_cast<uint32_t>(std::min<uint64_t>(lo / bl, sig.blocks())),
      static_cast<uint32_t>(
          std::min<uint64_t>((hi + bl - 1) / bl, sig.blocks()))};
}

void BlockDelta(const BlockSignature& sig, const BlockIndex& near,
                const BlockIndex* all, absl::string_view target, bool file_end,
                const BlockDeltaOptions& opt, std::string* out) {
  DeltaWriter w(out);
  const auto* t = reinterpret_cast<const uint8_t*>(target.data());
  const size_t n = target.size();
  const size_t bl = sig.block_len();
  const uint32_t mult_out = Power(kRkMult, bl);  // A byte's weight on leaving.
  uint8_t strong[kMaxStrongLen];
  size_t lit = 0;  // Start of the literal run.
  size_t p = 0;
  uint32_t weak = 0;
  bool have_weak = false;
  bool far = false;   // The last copy came from beyond the near blocks.
  int64_t next = -1;  // The block after the last copied, tried right after.
  while (p + bl <= n) {
    if (!have_weak) {
      weak = RabinKarpSum(target.substr(p, bl));
      have_weak = true;
    }
    bool have_strong = false;
    auto get_strong = [&] {
      if (!have_strong) sig.StrongSum(target.substr(p, bl), strong);
      have_strong = true;
      return strong;
    };
    int64_t block = -1;
    if (p == lit && next >= 0 && next < sig.blocks() &&
        sig.weak(next) == weak &&
        __builtin_memcmp(get_strong(), sig.strong(next), sig.strong_len()) ==
            0) {
      block = next;  // What follows a copy is likely the basis's next block.
    } else if (block = near.Find(weak, get_strong); block >= 0) {
      far = false;
    } else if (all != nullptr && (far || p - lit >= opt.far_after)) {
      // Content from far away: once found, what follows likely is too.
      block = all->Find(weak, get_strong);
      if (block >= 0) far = true;
    }
    if (block >= 0) {
      w.Literal(target.substr(lit, p - lit));
      w.Copy(static_cast<uint64_t>(block) * bl, bl);
      next = block + 1;
      p += bl;
      lit = p;
      have_weak = false;
      continue;
    }
    if (p + bl == n) break;
    weak = weak * kRkMult + t[p + bl] - mult_out * (t[p] + kRkAdjust);
    ++p;
    // A position the near table's filter rules out, before the far table
    // is probed, cannot match (nor is it right after a copy): rolled over
    // in a loop of its own, most of a changed region's bytes.
    size_t stop = n - bl;
    if (all != nullptr) stop = far ? p : std::min(stop, lit + opt.far_after);
    while (p < stop && !near.MayHold(weak)) {
      weak = weak * kRkMult + t[p + bl] - mult_out * (t[p] + kRkAdjust);
      ++p;
    }
  }
  // The basis's last block may be short, and match only the file's tail.
  if (file_end && sig.blocks() > 0 && n > lit) {
    const uint32_t last = sig.blocks() - 1;
    const size_t most = std::min(n - lit, bl - 1);
    // Suffix sums from the end: S(k) of the last k bytes.
    uint32_t sum = 0, pw = 1;  // sum = sum(c * M^j); pw = M^k.
    for (size_t k = 1; k <= most; ++k) {
      sum += t[n - k] * pw;
      pw *= kRkMult;
      if (sum + kRkSeed * pw != sig.weak(last)) continue;
      sig.StrongSum(target.substr(n - k), strong);
      if (__builtin_memcmp(strong, sig.strong(last), sig.strong_len()) != 0) {
        continue;
      }
      w.Literal(target.substr(lit, n - k - lit));
      w.Copy(static_cast<uint64_t>(last) * bl, k);
      lit = n;
      break;
    }
  }
  w.Literal(target.substr(lit));
  w.End();
}

absl::StatusOr<std::string> BlockDeltaOf(absl::string_view signature,
                                         absl::string_view target,
                                         const BlockDeltaOptions& opt) {
  auto sig = BlockSignature::Parse(std::string(signature));
  if (!sig.ok()) return sig.status();
  BlockRange near = NearBlocks(*sig, 0, target.size(), opt);
  BlockIndex near_index(*sig, near.first, near.end);
  std::unique_ptr<BlockIndex> all;
  if (!near_index.Covers(0, sig->blocks())) {
    all = BlockIndex::Far(*sig, opt.far_blocks);
  }
  std::string out;
  BlockDelta(*sig, near_index, all.get(), target, /*file_end=*/true, opt, &out);
  return out;
}

}  // namespace gwmirror
