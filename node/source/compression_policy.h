// Compression only where it pays: per push stream, whether the next chunk
// of file data is compressed (zstd) or sent raw. Bulk data (chunks of a
// whole file of at least kMinMeasured bytes) goes the way that measurably
// costs less: a chunk's cost is the wall time of its encoding and its
// write to the stream, per raw byte. On a slow link the write waits for
// the wire and compression wins; on loopback or a fast LAN the link waits
// for the compressor (and the replica for its decompressor), and raw wins.
// Mostly the cheaper way is used; short runs of the other keep its figure
// current, further apart (up to kMaxSpacing times) while they find it
// clearly dearer, and a run of the cheaper way ends early once it stops
// being cheaper. Small chunks (a configuration file each) and deltas are always
// compressed: there compression is cheap beside the work already done (a
// delta's search costs far more than compressing its output), and they
// are what a slow link carries most. Thread-compatible.
#ifndef GWMIRROR_NODE_SOURCE_COMPRESSION_POLICY_H_
#define GWMIRROR_NODE_SOURCE_COMPRESSION_POLICY_H_

#include <cstdint>

#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

class CompressionPolicy {
 public:
  // Chunks smaller than this are not measured (a message's fixed cost
  // would dominate) and are compressed.
  static constexpr uint64_t kMinMeasured = 64 << 10;
  // Each way is tried for this many measured chunks first; then runs of
  // kExploit chunks (or more, below) of the cheaper way alternate with
  // kExplore of the other. The first chunk of each run is not measured: the
  // stream's buffers still hold what the other way sent.
  static constexpr int kWarmup = 4;
  static constexpr int kExploit = 30;
  static constexpr int kExplore = 3;
  // A run of the other way that finds the cheaper way under kClearly times
  // its cost doubles the next run of the cheaper way, up to kMaxSpacing *
  // kExploit chunks; any other result sets it back to kExploit.
  static constexpr double kClearly = 0.75;
  static constexpr int kMaxSpacing = 8;

  explicit CompressionPolicy(gwmirror::v1::SourceConfig::Compression mode =
                                 gwmirror::v1::SourceConfig::COMPRESSION_AUTO);

  // Whether to compress the next chunk, of `raw_bytes` of a whole file or
  // of a `delta`.
  bool Compress(uint64_t raw_bytes, bool delta) const;
  // What sending a chunk cost; `compressed` is how it went. Only bulk
  // chunks of whole files sent the way Compress chose count.
  void Observe(bool compressed, uint64_t raw_bytes, bool delta,
               absl::Duration took);

  // Mean cost of each way so far, in nanoseconds per raw byte (0 before
  // the first measurement).
  double ns_per_byte(bool compressed) const {
    return ways_[compressed].ns_per_byte;
  }

 private:
  struct Way {
    double ns_per_byte = 0;
    int measured = 0;
  };
  // `explored`: an exploration (a run of the other way) or the warm-up
  // ended, and its result sets spacing_.
  void NextRun(bool explored);

  gwmirror::v1::SourceConfig::Compression mode_;
  Way ways_[2];
  bool current_ = true;  // Compress in the current run.
  int run_left_ = 0;     // Measured chunks left in the current run.
  bool skip_next_ = false;
  bool explore_next_ = false;
  // Runs of the cheaper way are kExploit * spacing_ chunks.
  int spacing_ = 1;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_COMPRESSION_POLICY_H_
