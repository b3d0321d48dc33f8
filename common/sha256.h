// SHA-256 over OpenSSL's EVP interface. Sha256 is a streaming hasher owned by
// one thread at a time; the free functions are thread-safe.
#ifndef GWMIRROR_COMMON_SHA256_H_
#define GWMIRROR_COMMON_SHA256_H_

#include <openssl/evp.h>

#include <array>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

using Digest = std::array<unsigned char, 32>;

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest; the hasher must not be used afterwards.
  Digest Finish();

 private:
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
};

Digest Sha256Of(absl::string_view data);

// The SHA-256 of what `fd` holds from its start (read with pread: its
// offset stays), as raw bytes, and how many bytes that was. Errors name
// `what`.
struct FdDigest {
  std::string sha256;
  uint64_t bytes = 0;
};
absl::StatusOr<FdDigest> Sha256OfFd(int fd, absl::string_view what);
// Digest as 32 raw bytes in a string (the wire form).
std::string DigestBytes(const Digest& d);
// Lower-case hex of raw digest bytes (any length).
std::string HexOf(absl::string_view raw);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_SHA256_H_
