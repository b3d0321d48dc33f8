#include "common/sha256.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/fd.h"

namespace gwmirror {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  // Allocation failure or a missing SHA-256 is a broken process, not an error
  // a caller could handle.
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

void Sha256::Update(const void* data, size_t len) {
  if (len > 0) EVP_DigestUpdate(ctx_.get(), data, len);
}

Digest Sha256::Finish() {
  Digest d{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_.get(), d.data(), &n);
  return d;
}

Digest Sha256Of(absl::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

absl::StatusOr<FdDigest> Sha256OfFd(int fd, absl::string_view what) {
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  FdDigest out;
  for (;;) {
    ssize_t n = pread(fd, buf.data(), buf.size(), out.bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", what));
    }
    if (n == 0) break;
    hash.Update(buf.data(), n);
    out.bytes += n;
  }
  out.sha256 = DigestBytes(hash.Finish());
  return out;
}

std::string DigestBytes(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string HexOf(absl::string_view raw) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace gwmirror
