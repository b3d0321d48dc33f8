// A stored increment (GWHO object) with arbitrary bytes: reading it never
// crashes, never writes more than its declared size, and never verifies
// as a content it does not hold.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/fd.h"
#include "common/sha256.h"
#include "node/replica/history.h"
#include "tests/fuzz/fuzz.h"

namespace {

const std::string kContent = [] {
  std::string s;
  for (int i = 0; i < 2000; ++i)
    s += "row " + std::to_string(i * 31 % 97) + ";";
  return s;
}();
const std::string kSha = gwmirror::DigestBytes(gwmirror::Sha256Of(kContent));
std::string kBasis = kContent.substr(0, 3000) + "basis tail";
const std::string kBasisSha = gwmirror::DigestBytes(gwmirror::Sha256Of(kBasis));

struct Fixture {
  std::string dir;
  std::unique_ptr<gwmirror::History> history;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* f = new Fixture;
    char tmpl[] = "/tmp/gwmirror-fuzz-history-XXXXXX";
    f->dir = mkdtemp(tmpl);
    f->history = *gwmirror::History::Open(
        f->dir, gwmirror::v1::RetentionConfig(), nullptr);
    // The basis lives as a raw object; seeds are encoded by Verify(repair)
    // style writes below.
    (void)gwmirror::WriteFileAtomic(
        f->dir + "/objects/" + gwmirror::HexOf(kBasisSha) + ".raw", kBasis,
        0600);
    return f;
  }();
  return *f;
}

std::string ObjectPath(const std::string& sha) {
  return Get().dir + "/objects/" + gwmirror::HexOf(sha);
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  Fixture& f = Get();
  std::vector<std::string> seeds;
  // One whole and one delta encoding of kContent, as compaction writes them.
  for (bool delta : {false, true}) {
    std::string raw = ObjectPath(kSha) + ".raw";
    (void)gwmirror::WriteFileAtomic(raw, kContent, 0600);
    if (delta) {
      (void)gwmirror::WriteFileAtomic(ObjectPath(kSha) + ".basis",
                                      gwmirror::HexOf(kBasisSha) + "\n", 0600);
    }
    (void)f.history->Maintain(absl::Now());
    auto bytes = gwmirror::ReadFileToString(ObjectPath(kSha));
    if (bytes.ok()) seeds.push_back(*bytes);
    unlink(ObjectPath(kSha).c_str());
  }
  return seeds;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = Get();
  {
    // No fsync: a fuzz run need not survive a crash.
    gwmirror::UniqueFd obj(
        open(ObjectPath(kSha).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600));
    if (!obj.valid() ||
        !gwmirror::WriteAll(
             obj.get(),
             absl::string_view(reinterpret_cast<const char*>(data), size))
             .ok()) {
      abort();
    }
  }
  int out = open(f.dir.c_str(), O_TMPFILE | O_RDWR, 0600);
  if (out < 0) abort();
  absl::Status st = f.history->ReadTo(kSha, out);
  off_t end = lseek(out, 0, SEEK_END);
  close(out);
  // Only the true content verifies; nothing larger is ever written.
  if (st.ok() && end != static_cast<off_t>(kContent.size())) abort();
  if (end > static_cast<off_t>(kContent.size()) * 2 + (1 << 20)) abort();
  return 0;
}
