// librsync behind RAII and absl::Status. Every job is a push-style state
// machine: callers Feed() input as it arrives (any split) and receive output
// through a sink, so a job maps 1:1 onto a stream of chunks. librsync does
// not verify patch output; callers check a whole-file SHA-256 themselves.
// One object per thread; no shared state except librsync's trace level.
#ifndef GWMIRROR_COMMON_DELTA_H_
#define GWMIRROR_COMMON_DELTA_H_

#include <librsync.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

class DirectReader;  // common/direct_io.h

// Receives each piece of a job's output; a non-OK status stops the job.
using ByteSink = std::function<absl::Status(absl::string_view)>;

struct RsJobFree {
  void operator()(rs_job_t* j) const { rs_job_free(j); }
};
struct RsSignatureFree {
  void operator()(rs_signature_t* s) const { rs_free_sumset(s); }
};
using RsJobPtr = std::unique_ptr<rs_job_t, RsJobFree>;
using RsSignaturePtr = std::unique_ptr<rs_signature_t, RsSignatureFree>;

// Drives one rs_job_t. Input may be split anywhere.
class RsStream {
 public:
  // `what` names the job in error messages ("patch", "delta", ...). With
  // `keep_trailing`, input after the end of the stream is kept for
  // TakeTrailing() instead of being an error.
  RsStream(RsJobPtr job, std::string what, bool keep_trailing = false);
  // Feeds input; `eof` marks the last call. Output goes to `sink`.
  absl::Status Feed(absl::string_view in, bool eof, const ByteSink& sink);
  bool done() const { return done_; }
  std::string TakeTrailing() { return std::exchange(trailing_, std::string()); }

 private:
  RsJobPtr job_;
  std::string what_;
  bool keep_trailing_;
  std::string trailing_;
  std::string pending_;
  std::string out_;
  bool done_ = false;
};

// The strong sums a signature holds; both kinds have librsync's layout and
// RabinKarp weak sums.
enum class SignatureKind {
  // BLAKE2b, byte for byte what librsync's signature job writes: what
  // librsync's own delta job loads (LoadSignature; the history's objects).
  kLibrsync,
  // XXH3-128 with a random 64-bit seed kept in the header (block_delta.h,
  // kSeededXxh3SigMagic), at most 16 bytes a block: read only by the
  // source's own search (BlockSignature), eight times cheaper to compute
  // than BLAKE2b. Not a cryptographic hash: a crafted collision (the seed
  // is secret to the node, so it would have to be found blind) could only
  // make a delta patch to wrong bytes, which the replica's SHA-256 of the
  // whole file refuses, asking for the file whole.
  kSeededXxh3,
};

// Streams a signature of the data fed to it (librsync picks the block and
// strong sum lengths), computed here: librsync sums a block's weak sum one
// byte at a time, which made it 5-6 ns a byte against about 1.5 here.
class SignatureBuilder {
 public:
  // `file_size` picks a safe strong-sum length; `block_len` of 0 means 2048.
  SignatureBuilder(uint64_t file_size, uint32_t block_len, SignatureKind kind);
  absl::Status Feed(absl::string_view in, bool eof, const ByteSink& sink);

 private:
  void Block(absl::string_view data);
  uint32_t block_len_;
  uint32_t strong_len_;
  SignatureKind kind_;
  uint64_t seed_ = 0;
  std::string partial_;  // The start of a block still being fed.
  std::string out_;      // Output not yet given to the sink.
  bool done_ = false;
};

// A loaded, indexed signature ready for delta jobs.
absl::StatusOr<RsSignaturePtr> LoadSignature(absl::string_view sig);

// Makes a delta of new content against a loaded signature. The signature
// must outlive the builder.
class DeltaBuilder {
 public:
  explicit DeltaBuilder(rs_signature_t* sig);
  absl::Status Feed(absl::string_view in, bool eof, const ByteSink& sink) {
    return stream_.Feed(in, eof, sink);
  }

 private:
  RsStream stream_;
};

// Applies a delta against a basis file descriptor (read with pread), or
// read through a DirectReader (a large basis, past the page cache). The
// delta may be a concatenation of complete librsync delta streams, each
// producing the next part of the output (a source computes the parts of a
// large file in parallel). Output beyond `max_output` bytes is refused: a
// hostile delta cannot fill a disk.
class Patcher {
 public:
  Patcher(int basis_fd, uint64_t max_output);
  // `basis` must outlive the patcher.
  Patcher(DirectReader* basis, uint64_t max_output);
  absl::Status Feed(absl::string_view delta, bool eof, const ByteSink& sink);

 private:
  static rs_result CopyCallback(void* opaque, rs_long_t pos, size_t* len,
                                void** buf);
  std::unique_ptr<RsStream> NewStream();
  const int basis_fd_ = -1;
  DirectReader* const reader_ = nullptr;
  // Why the basis could not be read (librsync says only "IO error").
  absl::Status read_error_;
  uint64_t max_output_;
  uint64_t written_ = 0;
  std::unique_ptr<RsStream> stream_;
};

// Whole-buffer conveniences (tests, benchmarks, small files). DeltaOf is
// librsync's job, so it takes a kLibrsync signature only.
absl::StatusOr<std::string> SignatureOf(
    absl::string_view basis, uint32_t block_len,
    SignatureKind kind = SignatureKind::kLibrsync);
absl::StatusOr<std::string> DeltaOf(absl::string_view signature,
                                    absl::string_view target);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_DELTA_H_
