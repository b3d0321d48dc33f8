// The stored-increment codec without a file system: any bytes parse as a
// header or not, and the records after it decode the same whether they
// arrive whole or in pieces of any size (the first input byte picks the
// piece size), never more than the record lengths allow.
#include <cstdlib>
#include <string>

#include "node/replica/history_object.h"
#include "tests/fuzz/fuzz.h"

namespace {

absl::Status DecodeInPieces(absl::string_view records, size_t piece,
                            std::string* out) {
  gwmirror::HistoryObjectDecoder decoder;
  const gwmirror::ByteSink sink = [out](absl::string_view p) {
    out->append(p.data(), p.size());
    return absl::OkStatus();
  };
  for (size_t pos = 0; pos < records.size(); pos += piece) {
    if (absl::Status st = decoder.Feed(records.substr(pos, piece), sink);
        !st.ok()) {
      return st;
    }
  }
  return decoder.Finish();
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  std::vector<std::string> seeds;
  for (bool delta : {false, true}) {
    gwmirror::HistoryObjectHeader h;
    h.delta = delta;
    h.below = delta ? 3 : 0;
    h.size = 70000;
    if (delta) h.basis_sha = std::string(32, '\x5a');
    std::string content;
    for (int i = 0; content.size() < h.size; ++i) {
      content += "row " + std::to_string(i * 31 % 97) + ";";
    }
    gwmirror::HistoryObjectEncoder encoder(1);
    encoder.Add(content);
    std::string object = gwmirror::EncodeHistoryObjectHeader(h);
    encoder.Flush(/*all=*/true, &object);
    seeds.push_back(std::string(1, '\x07') + object);
  }
  return seeds;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = 1 + data[0] % 64;
  const absl::string_view object(reinterpret_cast<const char*>(data) + 1,
                                 size - 1);
  auto header = gwmirror::ParseHistoryObjectHeader(object);
  if (header.ok()) {
    // What parses re-encodes to the same header bytes, but for a "below"
    // past the 16-bit field and the basis a whole copy does not carry.
    if (header->delta != (header->basis_sha.size() == 32)) std::abort();
    const std::string again = gwmirror::EncodeHistoryObjectHeader(*header);
    if (header->delta &&
        again != object.substr(0, gwmirror::kHistoryObjectHeaderSize)) {
      std::abort();
    }
  }
  const absl::string_view records =
      object.size() > gwmirror::kHistoryObjectHeaderSize
          ? object.substr(gwmirror::kHistoryObjectHeaderSize)
          : object;
  std::string whole, pieces;
  const absl::Status a = DecodeInPieces(records, records.size() + 1, &whole);
  const absl::Status b = DecodeInPieces(records, piece, &pieces);
  // Pieces change nothing: the same verdict, the same bytes up to an error.
  if (a.ok() != b.ok()) std::abort();
  if (a.ok() && whole != pieces) std::abort();
  // Each record of at most kMaxChunk raw bytes costs at least 8 input bytes.
  if (whole.size() > (records.size() / 8 + 1) * gwmirror::kMaxChunk) {
    std::abort();
  }
  return 0;
}
