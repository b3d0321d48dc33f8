#include "node/source/compression_policy.h"

#include <algorithm>

namespace gwmirror {
namespace {
// Weight of a new measurement in a way's running cost.
constexpr double kWeight = 0.25;
}  // namespace

using gwmirror::v1::SourceConfig;

CompressionPolicy::CompressionPolicy(SourceConfig::Compression mode)
    : mode_(mode) {
  NextRun(/*explored=*/false);
}

void CompressionPolicy::NextRun(bool explored) {
  // Each way gets its warm-up first, compression first (the old default).
  if (ways_[1].measured < kWarmup) {
    current_ = true;
    run_left_ = kWarmup - ways_[1].measured;
  } else if (ways_[0].measured < kWarmup) {
    current_ = false;
    run_left_ = kWarmup - ways_[0].measured;
  } else {
    const bool best = ways_[1].ns_per_byte <= ways_[0].ns_per_byte;
    if (explored) {
      // A run of the other way (or the warm-up) ended: found clearly
      // dearer, the next one comes later; close or cheaper, as soon as
      // before.
      const bool clearly =
          best != current_ &&
          ways_[best].ns_per_byte < kClearly * ways_[current_].ns_per_byte;
      spacing_ = clearly ? std::min(2 * spacing_, kMaxSpacing) : 1;
    }
    // A run of the cheaper way, then a short one of the other.
    current_ = explore_next_ ? !best : best;
    run_left_ = explore_next_ ? kExplore : kExploit * spacing_;
    explore_next_ = !explore_next_;
  }
  skip_next_ = true;
}

bool CompressionPolicy::Compress(uint64_t raw_bytes, bool delta) const {
  switch (mode_) {
    case SourceConfig::COMPRESSION_ALWAYS:
      return true;
    case SourceConfig::COMPRESSION_NEVER:
      return false;
    default:
      return delta || raw_bytes < kMinMeasured || current_;
  }
}

void CompressionPolicy::Observe(bool compressed, uint64_t raw_bytes, bool delta,
                                absl::Duration took) {
  if (mode_ == SourceConfig::COMPRESSION_ALWAYS ||
      mode_ == SourceConfig::COMPRESSION_NEVER) {
    return;
  }
  if (delta || raw_bytes < kMinMeasured || compressed != current_) return;
  if (skip_next_) {
    skip_next_ = false;
    return;
  }
  Way& w = ways_[compressed];
  double cost = absl::ToDoubleNanoseconds(took) / raw_bytes;
  w.ns_per_byte =
      w.measured == 0 ? cost : (1 - kWeight) * w.ns_per_byte + kWeight * cost;
  ++w.measured;
  // A run of the cheaper way that stopped being cheaper (the link slowed,
  // or sped up) ends now, and the other way runs next.
  // (explore_next_: this is such a run, both ways past their warm-up.)
  if (explore_next_ && w.ns_per_byte > ways_[!compressed].ns_per_byte) {
    spacing_ = 1;
    explore_next_ = false;
    NextRun(/*explored=*/false);
    return;
  }
  if (--run_left_ <= 0) {
    run_left_ = 0;
    // A run of the other way, or the warm-up, ended.
    NextRun(/*explored=*/!explore_next_);
  }
}

}  // namespace gwmirror
