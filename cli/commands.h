// The CLI's command groups that talk to a cluster.
#ifndef GWMIRROR_CLI_COMMANDS_H_
#define GWMIRROR_CLI_COMMANDS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/args.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"

namespace gwmirror {

// The CLI config from --config, else $GWMIRROR_CONFIG.
absl::StatusOr<gwmirror::v1::CliConfig> LoadCliConfig(const Args& a);
absl::StatusOr<std::unique_ptr<gwmirror::v1::Control::Stub>> DialControl(
    const gwmirror::v1::CliConfig& config);

// gwmirror health [--address HOST:PORT --name CN] [--service S]: the
// standard gRPC health check of the coordinator, or of the named daemon.
absl::Status HealthCommand(const Args& a);
// gwmirror status [--json] [--watch]
absl::Status StatusCommand(const Args& a);
// coverage: every External Connection production's deployments name, and
// what protects it.
absl::Status CoverageCommand(const Args& a);
// gwmirror status --check: one line, and the exit code of the monitoring
// convention (0 OK, 1 warning, 2 critical, 3 unknown: no answer).
absl::StatusOr<int> StatusCheckCommand(const Args& a);
// gwmirror checkpoint create [--wait] [--json]
absl::Status CheckpointCreateCommand(const Args& a);
// gwmirror release --slot S
absl::Status ReleaseCommand(const Args& a);
// gwmirror checkpoints [--all] [--json]: the retained ones (every
// checkpoint the coordinator recorded, with --all).
absl::Status CheckpointsCommand(const Args& a);
// gwmirror pin --checkpoint N [--unpin]
absl::Status PinCommand(const Args& a);
// gwmirror verify [--repair] [--json]
absl::Status VerifyCommand(const Args& a);
// gwmirror export --slot S [--checkpoint N] -o|--out FILE.tar[.zst]
absl::Status ExportCommand(const Args& a);
// gwmirror import --file FILE.tar[.zst] --host-root DIR [--json]
absl::Status ImportCommand(const Args& a);
// gwmirror drill [--checkpoint N] [--smoke CMD] [--json]: a restore drill on
// every standby node; gwmirror drills [--json]: the recorded ones.
absl::Status DrillCommand(const Args& a);
absl::Status DrillsCommand(const Args& a);
// gwmirror audit [--limit N] [--json]: the coordinator's audit log.
absl::Status AuditCommand(const Args& a);
// gwmirror promote [--checkpoint N] [--dry-run] [--yes] [--json];
// with --force --standby-node ID@HOST:PORT[,...], without the coordinator.
absl::Status PromoteCommand(const Args& a);
absl::Status ForcePromoteCommand(const Args& a);
// gwmirror failback [--dry-run] [--yes] [--json]
absl::Status FailbackCommand(const Args& a);

// While alive, how long work has run and how far it is, on stderr (stdout
// keeps the result): on a terminal one line "<what>: 12.3 s - <detail>"
// refreshed four times a second; elsewhere (a log, a pipe, cron) a plain
// line every 5 s once the work has run that long; with --json
// (UseJsonEvents) one event a second, {"event": "progress", "what": ...,
// "elapsed_s": ..., "detail": ...}.
class Progress {
 public:
  explicit Progress(std::string what);
  ~Progress();
  // Replaces the line's detail ("step 2/5: ...").
  void Set(const std::string& detail);
  // Whether every Progress of this process reports JSON events (the
  // command's --json).
  static void UseJsonEvents(bool on);
  // How often lines and events come when not on a terminal (default 5 s
  // for lines, 1 s for events); tests shorten it.
  static void SetInterval(absl::Duration every);

 private:
  struct State;
  std::unique_ptr<State> state_;
};
// Certificates that expire within this many days are warned about (status,
// certs list; the alert rules use the same figure).
inline constexpr int kCertificateWarningDays = 30;
// gwmirror certs init --dir D [--name CA_NAME] [--days N]
// gwmirror certs issue --dir D --name NAME [--host H,...] [--days N]
//                      [--out DIR] [--renew] [--json]
// gwmirror certs list --dir D [--out DIR]
absl::Status CertsCommand(const std::string& sub, const Args& a);
// gwmirror sandbox up|down --dir DIR [--slots N] [--size small|large]
absl::Status SandboxCommand(const std::string& sub, const Args& a);

}  // namespace gwmirror

#endif  // GWMIRROR_CLI_COMMANDS_H_
