// Manifest::Decode and DecodeManifestEdit (the replica's staged manifest
// and committed journal records): any input either fails cleanly or
// decodes to a value whose encoding decodes to the same bytes.
#include <cstdlib>

#include "common/manifest.h"
#include "common/manifest_edit.h"
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
  gwmirror::Manifest m = *gwmirror::Manifest::FromEntries(es);
  gwmirror::Manifest less = *gwmirror::Manifest::FromEntries({es[0], es[1]});
  return {m.Encode(),
          gwmirror::EncodeManifestEdit(gwmirror::DiffManifests(m, less, 9)),
          gwmirror::EncodeManifestEdit(gwmirror::DiffManifests(less, m, 10))};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  auto m = gwmirror::Manifest::Decode(in);
  if (m.ok()) {
    auto again = gwmirror::Manifest::Decode(m->Encode());
    if (!again.ok() || again->Encode() != m->Encode()) std::abort();
  }
  auto e = gwmirror::DecodeManifestEdit(in);
  if (e.ok()) {
    const std::string bytes = gwmirror::EncodeManifestEdit(*e);
    auto again = gwmirror::DecodeManifestEdit(bytes);
    if (!again.ok() || gwmirror::EncodeManifestEdit(*again) != bytes) {
      std::abort();
    }
  }
  return 0;
}
