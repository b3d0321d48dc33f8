// HashIndex::Decode: any body fails cleanly or decodes to an index whose
// encoding decodes again to the same entries.
#include <sys/stat.h>

#include <cstdlib>

#include "common/sha256.h"
#include "node/hash_index.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  gwmirror::HashIndex index;
  struct stat st {};
  st.st_size = 42;
  st.st_ino = 7;
  index.Record("opt/a", st, std::string(32, 'a'));
  index.Record("opt/b/c", st, std::string(32, 'b'));
  std::string enc = index.Encode("0b1d7e1c-boot");
  return {enc.substr(0, enc.size() - 32)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The input is the body; a valid checksum is appended so the fuzzer
  // reaches the parser instead of stopping at the trailer check.
  std::string in(reinterpret_cast<const char*>(data), size);
  in += gwmirror::DigestBytes(gwmirror::Sha256Of(in));
  auto index = gwmirror::HashIndex::Decode(in);
  if (index.ok()) {
    auto again = gwmirror::HashIndex::Decode(index->Encode(index->boot_id()));
    if (again.ok() && again->boot_id() != index->boot_id()) std::abort();
    if (!again.ok() || again->size() != index->size()) std::abort();
  }
  return 0;
}
