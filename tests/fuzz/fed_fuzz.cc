// A .fed deployment archive comes from whoever hands it over: ReadFed
// takes any bytes and either refuses them, naming why, or gives a
// deployment with a plain id and plain top-level store names.
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "node/sample/deployment.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  // A deflated .fed of three files (META-INF/MANIFEST.MF with its Id,
  // PrimaryStore.xml, configs.xml), written by Python's zipfile.
  const std::string fed = absl::HexStringToBytes(
      "504b0304140000000800ee39855d8f7b74bf2600000024000000140000004d4554412d49"
      "4e46"
      "2f4d414e49464553542e4d46f34dcccb4c4b2d2ed10d4b2d2acecccfb35230d433e0e5f2"
      "4cb1"
      "52304d3348d63534e4e50200504b0304140000000800ee39855d751d2ce0260000003600"
      "0000"
      "100000005072696d61727953746f72652e786d6cb349cd2bc92ca90c2ec92f4a75492c49"
      "b4b3"
      "810828945416a4da2a392ae9dbd9e8a3abe10200504b0304140000000800ee39855d645b"
      "9832"
      "0d0000000b0000000b000000636f6e666967732e786d6cb349cecf4bcb4c2fd6b7e30200"
      "504b"
      "01021403140000000800ee39855d8f7b74bf260000002400000014000000000000000000"
      "0000"
      "8001000000004d4554412d494e462f4d414e49464553542e4d46504b0102140314000000"
      "0800"
      "ee39855d751d2ce026000000360000001000000000000000000000008001580000005072"
      "696d"
      "61727953746f72652e786d6c504b01021403140000000800ee39855d645b98320d000000"
      "0b00"
      "00000b00000000000000000000008001ac000000636f6e666967732e786d6c504b050600"
      "0000"
      "0003000300b9000000e20000000000");
  return {fed, fed.substr(0, fed.size() / 2), "PK\x03\x04"};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto d =
      gwmirror::ReadFed(std::string(reinterpret_cast<const char*>(data), size));
  if (!d.ok()) return 0;
  if (d->id.empty() || d->id[0] == '.' || absl::StrContains(d->id, "/")) {
    std::abort();
  }
  for (const auto& [name, content] : d->files) {
    if (name.empty() || name[0] == '.' || absl::StrContains(name, "/")) {
      std::abort();
    }
  }
  return 0;
}
