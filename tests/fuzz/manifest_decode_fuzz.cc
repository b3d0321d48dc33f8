// Manifest::Decode: any input either fails cleanly or decodes to a manifest
// whose encoding decodes to the same bytes (decode(encode(x)) == x).
#include <cstdlib>

#include "common/manifest.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  using gwmirror::Entry;
  std::vector<Entry> es(3);
  es[0].set_path("r/a");
  es[0].set_type(gwmirror::v1::ENTRY_TYPE_DIRECTORY);
  es[1].set_path("r/a/f");
  es[1].set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  es[1].set_sha256(std::string(32, 'h'));
  es[1].set_size(5);
  es[2].set_path("r/l");
  es[2].set_type(gwmirror::v1::ENTRY_TYPE_SYMLINK);
  es[2].set_link_target("../x");
  return {gwmirror::Manifest::FromEntries(es)->Encode()};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  auto m = gwmirror::Manifest::Decode(in);
  if (m.ok()) {
    auto again = gwmirror::Manifest::Decode(m->Encode());
    if (!again.ok() || again->Encode() != m->Encode()) std::abort();
  }
  return 0;
}
