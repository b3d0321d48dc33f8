// The delta search alone: gwmirror's (common/block_delta) beside
// librsync's, on the same signature and the same segments, in one run.
//
//   delta_bench --basis OLD --target NEW [--segment-mib 16] [--near-mib 32]
//               [--far-after 4096] [--threads 2]
//   delta_bench --rows N     (generated text rows, 1 % edited; CI's smoke)
//
// Both searches cut the new file into segments and run `--threads` of
// them at a time, as the source's push does; each delta is patched with
// librsync and compared with the target. Prints wall and CPU seconds, the
// delta's bytes, and ours as a ratio of librsync's.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/block_delta.h"
#include "common/delta.h"
#include "common/fd.h"

namespace gwmirror {
namespace {

double Now(clockid_t c) {
  timespec t;
  clock_gettime(c, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

std::string ReadAll(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!fd.valid() || fstat(fd.get(), &st) != 0) {
    std::perror(path.c_str());
    std::exit(2);
  }
  std::string s(st.st_size, '\0');
  size_t got = 0;
  while (got < s.size()) {
    ssize_t n = read(fd.get(), s.data() + got, s.size() - got);
    if (n <= 0) std::exit(2);
    got += n;
  }
  return s;
}

void Rows(size_t rows, std::string* basis, std::string* target) {
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < rows; ++i) {
    std::string row = "INSERT INTO metrics VALUES (" + std::to_string(i) +
                      ",'api-" + std::to_string(rng() % 50) + "'," +
                      std::to_string(rng() % 100000) + ");\n";
    *basis += row;
    if (rng() % 100 == 0) row[row.size() - 4] = '#';
    if (rng() % 2000 != 0) *target += row;
  }
}

struct Outcome {
  double wall = 0, cpu = 0;
  uint64_t bytes = 0;
};

// Runs `delta(offset, segment, last)` over the target's segments, `threads`
// at a time, and checks the concatenated delta by patching.
Outcome Run(const std::string& basis, const std::string& target,
            uint64_t segment, int threads,
            const std::function<std::string(uint64_t, absl::string_view, bool)>&
                delta) {
  Outcome o;
  const double w0 = Now(CLOCK_MONOTONIC), c0 = Now(CLOCK_PROCESS_CPUTIME_ID);
  std::string all;
  std::vector<std::future<std::string>> inflight;
  for (uint64_t off = 0; off < target.size() || off == 0; off += segment) {
    absl::string_view seg = absl::string_view(target).substr(off, segment);
    bool last = off + segment >= target.size();
    if (static_cast<int>(inflight.size()) == threads) {
      all += inflight.front().get();
      inflight.erase(inflight.begin());
    }
    inflight.push_back(std::async(std::launch::async, delta, off, seg, last));
    if (last) break;
  }
  for (auto& f : inflight) all += f.get();
  o.wall = Now(CLOCK_MONOTONIC) - w0;
  o.cpu = Now(CLOCK_PROCESS_CPUTIME_ID) - c0;
  o.bytes = all.size();
  UniqueFd fd(memfd_create("basis", MFD_CLOEXEC));
  if (write(fd.get(), basis.data(), basis.size()) !=
      static_cast<ssize_t>(basis.size())) {
    std::exit(2);
  }
  Patcher p(fd.get(), target.size());
  std::string out;
  absl::Status st = p.Feed(all, true, [&](absl::string_view s) {
    out.append(s.data(), s.size());
    return absl::OkStatus();
  });
  if (!st.ok() || out != target) {
    std::fprintf(stderr, "delta_bench: the delta does not patch back: %s\n",
                 std::string(st.message()).c_str());
    std::exit(1);
  }
  return o;
}

int Main(int argc, char** argv) {
  std::string basis_path, target_path;
  uint64_t segment_mib = 16, near_mib = 32, far_after = 4096, rows = 0;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    uint64_t n = 0;
    bool num = absl::SimpleAtoi(v, &n);
    if (f == "--basis") {
      basis_path = v;
    } else if (f == "--target") {
      target_path = v;
    } else if (f == "--segment-mib" && num && n > 0) {
      segment_mib = n;
    } else if (f == "--near-mib" && num) {
      near_mib = n;
    } else if (f == "--far-after" && num) {
      far_after = n;
    } else if (f == "--threads" && num && n > 0) {
      threads = static_cast<int>(n);
    } else if (f == "--rows" && num) {
      rows = n;
    } else {
      std::fprintf(stderr, "delta_bench: bad option %s %s\n", f.c_str(),
                   v.c_str());
      return 2;
    }
  }
  std::string basis, target;
  if (rows > 0) {
    Rows(rows, &basis, &target);
  } else if (!basis_path.empty() && !target_path.empty()) {
    basis = ReadAll(basis_path);
    target = ReadAll(target_path);
  } else {
    std::fprintf(stderr, "delta_bench: give --basis and --target, or --rows\n");
    return 2;
  }
  // The basis's signature, built by ours and by librsync's job (one
  // thread each, as a node builds one file's).
  Outcome sig_ours, sig_theirs;
  std::string sig, theirs_sig;
  auto timed = [](Outcome* o, const std::function<std::string()>& f) {
    const double w0 = Now(CLOCK_MONOTONIC), c0 = Now(CLOCK_THREAD_CPUTIME_ID);
    std::string out = f();
    o->wall = Now(CLOCK_MONOTONIC) - w0;
    o->cpu = Now(CLOCK_THREAD_CPUTIME_ID) - c0;
    o->bytes = out.size();
    return out;
  };
  sig = timed(&sig_ours, [&] { return *SignatureOf(basis, 1024); });
  theirs_sig = timed(&sig_theirs, [&] {
    rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
    size_t blen = 1024, strong = static_cast<size_t>(-1);
    rs_sig_args(basis.size(), &magic, &blen, &strong);
    RsStream job(RsJobPtr(rs_sig_begin(blen, strong, magic)), "signature");
    std::string out;
    (void)job.Feed(basis, true, [&](absl::string_view s) {
      out.append(s.data(), s.size());
      return absl::OkStatus();
    });
    return out;
  });
  if (sig != theirs_sig) {
    std::fprintf(stderr, "delta_bench: the signatures differ\n");
    return 1;
  }
  std::printf("basis %zu bytes, target %zu bytes\n", basis.size(),
              target.size());
  const uint64_t segment = segment_mib << 20;

