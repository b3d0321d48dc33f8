// The source's delta search, in librsync's formats but not librsync's
// search. A signature has librsync's layout (RabinKarp weak sums and
// strong sums, built by SignatureBuilder: BLAKE2 as librsync's own, or
// gwmirror's seeded XXH3, SignatureKind) and a delta is a librsync delta stream
// (the replica patches it with librsync's Patcher), but the search differs
// in where it looks: librsync probes one hash table of the whole basis for
// every byte it rolls over, and for a 1 GiB dump that table is tens of
// megabytes, so each rolled byte is a cache miss. Here each part of the
// new file is searched against the basis blocks near the same offset (a
// dump's rows shift by little), in a table that fits in cache, and the
// table of every block is probed only inside a literal run long enough to
// suggest that content moved far. docs/ARCHITECTURE.md, "Deltas".
#ifndef GWMIRROR_COMMON_BLOCK_DELTA_H_
#define GWMIRROR_COMMON_BLOCK_DELTA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

// librsync's RabinKarp weak sum of `data`, as its signatures hold it.
uint32_t RabinKarpSum(absl::string_view data);
// librsync's BLAKE2 strong sum of `data` (BLAKE2b-256; a signature keeps
// the first strong_len bytes) into `out`, which holds 32 bytes.
void BlakeStrongSum(absl::string_view data, uint8_t* out);
// gwmirror's strong sum: XXH3-128 of `data` with `seed`, its canonical
// (big-endian) 16 bytes into `out`.
void Xxh3StrongSum(absl::string_view data, uint64_t seed, uint8_t* out);

// The magic of a gwmirror signature (SignatureKind::kSeededXxh3): "gw",
// 0x01, 'X'. Its header is librsync's 12 bytes (magic, block length,
// strong sum length, each big-endian) and the seed, 8 bytes big-endian.
inline constexpr uint32_t kSeededXxh3SigMagic = 0x67770158;

// The most bytes a signature of a `file_size`-byte file in blocks of
// `block_len` can take (either kind; a strong sum of 32 bytes at most):
// what a source accepts from a replica before it refuses the signature.
uint64_t MaxSignatureBytes(uint64_t file_size, uint32_t block_len);

// A signature of either kind parsed into flat arrays. Read only once
// parsed, so any number of searches share one.
class BlockSignature {
 public:
  static absl::StatusOr<BlockSignature> Parse(absl::string_view sig);

  uint32_t block_len() const { return block_len_; }
  uint32_t strong_len() const { return strong_len_; }
  // The strong sum of `data` as this signature's kind computes it, into
  // `out` (32 bytes; the first strong_len() are compared).
  void StrongSum(absl::string_view data, uint8_t* out) const {
    if (xxh3_) {
      Xxh3StrongSum(data, seed_, out);
    } else {
      BlakeStrongSum(data, out);
    }
  }
  uint32_t blocks() const { return static_cast<uint32_t>(weak_.size()); }
  uint32_t weak(uint32_t block) const { return weak_[block]; }
  const uint8_t* strong(uint32_t block) const {
    return strong_.data() + static_cast<size_t>(block) * strong_len_;
  }

 private:
  uint32_t block_len_ = 0;
  uint32_t strong_len_ = 0;
  bool xxh3_ = false;
  uint64_t seed_ = 0;
  std::vector<uint32_t> weak_;
  std::vector<uint8_t> strong_;
};

// The blocks [first, end) of a signature by weak sum: open addressing,
// linear probing, twice as many slots as blocks. Blocks with equal weak and
// strong sums are kept once (a copy of either gives the same bytes). A
// compact index keeps only each slot's block (4 bytes, not 8) and reads
// the weak sum from the signature when probing: half the memory, for the
// index of every block, which is probed rarely.
class BlockIndex {
 public:
  BlockIndex(const BlockSignature& sig, uint32_t first, uint32_t end,
             bool compact = false);
  BlockIndex(const BlockIndex&) = delete;
  BlockIndex& operator=(const BlockIndex&) = delete;

  bool Covers(uint32_t first, uint32_t end) const {
    return first_ <= first && end <= end_;
  }
  // The first indexed block with this weak sum whose strong sum is
  // `strong`, or -1. `strong` is computed by the caller only when asked:
  // `get_strong` is called at most once, and only if the weak sum is found.
  template <typename GetStrong>
  int64_t Find(uint32_t weak, GetStrong&& get_strong) const;

  size_t bytes() const {
    return slots_.size() * sizeof(Slot) + blocks_.size() * sizeof(uint32_t);
  }

 private:
  struct Slot {
    uint32_t weak;
    uint32_t block;  // kEmpty: a free slot.
  };
  static constexpr uint32_t kEmpty = UINT32_MAX;
  size_t Home(uint32_t weak) const { return (weak * 0x9E3779B1u) >> shift_; }
  uint32_t BlockAt(size_t i) const {
    return compact_ ? blocks_[i] : slots_[i].block;
  }
  uint32_t WeakAt(size_t i) const {
    return compact_ ? sig_.weak(blocks_[i]) : slots_[i].weak;
  }
  const BlockSignature& sig_;
  uint32_t first_, end_;
  bool compact_;
  int shift_;
  size_t mask_;
  std::vector<Slot> slots_;       // When not compact.
  std::vector<uint32_t> blocks_;  // When compact.
};

struct BlockDeltaOptions {
  // The basis blocks searched first for a part of the new file: those
  // within `near_bytes` of the part's own offsets.
  uint64_t near_bytes = 32 << 20;
  // A literal run at least this long also probes the index of every
  // block, and so does every position after a block found that way, until
  // a near block matches again.
  uint64_t far_after = 4096;
};

// The basis blocks near a part of the new file [offset, offset + len).
struct BlockRange {
  uint32_t first, end;
};
BlockRange NearBlocks(const BlockSignature& sig, uint64_t offset, uint64_t len,
                      const BlockDeltaOptions& opt);

// Appends to `out` one complete librsync delta stream (magic to END) that
// turns the basis into `target`, the part of the new file that starts at
// `offset`. `near` indexes the blocks NearBlocks names for it; `all` (null
// when `near` covers every block) indexes every block. With `file_end`
// the target ends the new file, so its tail may match the basis's last,
// short block.
void BlockDelta(const BlockSignature& sig, const BlockIndex& near,
                const BlockIndex* all, absl::string_view target, bool file_end,
                const BlockDeltaOptions& opt, std::string* out);

// A whole-buffer convenience (tests, fuzzing): the delta of `target`
// against a serialized signature.
absl::StatusOr<std::string> BlockDeltaOf(absl::string_view signature,
                                         absl::string_view target,
                                         const BlockDeltaOptions& opt = {});

template <typename GetStrong>
int64_t BlockIndex::Find(uint32_t weak, GetStrong&& get_strong) const {
  const uint8_t* strong = nullptr;
  for (size_t i = Home(weak);; i = (i + 1) & mask_) {
    const uint32_t block = BlockAt(i);
    if (block == kEmpty) return -1;
    if (WeakAt(i) != weak) continue;
    if (strong == nullptr) strong = get_strong();
    if (__builtin_memcmp(strong, sig_.strong(block), sig_.strong_len()) == 0) {
      return block;
    }
  }
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_BLOCK_DELTA_H_
