// The source's delta search, in librsync's formats but not librsync's
// search. A signature has librsync's layout (RabinKarp weak sums and
// strong sums, built by SignatureBuilder: BLAKE2 as librsync's own, or
// gwmirror's seeded XXH3, SignatureKind) and a delta is a librsync delta stream
// (the replica patches it with librsync's Patcher), but the search differs
// in where it looks: librsync probes one hash table of the whole basis for
// every byte it rolls over, and for a 1 GiB dump that table is tens of
// megabytes, so each rolled byte is a cache miss. Here each part of the
// new file is searched against the basis blocks near the same offset (a
// dump's rows shift by little), in a table that fits in cache; a table of
// blocks from the whole basis, bounded in size, is probed only inside a
// literal run long enough to suggest that content moved far. The signature
// is read in place and its pages given back as the search moves on, so a
// search's memory does not grow with the file. docs/ARCHITECTURE.md,
// "Deltas".
#ifndef GWMIRROR_COMMON_BLOCK_DELTA_H_
#define GWMIRROR_COMMON_BLOCK_DELTA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fd.h"

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

// A signature of either kind, read in place: blocks are read from the
// signature's own bytes (a string it owns, or a mapped cache file), never
// copied, so a large file's signature costs only the pages a search
// touches, and Release gives pages back once a search has moved past them.
// Read only once parsed, so any number of searches share one.
class BlockSignature {
 public:
  static absl::StatusOr<BlockSignature> Parse(std::string sig);
  static absl::StatusOr<BlockSignature> Parse(
      std::shared_ptr<const MappedFile> sig);

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
  uint32_t blocks() const { return blocks_; }
  uint32_t weak(uint32_t block) const {
    uint32_t be;
    __builtin_memcpy(&be, At(block), 4);
    return __builtin_bswap32(be);
  }
  const uint8_t* strong(uint32_t block) const { return At(block) + 4; }
  // Blocks [first, end) will not be read soon: a mapped signature drops
  // their pages from resident memory (they are read again if they are).
  void Release(uint32_t first, uint32_t end) const;

 private:
  static absl::StatusOr<BlockSignature> Parse(absl::string_view sig,
                                              std::shared_ptr<const void> owner,
                                              const MappedFile* mapped);
  const uint8_t* At(uint32_t block) const {
    return body_ + size_t{block} * per_;
  }
  uint32_t block_len_ = 0;
  uint32_t strong_len_ = 0;
  bool xxh3_ = false;
  uint64_t seed_ = 0;
  uint32_t blocks_ = 0;
  size_t per_ = 0;  // Bytes per block: weak sum and strong sum.
  const uint8_t* body_ = nullptr;
  std::shared_ptr<const void> owner_;   // Keeps body_ alive.
  const MappedFile* mapped_ = nullptr;  // Owned by owner_, when mapped.
};

// Every `stride`-th block of [first, end) by weak sum: open addressing,
// linear probing, twice as many slots as blocks. Blocks with equal weak
// and strong sums are kept once (a copy of either gives the same bytes).
// Each slot holds its block's weak sum, so a probe reads the signature
// only for a candidate whose weak sum matches.
class BlockIndex {
 public:
  BlockIndex(const BlockSignature& sig, uint32_t first, uint32_t end,
             uint32_t stride = 1);
  BlockIndex(const BlockIndex&) = delete;
  BlockIndex& operator=(const BlockIndex&) = delete;
  // The index for a search's far probes, bounded in size: every block of
  // the signature, or every stride-th one when it has more than
  // `max_blocks` (BlockDeltaOptions::far_blocks). Content moved far is
  // still found from one indexed block on, since a search tries the block
  // after each copy before any index. The signature's pages are released
  // as they are read.
  static std::unique_ptr<BlockIndex> Far(const BlockSignature& sig,
                                         uint32_t max_blocks);

  bool Covers(uint32_t first, uint32_t end) const {
    return stride_ == 1 && first_ <= first && end <= end_;
  }
  // The first indexed block with this weak sum whose strong sum is
  // `strong`, or -1. `strong` is computed by the caller only when asked:
  // `get_strong` is called at most once, and only if the weak sum is found.
  template <typename GetStrong>
  int64_t Find(uint32_t weak, GetStrong&& get_strong) const;
  // False when no indexed block has this weak sum (true may be wrong):
  // one bit of a table a sixteenth of the slots' size.
  bool MayHold(uint32_t weak) const {
    const uint32_t b = Bit(weak);
    return (filter_[b >> 6] >> (b & 63)) & 1;
  }

  size_t bytes() const {
    return slots_.size() * sizeof(Slot) + filter_.size() * sizeof(uint64_t);
  }

 private:
  struct Slot {
    uint32_t weak;
    uint32_t block;  // kEmpty: a free slot.
  };
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Unfilled {};
  BlockIndex(const BlockSignature& sig, uint32_t first, uint32_t end,
             uint32_t stride, Unfilled);
  void Insert(uint32_t block);
  size_t Home(uint32_t weak) const { return (weak * 0x9E3779B1u) >> shift_; }
  // The weak sum's bit in filter_ (another hash than Home's).
  uint32_t Bit(uint32_t weak) const {
    return (weak * 0x85EBCA77u) >> filter_shift_;
  }
  const BlockSignature& sig_;
  uint32_t first_, end_, stride_;
  int shift_;
  size_t mask_;
  std::vector<Slot> slots_;
  // One bit per weak-sum hash, set for every indexed block: 8 to 16 bits a
  // block, a sixteenth of the slots' size. A search rolls over every byte
  // of a changed region and probes the index at each; most probes find
  // nothing, and the filter says so from a table that stays in cache
  // (64 KiB for the 36 MiB of blocks near a segment) where the slots
  // (1 MiB) mostly miss.
  int filter_shift_;
  std::vector<uint64_t> filter_;
};

struct BlockDeltaOptions {
  // The basis blocks searched first for a part of the new file: those
  // within `near_bytes` of the part's own offsets.
  uint64_t near_bytes = 16 << 20;
  // A literal run at least this long also probes the far index, and so
  // does every position after a block found that way, until a near block
  // matches again.
  uint64_t far_after = 4096;
  // The most blocks the far index holds (BlockIndex::Far): 16 MiB of slots.
  uint32_t far_blocks = 1 << 20;
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
// when `near` covers every block) is BlockIndex::Far. After each copy the
// block after it is tried first. With `file_end`
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
  if (!MayHold(weak)) return -1;
  const uint8_t* strong = nullptr;
  for (size_t i = Home(weak);; i = (i + 1) & mask_) {
    const uint32_t block = slots_[i].block;
    if (block == kEmpty) return -1;
    if (slots_[i].weak != weak) continue;
    if (strong == nullptr) strong = get_strong();
    if (__builtin_memcmp(strong, sig_.strong(block), sig_.strong_len()) == 0) {
      return block;
    }
  }
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_BLOCK_DELTA_H_
