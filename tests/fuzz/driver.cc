// Deterministic fuzz driver for builds without libFuzzer: runs every seed,
// then N mutated inputs (bit flips, truncation, insertion, splicing, random
// bytes) from a fixed-seed generator. Bounded in count; exits 0 unless the
// target crashes (sanitizers abort).
#include <cstdio>
#include <cstdlib>
#include <random>

#include "tests/fuzz/fuzz.h"

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 10000;
  std::vector<std::string> seeds = GwmFuzzSeeds();
  seeds.push_back("");
  std::mt19937_64 rng(12345);
  auto run = [](const std::string& s) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  for (const auto& s : seeds) run(s);
  for (long i = 0; i < n; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + rng() % 4;
    for (int k = 0; k < edits; ++k) {
      switch (rng() % 6) {
        case 0:
          if (!s.empty()) s[rng() % s.size()] ^= static_cast<char>(1 << (rng() % 8));
          break;
        case 1:
          if (!s.empty()) s.resize(rng() % s.size());
          break;
        case 2:
          s.insert(s.empty() ? 0 : rng() % s.size(), 1 + rng() % 8,
                   static_cast<char>(rng()));
          break;
        case 3: {
          const std::string& o = seeds[rng() % seeds.size()];
          if (!o.empty()) s += o.substr(rng() % o.size());
          break;
        }
        case 4:
          if (!s.empty()) s[rng() % s.size()] = static_cast<char>(rng());
          break;
        default: {
          std::string r(rng() % 64, '\0');
          for (char& c : r) c = static_cast<char>(rng());
          s.insert(s.empty() ? 0 : rng() % s.size(), r);
        }
      }
    }
    run(s);
  }
  std::printf("fuzz: %ld inputs, no crash\n", n + static_cast<long>(seeds.size()));
  return 0;
}
