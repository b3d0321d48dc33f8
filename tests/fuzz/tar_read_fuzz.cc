// TarReader and the export comment: arbitrary archive bytes never crash,
// never read past the input, and a valid archive split anywhere reads back.
#include <cstring>

#include "common/manifest.h"
#include "common/tar.h"
#include "node/replica/restore.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  gwmirror::Entry e;
  e.set_path("opt/a/conf/x.props");
  e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e.set_mode(0644);
  e.set_size(5);
  e.set_sha256(std::string(32, 'x'));
  auto m = gwmirror::Manifest::FromEntries({e});
  std::string tar =
      gwmirror::TarGlobalComment(gwmirror::ExportComment("gw1", 3, *m));
  gwmirror::TarMember d;
  d.type = gwmirror::TarMember::kDirectory;
  d.path = "opt/a/conf";
  d.mode = 0755;
  tar += gwmirror::TarHeader(d);
  gwmirror::TarMember f;
  f.path = "opt/a/conf/x.props";
  f.mode = 0644;
  f.size = 5;
  f.mtime_ns = 1700000000123456789;
  tar += gwmirror::TarHeader(f) + "hello" + gwmirror::TarPadding(5);
  gwmirror::TarMember l;
  l.type = gwmirror::TarMember::kSymlink;
  l.path = std::string(120, 'p');
  l.link_target = std::string(130, 't');
  tar += gwmirror::TarHeader(l) + gwmirror::TarEnd();
  return {tar};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t pos = 0;
  gwmirror::TarReader r([&](char* buf, size_t n) -> absl::StatusOr<size_t> {
    size_t k = std::min(n, size - pos);
    memcpy(buf, data + pos, k);
    pos += k;
    return k;
  });
  gwmirror::TarMember m;
  for (int i = 0; i < 1000; ++i) {
    auto more = r.Next(&m);
    if (!more.ok() || !*more) break;
    uint64_t got = 0;
    absl::Status st = r.ReadData([&](absl::string_view p) {
      got += p.size();
      return absl::OkStatus();
    });
    if (st.ok() && got != m.size) abort();
    if (!st.ok()) break;
  }
  (void)gwmirror::ParseExportComment(r.comment());
  if (pos > size) abort();
  return 0;
}
