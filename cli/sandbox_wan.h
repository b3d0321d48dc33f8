// The WAN of `gwmirror sandbox up --wan SPEC`: each site's daemons in a
// network namespace of their own, joined through a router namespace.
//
//   machine ns ── veth ── router ns ── veth ── production ns  10.K.1.2
//   10.K.0.1              10.K.0.2     ├─ veth ── standby ns  10.K.2.2
//                                      └─ veth ── witness ns  10.K.3.2
//                                                 (--coordinator-site witness)
//
// Traffic between the sites is policy-routed through two tun devices in
// the router, wa and wb, with gwmirror-wan-relay between them for the
// delay and jitter (the kernel here has no netem); tbf on each tun gives
// the rate, an nftables rule the loss, and a partition takes both tun
// devices down (a blackhole route behind them keeps anything from going
// around: a dead link sends no RST). A witness's traffic to either site
// goes through a second pair, wc and wd, with a relay of its own. The machine's
// own namespace reaches every daemon through the router without crossing the
// WAN (the CLI, the scrapers). Everything is removed by DestroyWan, and a lab
// whose sandbox is gone (a test that crashed) is removed by the next CreateWan.
#ifndef GWMIRROR_CLI_SANDBOX_WAN_H_
#define GWMIRROR_CLI_SANDBOX_WAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

struct WanSpec {
  absl::Duration delay;   // Round trip added.
  absl::Duration jitter;  // Spread of the round trip (uniform, +-half).
  double loss = 0;        // Fraction of packets dropped, each direction.
  uint64_t rate = 0;      // Bytes per second each direction; 0: no cap.
};

// "delay=40ms,jitter=5ms,loss=0.5%,rate=50mbit", each part optional.
// INVALID_ARGUMENT naming the part that is wrong.
absl::StatusOr<WanSpec> ParseWanSpec(absl::string_view text);

// Builds the namespaces and the link for a sandbox in `dir`, shaped by
// `spec` (`spec_text` as given). `relay` is gwmirror-wan-relay's path.
// `witness`: also a third namespace (10.K.3.2) whose own link to both
// sites, of the same shape, stays up when the sites' link goes down.
absl::StatusOr<gwmirror::v1::SandboxWan> CreateWan(const std::string& dir,
                                                   const std::string& spec_text,
                                                   const std::string& relay,
                                                   bool witness);

// Reshapes the link (delay, jitter, loss, rate) while everything runs.
absl::Status ShapeWan(gwmirror::v1::SandboxWan* wan,
                      const std::string& spec_text);
// Cuts (up = false) or heals the link between the sites.
absl::Status SetWanLink(gwmirror::v1::SandboxWan* wan, bool up);
// Stops the relay and removes the namespaces and the machine's veth end.
void DestroyWan(const gwmirror::v1::SandboxWan& wan);

// `argv` run inside network namespace `netns` (empty: as it is).
std::vector<std::string> InNamespace(const std::string& netns,
                                     std::vector<std::string> argv);

}  // namespace gwmirror

#endif  // GWMIRROR_CLI_SANDBOX_WAN_H_
