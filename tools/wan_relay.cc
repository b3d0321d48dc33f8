// gwmirror-wan-relay: the delay of the sandbox's WAN link (cli/sandbox_wan.h),
// which this kernel cannot give (no netem). Runs in the link's router
// namespace, between its two tun devices: every IP packet the router sends
// into one (traffic from one site to the other) comes out of the other
// after half the configured round trip, plus jitter drawn uniformly within
// half the configured jitter either way, and never before the packet
// ahead of it (no reordering). Rate and loss are the kernel's (tbf on the
// tun devices, nftables), a partition is the link going down.
//
//   gwmirror-wan-relay --spec FILE --a wa --b wb
//
// FILE holds "DELAY_US JITTER_US" (the round trip's); SIGHUP reads it
// again, SIGTERM ends the relay.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/fd.h"

namespace gwmirror {
namespace {

// More packets than this waiting in one direction are dropped (a queue a
// real router would not hold either).
constexpr size_t kMaxQueued = 100'000;

std::atomic<int64_t> delay_us{0}, jitter_us{0};

bool ReadSpec(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return false;
  std::vector<std::string> parts =
      absl::StrSplit(*text, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  int64_t d = 0, j = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &d) ||
      !absl::SimpleAtoi(parts[1], &j) || d < 0 || j < 0) {
    return false;
  }
  delay_us = d;
  jitter_us = j;
  return true;
}

UniqueFd OpenTun(const std::string& name) {
  UniqueFd fd(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return fd;
  struct ifreq ifr = {};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return UniqueFd();
  return fd;
}

// One direction: packets read from `from` written to `to` when due.
class Direction {
 public:
  Direction(int from, int to, uint32_t seed)
      : from_(from), to_(to), rng_(seed) {}

  // The threads block in reads for the life of the process.
  void Start() {
    std::thread([this] { Read(); }).detach();
    std::thread([this] { Write(); }).detach();
  }

 private:
  struct Packet {
    absl::Time due;
    std::string bytes;
  };

  void Read() {
    std::string buf(65536, '\0');
    for (;;) {
      const ssize_t n = read(from_, buf.data(), buf.size());
      if (n <= 0) {
        // The device is down (a partition): wait for it to come back.
        absl::SleepFor(absl::Milliseconds(20));
        continue;
      }
      const int64_t j = jitter_us.load();
      const int64_t offset =
          j == 0 ? 0
                 : std::uniform_int_distribution<int64_t>(-j / 2, j / 2)(rng_);
      absl::Time due = absl::Now() + absl::Microseconds(std::max<int64_t>(
                                         0, delay_us.load() / 2 + offset / 2));
      absl::MutexLock l(&mu_);
      if (queue_.size() >= kMaxQueued) continue;
      // Never ahead of the packet before it: jitter without reordering.
      due = std::max(due, last_due_);
      last_due_ = due;
      queue_.push_back({due, std::string(buf.data(), n)});
    }
  }

  void Write() {
    for (;;) {
      absl::Time due;
      {
        absl::MutexLock l(&mu_);
        mu_.Await(absl::Condition(
            +[](std::deque<Packet>* q) { return !q->empty(); }, &queue_));
        due = queue_.front().due;
      }
      const absl::Duration wait = due - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
      std::string bytes;
      {
        absl::MutexLock l(&mu_);
        bytes = std::move(queue_.front().bytes);
        queue_.pop_front();
      }
      // A device that is down drops what reaches it, as a dead link does.
      (void)!write(to_, bytes.data(), bytes.size());
    }
  }

  const int from_, to_;
  std::mt19937_64 rng_;
  absl::Mutex mu_;
  std::deque<Packet> queue_ ABSL_GUARDED_BY(mu_);
  absl::Time last_due_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

int Main(int argc, char** argv) {
  std::string spec, a = "wa", b = "wb";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--spec") spec = argv[i + 1];
    if (flag == "--a") a = argv[i + 1];
    if (flag == "--b") b = argv[i + 1];
  }
  if (spec.empty() || !ReadSpec(spec)) {
    fprintf(stderr,
            "usage: gwmirror-wan-relay --spec FILE [--a TUN --b TUN]; FILE "
            "holds \"DELAY_US JITTER_US\"\n");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  UniqueFd ta = OpenTun(a), tb = OpenTun(b);
  if (!ta.valid() || !tb.valid()) {
    fprintf(stderr, "gwmirror-wan-relay: cannot open tun %s or %s: %s\n",
            a.c_str(), b.c_str(), strerror(errno));
    return 1;
  }
  Direction ab(ta.get(), tb.get(), 1), ba(tb.get(), ta.get(), 2);
  ab.Start();
  ba.Start();
  fprintf(stderr,
          "gwmirror-wan-relay: %s <-> %s, round trip %lld us, jitter %lld us\n",
          a.c_str(), b.c_str(), static_cast<long long>(delay_us.load()),
          static_cast<long long>(jitter_us.load()));
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    if (!ReadSpec(spec)) {
      fprintf(stderr, "gwmirror-wan-relay: %s unreadable; delay unchanged\n",
              spec.c_str());
    }
  }
  // The threads block in reads; end the process without joining them.
  _exit(0);
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
