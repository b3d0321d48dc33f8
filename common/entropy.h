// How random a piece of content looks: the Shannon entropy of its bytes,
// in bits per byte (0 for one repeated byte, 8 at most). Encrypted and
// compressed data come close to the most a sample of its size can show;
// XML, properties and SQL stay well below. The anomaly guard compares a
// file's versions by it. Pure functions; thread-safe.
#ifndef GWMIRROR_COMMON_ENTROPY_H_
#define GWMIRROR_COMMON_ENTROPY_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace gwmirror {

// How much of a file is sampled: its first 4 KiB.
inline constexpr size_t kEntropySample = 4096;

// Entropy of `data`'s bytes, in bits per byte (0 for empty data).
double ShannonEntropy(absl::string_view data);

// The entropy above which a sample of `n` bytes counts as high: 85 % of
// the most `n` bytes can show (log2 of min(n, 256)), at most 7 bits.
double HighEntropyAbove(size_t n);

// How a file's sample looks: its entropy, the share of its bytes that are
// text (printable ASCII, tab, CR, LF and whole UTF-8 sequences: XML, JSON,
// properties and scripts in any language are all but entirely text;
// random bytes about 40 %), and its size. -1: not sampled.
struct ContentLook {
  double entropy = -1;
  double text = -1;
  size_t bytes = 0;
};
ContentLook LookAt(absl::string_view sample);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_ENTROPY_H_
