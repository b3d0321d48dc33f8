// gwmirror-node: the per-host daemon and its one-shot tools (serve, push,
// scan, restore: "gwmirror-node help" and the table in Main).
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/args.h"
#include "common/authz.h"
#include "common/command_line.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics_server.h"
#include "common/signals.h"
#include "common/state_lock.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "node/daemon.h"
#include "node/databases.h"
#include "node/membership.h"
#include "node/metrics.h"
#include "node/replica/drift_checker.h"
#include "node/replica/service.h"
#include "node/replica/store.h"
#include "node/scanner.h"
#include "node/source/cut_service.h"
#include "node/source/prestager.h"
#include "node/source/pusher.h"
#include "node/source/source_tree.h"
#include "node/source/watcher.h"

namespace gwmirror {
namespace {

absl::Status Serve(const std::string& path,
                   const gwmirror::v1::NodeConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<NodeDaemon> daemon,
                   NodeDaemon::Start(config));
  int sig = WaitForStopSignal([&] {
    // The file again: what a reload can take (the bandwidth) takes effect;
    // a file that no longer loads changes nothing.
    auto fresh = LoadNodeConfig(path);
    if (!fresh.ok()) {
      Logf(LogLevel::kError, "node",
           "slot=%s reload: %s; the running config stays", config.slot(),
           fresh.status().message());
    }
    daemon->Reload(fresh.ok() ? &*fresh : nullptr);
  });
  Logf(LogLevel::kInfo, "node", "slot=%s stopping on signal %d", config.slot(),
       sig);
  daemon->Stop();
  return absl::OkStatus();
}

absl::Status PushOnce(const gwmirror::v1::NodeConfig& config,
                      const Args& args) {
  if (!config.has_source() || config.source().replica_address().empty() ||
      config.source().replica_identity().empty()) {
    return absl::InvalidArgumentError(
        "push needs source.replica_address and source.replica_identity in "
        "the config");
  }
  ASSIGN_OR_RETURN(uint64_t checkpoint, args.RequireUint("checkpoint"));
  RETURN_IF_ERROR(MakeDirs(config.state_dir(), 0700));
  ASSIGN_OR_RETURN(StateDirLock lock,
                   StateDirLock::Acquire(config.state_dir()));
  // By hand there is no coordinator: an epoch above 1 would need its
  // proof, which only the coordinator or an operator signs.
  gwmirror::v1::Envelope epoch;
  ASSIGN_OR_RETURN(uint64_t e, args.UintOr("epoch", 0));
  epoch.set_epoch(e);
  ASSIGN_OR_RETURN(
      auto channel,
      DialMutualTls(config.tls(), config.source().replica_address(),
                    config.source().replica_identity()));
  // The connection (TCP, TLS, HTTP/2: several round trips across a WAN)
  // is made while the tree is scanned, not after.
  channel->GetState(/*try_to_connect=*/true);
  SourceTree tree(config, nullptr);
  ASSIGN_OR_RETURN(ScanResult scan, tree.StableScan(absl::Seconds(30)));
  for (const std::string& w : scan.warnings) {
    Logf(LogLevel::kWarning, "source", "slot=%s %s", config.slot(), w);
  }
  Pusher pusher(config, channel);
  pusher.SetHeld(&scan);
  // The digests found while sending go into the index the tree saves.
  pusher.SetDigestSink(tree.LearnSink());
  ASSIGN_OR_RETURN(PushReport r, pusher.Push(scan.manifest, checkpoint, epoch));
  if (args.Has("commit")) {
    RETURN_IF_ERROR(pusher.Commit(checkpoint, r.manifest_digest, epoch));
  }
  std::cout << absl::StrFormat(
      "{\"checkpoint\": %d, \"base\": %d, \"entries\": %d, \"files_whole\": "
      "%d, "
      "\"files_delta\": %d, \"content_bytes\": %d, \"wire_bytes\": %d, "
      "\"signature_fetches\": %d, \"signature_calls\": %d, "
      "\"resent_whole\": %d, \"files_copied\": "
      "%d, \"files_delta_other_path\": %d, \"index_hits\": %d, "
      "\"bytes_hashed\": %d, \"digests_first\": %d, \"digests_at_end\": "
      "%d, \"chunks_compressed\": %d, \"chunks_raw\": "
      "%d, \"committed\": %s, \"manifest_digest\": \"%s\"}\n",
      r.checkpoint, r.base_checkpoint, scan.manifest.size(), r.files_whole,
      r.files_delta, r.content_bytes, r.wire_bytes, r.signature_fetches,
      r.signature_calls, r.resent_whole, r.files_copied,
      r.files_delta_other_path, scan.index_hits, scan.bytes_hashed,
      r.digests_first, r.digests_at_end, r.chunks_compressed, r.chunks_raw,
      args.Has("commit") ? "true" : "false", HexOf(r.manifest_digest));
  return absl::OkStatus();
}

// Loads the committed dumps into this host's servers (what promote and
// drill do), one line per job.
absl::Status RestoreOnce(const gwmirror::v1::NodeConfig& config,
                         const Args& args) {
  DatabaseJobs jobs(config);
  std::string job = args.Get("job").value_or("");
  if (args.Has("drop-scratch")) return jobs.DropScratch(job);
  std::vector<std::string> report;
  absl::Status st = jobs.Restore(job, args.Has("scratch"), &report);
  for (const std::string& line : report) std::cout << line << "\n";
  return st;
}

absl::Status ScanOnce(const gwmirror::v1::NodeConfig& config) {
  std::string host_root = config.host_root().empty() ? "/" : config.host_root();
  ASSIGN_OR_RETURN(ScanResult scan, ScanMirrorSet(host_root, config.roots()));
  for (const std::string& w : scan.warnings)
    std::cerr << "warning: " << w << "\n";
  std::cout << absl::StrFormat(
      "{\"entries\": %d, \"bytes_hashed\": %d, \"manifest_digest\": \"%s\"}\n",
      scan.manifest.size(), scan.bytes_hashed,
      HexOf(DigestBytes(scan.manifest.ComputeDigest())));
  return absl::OkStatus();
}

absl::Status Run(const std::string& cmd, const Args& args) {
  ASSIGN_OR_RETURN(std::string path, DaemonConfigPath(args));
  ASSIGN_OR_RETURN(gwmirror::v1::NodeConfig config, LoadNodeConfig(path));
  RETURN_IF_ERROR(ValidateDatabaseJobs(config));
  if (cmd == "serve") {
    BlockStopSignals();  // Before gRPC starts its threads.
    return Serve(path, config);
  }
  if (cmd == "push") return PushOnce(config, args);
  if (cmd == "scan") return ScanOnce(config);
  return RestoreOnce(config, args);
}

int Main(int argc, char** argv) {
  // Segment and chunk buffers are large and short-lived: keep freed ones in
  // the heap for reuse instead of unmapping them and faulting fresh pages
  // back in for every segment.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // gRPC's threads would each get a malloc arena of their own, each keeping
  // its freed buffers: two arenas keep a replica over the large sample
  // installation under 100 MB (docs/BENCHMARKS.md).
  mallopt(M_ARENA_MAX, 2);
  static const ProgramSpec spec{
      .name = "gwmirror-node",
      .man_section = 8,
      .summary = "the gwmirror daemon of one gateway host",
      .description =
          "gwmirror-node runs on every gateway host of both sites: on "
          "production it scans the mirror set and pushes deltas (a source), "
          "on the standby it stages and commits them (a replica). Its config "
          "names the slot, the roots, the TLS files and the coordinator.",
      .global = DaemonFlags("The node config"),
      .commands = {
          {.path = "serve",
           .group = "Commands",
           .summary = "Run the node: replica and/or source services, "
                      "membership, continuous mirroring",
           .example = "gwmirror-node serve --config /etc/gwmirror/node.json"},
          {.path = "push",
           .group = "Commands",
           .summary = "Scan and stage one checkpoint at the replica, by hand",
           .flags = {{.names = "--checkpoint",
                      .value = "N",
                      .help = "The checkpoint number",
                      .required = true},
                     {.names = "--epoch",
                      .value = "E",
                      .help = "The epoch",
                      .dflt = "0"},
                     {.names = "--commit", .help = "Commit it too"}},
           .example = "gwmirror-node push --config node.json --checkpoint 1 "
                      "--commit"},
          {.path = "scan",
           .group = "Commands",
           .summary = "Print the mirror set's manifest summary",
           .example = "gwmirror-node scan --config node.json"},
          {.path = "restore",
           .group = "Commands",
           .summary = "Load the committed dumps into this host's database "
                      "servers",
           .flags = {{.names = "--job",
                      .value = "NAME",
                      .help = "Only this dump job (default: all)"},
                     {.names = "--scratch",
                      .help = "Into scratch databases (a drill)"},
                     {.names = "--drop-scratch",
                      .help = "Drop the scratch databases"}},
           .example = "gwmirror-node restore --config node.json --scratch"},
      }};
  return RunCommandLine(spec, argc, argv,
                        [](const CommandLine& line) -> absl::StatusOr<int> {
                          RETURN_IF_ERROR(Run(line.command, line.args));
                          return 0;
                        });
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) {
  gwmirror::PrepareGrpc();
  return gwmirror::Main(argc, argv);
}
