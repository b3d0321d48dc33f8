#include "common/entropy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

namespace gwmirror {

double ShannonEntropy(absl::string_view data) {
  if (data.empty()) return 0;
  std::array<uint32_t, 256> counts{};
  for (unsigned char c : data) ++counts[c];
  const double n = static_cast<double>(data.size());
  double bits = 0;
  for (uint32_t k : counts) {
    if (k == 0) continue;
    const double p = k / n;
    bits -= p * std::log2(p);
  }
  return bits;
}

double HighEntropyAbove(size_t n) {
  if (n < 2) return 8;  // One byte says nothing.
  return std::min(
      7.0, 0.85 * std::log2(static_cast<double>(std::min<size_t>(n, 256))));
}

ContentLook LookAt(absl::string_view sample) {
  size_t text = 0;
  for (unsigned char c : sample) {
    text += (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
  }
  return {ShannonEntropy(sample),
          sample.empty() ? 1.0 : static_cast<double>(text) / sample.size(),
          sample.size()};
}

}  // namespace gwmirror
