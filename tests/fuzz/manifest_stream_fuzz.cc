// What a node decodes of a manifest from a peer, as it streams: the
// replica's ManifestDeltaDecoder (a source's Push parts, checked against
// the replica's own mirror set as they arrive) and the source's
// ManifestAssembler (a replica's GetManifest batches). The input is a
// 32-byte digest, then length-prefixed ManifestPart messages. Whatever
// arrives, neither holds more than its bound, and a manifest that comes
// out holds only valid entries the mirror set admits (besides the base's).
#include <cstdlib>

#include "common/manifest_delta.h"
#include "node/scanner.h"
#include "tests/fuzz/fuzz.h"

namespace {

constexpr uint64_t kBound = 16 << 10;

gwmirror::Entry File(const std::string& path, const std::string& content) {
  gwmirror::Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e.set_mode(0644);
  e.set_size(content.size());
  e.set_sha256(gwmirror::DigestBytes(gwmirror::Sha256Of(content)));
  return e;
}

gwmirror::Entry Dir(const std::string& path) {
  gwmirror::Entry e;
  e.set_path(path);
  e.set_type(gwmirror::v1::ENTRY_TYPE_DIRECTORY);
  e.set_mode(0755);
  return e;
}

const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& Roots() {
  static const auto* const kRoots = [] {
    auto* r = new google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>;
    r->Add()->set_path("r");
    auto* init = r->Add();
    init->set_path("etc/init.d");
    init->add_include("vshell-*");
    return r;
  }();
  return *kRoots;
}

const gwmirror::Manifest& Base() {
  static const auto* const kBase =
      new gwmirror::Manifest(*gwmirror::Manifest::FromEntries(
          {Dir("r/conf"), File("r/conf/a.xml", "a"), File("r/b", "b"),
           File("etc/init.d/vshell-gw1", "#!/bin/sh\n")}));
  return *kBase;
}

std::string Frame(const gwmirror::v1::ManifestPart& p) {
  std::string body = p.SerializeAsString();
  std::string out(2, '\0');
  out[0] = static_cast<char>(body.size() & 0xff);
  out[1] = static_cast<char>((body.size() >> 8) & 0xff);
  return out + body;
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  gwmirror::v1::ManifestPart change, removal, hostile;
  *change.add_entries() = File("r/conf/a.xml", "a2");
  *change.add_entries() = File("r/c", "c");
  removal.add_removed("r/b");
  *hostile.add_entries() = File("etc/init.d/anything", "x");
  *hostile.add_entries() = File("r/logs/x", "x");
  hostile.add_removed("../../etc/passwd");
  // A delta whose digest is right, so mutations near it reach the merge.
  auto next = gwmirror::Manifest::FromEntries(
      {Dir("r/conf"), File("r/conf/a.xml", "a2"), File("r/c", "c"),
       File("etc/init.d/vshell-gw1", "#!/bin/sh\n")});
  std::string good = gwmirror::DigestBytes(next->ComputeDigest());
  return {good + Frame(change) + Frame(removal),
          std::string(32, 'd') + Frame(hostile) + Frame(change)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 32) return 0;
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string digest(in.substr(0, 32));
  in.remove_prefix(32);
  gwmirror::MirrorSet mirror_set(Roots());
  gwmirror::ManifestDeltaDecoder decoder(
      /*delta=*/true, kBound, [&](const gwmirror::Entry& e) {
        return mirror_set.Admit(e.path(), e.type());
      });
  gwmirror::ManifestAssembler assembler(kBound);
  bool decoding = true, assembling = true;
  while (in.size() >= 2) {
    size_t n = static_cast<unsigned char>(in[0]) |
               (static_cast<unsigned char>(in[1]) << 8);
    in.remove_prefix(2);
    if (n > in.size()) break;
    gwmirror::v1::ManifestPart part;
    if (!part.ParseFromArray(in.data(), static_cast<int>(n))) break;
    in.remove_prefix(n);
    if (decoding) decoding = decoder.Add(part).ok();
    if (decoder.bytes() > kBound) std::abort();
    gwmirror::v1::ManifestBatch batch;
    *batch.mutable_entries() = part.entries();
    if (assembling) assembling = assembler.Add(std::move(batch)).ok();
  }
  (void)assembler.Finish(digest);
  auto m = decoder.Finish(Base(), digest);
  if (m.ok()) {
    gwmirror::MirrorSet check(Roots());
    for (const gwmirror::Entry& e : m->entries()) {
      if (!gwmirror::ValidateEntry(e).ok()) std::abort();
      const gwmirror::Entry* old = Base().Find(e.path());
      if ((old == nullptr || !gwmirror::SameEntry(*old, e)) &&
          !check.Admit(e.path(), e.type()).ok()) {
        std::abort();
      }
    }
    if (gwmirror::DigestBytes(m->ComputeDigest()) != digest) std::abort();
  }
  return 0;
}
