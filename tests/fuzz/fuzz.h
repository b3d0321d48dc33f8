// Shared declarations of the fuzz targets. Each target defines
// LLVMFuzzerTestOneInput and GwmFuzzSeeds (valid inputs to mutate). Built
// with libFuzzer under GWMIRROR_LIBFUZZER, otherwise with driver.cc, a
// bounded deterministic mutator that ctest runs.
#ifndef GWMIRROR_TESTS_FUZZ_FUZZ_H_
#define GWMIRROR_TESTS_FUZZ_FUZZ_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
std::vector<std::string> GwmFuzzSeeds();

#endif  // GWMIRROR_TESTS_FUZZ_FUZZ_H_