  // Ours: one parsed signature and one index of every block, shared.
  auto parsed = BlockSignature::Parse(sig);
  if (!parsed.ok()) return 2;
  BlockDeltaOptions opt;
  opt.near_bytes = near_mib << 20;
  opt.far_after = far_after;
  const double p0 = Now(CLOCK_MONOTONIC);
  BlockIndex all(*parsed, 0, parsed->blocks());
  const double index_s = Now(CLOCK_MONOTONIC) - p0;
  Outcome ours =
      Run(basis, target, segment, threads,
          [&](uint64_t off, absl::string_view seg, bool last) {
            BlockRange r = NearBlocks(*parsed, off, seg.size(), opt);
            BlockIndex near(*parsed, r.first, r.end);
            std::string out;
            BlockDelta(*parsed, near,
                       near.Covers(0, parsed->blocks()) ? nullptr : &all, seg,
                       last, opt, &out);
            return out;
          });
  ours.wall += index_s;
  // librsync's: a loaded signature per thread, as the source had it.
  std::vector<RsSignaturePtr> loaded(threads);
  const double l0 = Now(CLOCK_MONOTONIC);
  for (auto& l : loaded) l = *LoadSignature(sig);
  const double load_s = Now(CLOCK_MONOTONIC) - l0;
  // Segment k runs once segment k - threads is done: copy k % threads.
  Outcome theirs = Run(basis, target, segment, threads,
                       [&](uint64_t off, absl::string_view seg, bool) {
                         DeltaBuilder b(loaded[off / segment % threads].get());
                         std::string out;
                         (void)b.Feed(seg, true, [&](absl::string_view s) {
                           out.append(s.data(), s.size());
                           return absl::OkStatus();
                         });
                         return out;
                       });
  theirs.wall += load_s;
  auto row = [](const char* what, const char* who, const Outcome& o,
                double ratio) {
    std::printf("| %s | %s | %.2f | %.2f | %llu | %.2f |\n", what, who, o.wall,
                o.cpu, static_cast<unsigned long long>(o.bytes), ratio);
  };
  std::printf(
      "| job | by | wall s | CPU s | output bytes | wall ratio to librsync "
      "|\n|---|---|---|---|---|---|\n");
  row("signature of the basis", "gwmirror", sig_ours,
      sig_ours.wall / sig_theirs.wall);
  row("signature of the basis", "librsync 2.3.2", sig_theirs, 1.0);
  std::printf(
      "| delta (%d threads; near %llu MiB, far after %llu B) | gwmirror "
      "| %.2f | %.2f | %llu | %.2f |\n",
      threads, static_cast<unsigned long long>(near_mib),
      static_cast<unsigned long long>(far_after), ours.wall, ours.cpu,
      static_cast<unsigned long long>(ours.bytes), ours.wall / theirs.wall);
  row("delta", "librsync 2.3.2", theirs, 1.0);
  return 0;
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
