// The source's delta search: any bytes as a signature are parsed or refused
// without a crash, and any basis and target give a delta that librsync's
// patcher turns back into the target, whatever the block length, the
// near window and the far index's bound.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>

#include "common/block_delta.h"
#include "common/delta.h"
#include "common/fd.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  std::string rows;
  for (int i = 0; i < 300; ++i)
    rows += "row " + std::to_string(i * 31 % 97) + ";";
  std::string edited = rows;
  edited.insert(700, "new bytes");
  edited.erase(2000, 40);
  return {
      std::string("\x10\x01\x02\x03", 4) + rows + edited,
      std::string("\x80\x02\x00\x01", 4) + rows + rows,
      *gwmirror::SignatureOf(rows, 64),
      *gwmirror::SignatureOf(rows, 64, gwmirror::SignatureKind::kSeededXxh3)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  // The input as a hostile signature, and itself as the target.
  auto hostile = gwmirror::BlockDeltaOf(in, in);
  if (hostile.ok() && hostile->size() < 4) std::abort();
  if (size < 4) return 0;
  // The rest as a basis and a target, cut where the first byte says.
  absl::string_view rest = in.substr(4);
  const size_t cut = rest.size() * data[0] / 256;
  const std::string basis(rest.substr(0, cut));
  const std::string target(rest.substr(cut));
  const uint32_t block_len = 8u << (data[1] % 5);
  gwmirror::BlockDeltaOptions opt;
  opt.near_bytes = size_t{data[2]} * 16;
  opt.far_after = size_t{data[3]} * 4;
  // A far index of every block, or of every few (a bounded one).
  opt.far_blocks = data[3] & 0x80 ? 1 + data[2] % 64 : 1 << 20;
  // Either kind of signature, as the second byte's top bit says.
  auto sig = gwmirror::SignatureOf(basis, block_len,
                                   data[1] & 0x80
                                       ? gwmirror::SignatureKind::kSeededXxh3
                                       : gwmirror::SignatureKind::kLibrsync);
  if (!sig.ok()) std::abort();
  auto delta = gwmirror::BlockDeltaOf(*sig, target, opt);
  if (!delta.ok()) std::abort();
  gwmirror::UniqueFd fd(memfd_create("basis", MFD_CLOEXEC));
  if (write(fd.get(), basis.data(), basis.size()) !=
      static_cast<ssize_t>(basis.size())) {
    std::abort();
  }
  gwmirror::Patcher p(fd.get(), target.size());
  std::string out;
  absl::Status st = p.Feed(*delta, true, [&](absl::string_view s) {
    out.append(s.data(), s.size());
    return absl::OkStatus();
  });
  if (!st.ok() || out != target) std::abort();
  return 0;
}
