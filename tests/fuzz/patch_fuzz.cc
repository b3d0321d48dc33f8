// Patcher: arbitrary delta bytes against a fixed basis never crash, never
// write more than the cap, and a valid delta split anywhere reproduces its
// target.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>

#include "common/delta.h"
#include "tests/fuzz/fuzz.h"

namespace {

const std::string& Basis() {
  static const std::string* b = [] {
    auto* s = new std::string;
    for (int i = 0; i < 3000; ++i) *s += "row " + std::to_string(i * 7919 % 1000) + ";";
    return s;
  }();
  return *b;
}

int BasisFd() {
  static int fd = [] {
    char path[] = "/tmp/gwmirror-fuzz-basis-XXXXXX";
    int f = mkstemp(path);
    unlink(path);
    const std::string& b = Basis();
    if (write(f, b.data(), b.size()) != static_cast<ssize_t>(b.size())) abort();
    return f;
  }();
  return fd;
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  std::string target = Basis();
  target.insert(100, "new bytes");
  target.erase(5000, 30);
  auto sig = gwmirror::SignatureOf(Basis(), 256);
  return {*gwmirror::DeltaOf(*sig, target)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kCap = 1 << 16;
  gwmirror::Patcher p(BasisFd(), kCap);
  uint64_t total = 0;
  auto sink = [&](absl::string_view s) {
    total += s.size();
    return absl::OkStatus();
  };
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  size_t split = size ? data[0] % 17 + 1 : 1;
  absl::Status st;
  for (size_t off = 0; off < in.size() && st.ok(); off += split) {
    st = p.Feed(in.substr(off, split), false, sink);
  }
  if (st.ok()) st = p.Feed("", true, sink);
  if (total > kCap) std::abort();
  return 0;
}
