// ValidateRelativePath: an accepted path never escapes (no "..", no
// leading '/', no NUL) and splits back into itself.
#include <cstdlib>

#include "absl/strings/str_join.h"
#include "common/path.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  return {"opt/Axway-7.7/apigateway/conf/jvm.xml", "a/../b", "/etc/passwd",
          "a//b"};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string p(reinterpret_cast<const char*>(data), size);
  if (!gwmirror::ValidateRelativePath(p).ok()) return 0;
  if (p.empty() || p[0] == '/' || p.find('\0') != std::string::npos) std::abort();
  auto parts = gwmirror::SplitPath(p);
  for (const auto& c : parts) {
    if (c == ".." || c == "." || c.empty()) std::abort();
  }
  if (absl::StrJoin(parts, "/") != p) std::abort();
  return 0;
}
