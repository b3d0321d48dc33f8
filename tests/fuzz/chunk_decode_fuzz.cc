// ChunkDecoder: the first 4 bytes are raw_size, the rest the chunk data.
#include <cstdlib>
#include <cstring>

#include "common/chunk_codec.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  gwmirror::ChunkEncoder enc(1);
  std::string data;
  uint32_t raw = 0;
  enc.Encode(std::string(5000, 'q'), &data, &raw);
  std::string seed(4, '\0');
  std::memcpy(seed.data(), &raw, 4);
  return {seed + data};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t raw = 0;
  std::memcpy(&raw, data, 4);
  gwmirror::ChunkDecoder dec;
  auto out = dec.Decode(
      absl::string_view(reinterpret_cast<const char*>(data) + 4, size - 4), raw);
  if (out.ok() && raw != 0 && out->size() != raw) std::abort();
  return 0;
}
