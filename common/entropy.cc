#include "common/entropy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "common/utf8.h"

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
  // Printable ASCII, tab, CR, LF, and whole UTF-8 sequences (text in any
  // language); a sample cut in the middle of one counts that tail as text.
  size_t text = 0;
  for (size_t i = 0; i < sample.size();) {
    const unsigned char c = sample[i];
    const size_t n = Utf8SequenceAt(sample, i);
    if (n > 1 || (n == 0 && c >= 0x80 && sample.size() - i < 4)) {
      text += n > 1 ? n : 1;
      i += n > 1 ? n : 1;
      continue;
    }
    text += (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
    ++i;
  }
  return {ShannonEntropy(sample),
          sample.empty() ? 1.0 : static_cast<double>(text) / sample.size(),
          sample.size()};
}

}  // namespace gwmirror
