// gwmirror-node: the per-host daemon and its one-shot tools.
//   gwmirror-node serve --config F           run the node: replica and/or
//                                           source services, membership
//   gwmirror-node push --config F --checkpoint N [--epoch E] [--commit]
//                                           scan, stage N at the replica
//   gwmirror-node scan --config F            print the manifest summary
//   gwmirror-node restore --config F [--job NAME] [--scratch|--drop-scratch]
//                                           load the committed dumps into
//                                           this host's servers
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/args.h"
#include "common/authz.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics_server.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "common/tls.h"
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

int Fail(const absl::Status& st) {
  std::fprintf(stderr, "gwmirror-node: %s\n",
               std::string(st.message()).c_str());
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::Status Serve(const gwmirror::v1::NodeConfig& config) {
  if (config.listen().empty()) {
    return absl::InvalidArgumentError("serve needs \"listen\" in the config");
  }
  if (!config.has_replica() && !config.has_source()) {
    return absl::InvalidArgumentError(
        "serve needs a \"source\" or \"replica\" section in the config");
  }
  if (config.has_source() && !config.has_coordinator()) {
    return absl::InvalidArgumentError(
        "a serving source needs a \"coordinator\" section: cuts come from it");
  }
  RETURN_IF_ERROR(MakeDirs(config.state_dir(), 0700));
  // Renewed certificates and CA bundles are taken on SIGHUP and when the
  // files change, without a restart.
  ASSIGN_OR_RETURN(
      std::unique_ptr<TlsReloader> tls,
      TlsReloader::Start(config.tls(), config.state_dir() + "/tls"));
  ASSIGN_OR_RETURN(std::unique_ptr<EpochFile> epoch,
                   EpochFile::Open(config.state_dir() + "/epoch", "this node",
                                   NodeEpochAuthority(config)));
  grpc::ServerBuilder builder;
  // Who may call what on this node, and how much one caller may hold.
  CallGate gate(
      [&config](const std::string& id) { return NodeRoles(config, id); },
      CallGate::Limits{});
  // Operators' direct acts on this node, forwarded to the coordinator.
  ASSIGN_OR_RETURN(std::unique_ptr<AuditLog> audit,
                   AuditLog::Open(config.state_dir() + "/audit.log"));
  std::unique_ptr<ReplicaStore> store;
  std::unique_ptr<DrillRunner> drills;
  std::unique_ptr<Activation> activation;
  std::unique_ptr<ReplicaService> replica;
  if (config.has_replica()) {
    ASSIGN_OR_RETURN(store, ReplicaStore::Open(config));
    drills = std::make_unique<DrillRunner>(config, store.get());
    activation = std::make_unique<Activation>(config);
    replica = std::make_unique<ReplicaService>(store.get(), config.state_dir(),
                                               &gate, drills.get(),
                                               activation.get(), audit.get());
    builder.RegisterService(replica.get());
  }
  std::unique_ptr<CutService> source;
  std::unique_ptr<ChangeWatcher> watcher;
  std::unique_ptr<SourceTree> tree;
  std::unique_ptr<Prestager> prestager;
  std::unique_ptr<DriftChecker> drift;
  // Set once membership starts; callbacks only read it.
  std::atomic<Membership*> member{nullptr};
  std::atomic<Prestager*> prestage_ptr{nullptr};
  auto wake = [&member] {
    if (Membership* m = member.load()) m->Wake();
  };
  if (config.has_source()) {
    ChangeWatcher::Options wo;
    wo.ignore = DatabaseJobs(config).DumpFiles();
    wo.on_change = [&wake, &prestage_ptr] {
      wake();
      if (Prestager* p = prestage_ptr.load()) p->Poke();
    };
    watcher = std::make_unique<ChangeWatcher>(config, wo);
    tree = std::make_unique<SourceTree>(config, watcher.get(), wo.ignore);
    if (!config.source().prestage_off()) {
      prestager = std::make_unique<Prestager>(config, tree.get(), watcher.get(),
                                              epoch.get(), wake);
      prestage_ptr = prestager.get();
    }
    RETURN_IF_ERROR(watcher->Start());
    if (prestager) prestager->Start();
    source = std::make_unique<CutService>(
        config, &gate, epoch.get(), tree.get(), watcher.get(), prestager.get());
    builder.RegisterService(source.get());
  }
  // The node's role: fixed by the config when it has one side only,
  // otherwise told by the coordinator (and changed by a promote).
  enum Role : int { kUnknown, kSource, kReplica };
  std::atomic<int> role{!config.has_replica()  ? kSource
                        : !config.has_source() ? kReplica
                                               : kUnknown};
  if (store) {
    drift = std::make_unique<DriftChecker>(store.get(), config.replica(), wake);
    // Until told otherwise, a node that can be a source has a live tree its
    // committed manifest does not describe.
    drift->SetReplicaRole(role == kReplica);
    drift->Start();
  }
  builder.SetMaxReceiveMessageSize(4 << 20);
  int port = 0;
  std::vector<std::string> services;
  if (replica) services.push_back(gwmirror::v1::Replica::service_full_name());
  if (source) services.push_back(gwmirror::v1::Source::service_full_name());
  ASSIGN_OR_RETURN(std::unique_ptr<grpc::Server> server,
                   StartServer(builder, config.tls(), config.listen(),
                               config.port_file(), &port, services));
  Logf(LogLevel::kInfo, "node", "slot=%s site=%s listening on port %d (%s%s)",
       config.slot(), config.site(), port, source ? "source" : "",
       replica ? (source ? ", replica" : "replica") : "");
  NodeMetrics& metrics = NodeMetrics::Get();
  if (store) {
    metrics.committed_checkpoint.Set(store->State().committed_checkpoint());
  }
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> metrics_server,
                   MetricsServer::StartIfConfigured(
                       config.metrics_listen(), config.metrics_port_file(),
                       [] { return DefaultMetrics().Render(); }));
  if (metrics_server) {
    Logf(LogLevel::kInfo, "node", "slot=%s metrics on port %d", config.slot(),
         metrics_server->port());
  }
  std::unique_ptr<Membership> membership;
  if (config.has_coordinator()) {
    std::string address = config.advertise_address();
    if (address.empty()) {
      address = absl::StrCat(
          config.listen().substr(0, config.listen().rfind(':')), ":", port);
    }
    auto fill = [&](gwmirror::v1::HeartbeatRequest* req) {
      if (watcher && role == kSource) {
        ChangeWatcher::Pending p = watcher->Snapshot();
        auto ms = [](absl::Time t) {
          return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t);
        };
        req->set_pending_since_unix_ms(ms(p.since));
        req->set_unstaged_since_unix_ms(ms(p.unstaged_since));
        req->set_pending_files(p.files);
        req->set_pending_bytes(p.bytes);
        req->set_prestaging(prestager != nullptr &&
                            prestager->WorthWaitingFor(p));
      }
      if (store && role == kReplica) {
        gwmirror::v1::ReplicaState state = store->State();
        metrics.committed_checkpoint.Set(state.committed_checkpoint());
        metrics.scrub_problems.Set(state.scrub_problems());
        req->set_drifted_entries(state.drifted_entries());
        req->set_report_checkpoint(state.committed_checkpoint());
        req->set_replica_stale(state.stale());
      }
    };
    auto on_response = [&](const gwmirror::v1::HeartbeatResponse& resp) {
      int now = resp.role() == "source"    ? kSource
                : resp.role() == "replica" ? kReplica
                                           : kUnknown;
      if (now == kUnknown || (now == kSource && !config.has_source()) ||
          (now == kReplica && !config.has_replica())) {
        return;  // A role this node's config cannot take: keep the old one.
      }
      if (role.exchange(now) != now) {
        Logf(LogLevel::kInfo, "node", "slot=%s role: %s at epoch %d",
             config.slot(), resp.role(), resp.epoch());
      }
      if (drift) drift->SetReplicaRole(now == kReplica);
      if (prestager) {
        // Only a source pre-streams, and only to the replica it is told of.
        prestager->SetTarget(now == kSource ? resp.replica_address() : "",
                             now == kSource ? resp.replica_identity() : "");
      }
    };
    membership = std::make_unique<Membership>(config, address, epoch.get(),
                                              audit.get(), fill, on_response);
    RETURN_IF_ERROR(membership->Start());
    member = membership.get();
  }
  int sig = WaitForStopSignal([&tls] { (void)tls->Reload(); });
  Logf(LogLevel::kInfo, "node", "slot=%s stopping on signal %d", config.slot(),
       sig);
  member = nullptr;
  prestage_ptr = nullptr;
  membership.reset();
  // The services use what follows: stop serving first.
  StopServer(server.get());
  drift.reset();
  prestager.reset();
  tree.reset();  // Saves the stat index.
  watcher.reset();
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
  // By hand there is no coordinator: an epoch above 1 would need its
  // proof, which only the coordinator or an operator signs.
  gwmirror::v1::Envelope epoch;
  ASSIGN_OR_RETURN(uint64_t e, args.UintOr("epoch", 0));
  epoch.set_epoch(e);
  ASSIGN_OR_RETURN(ScanResult scan,
                   SourceTree(config, nullptr).StableScan(absl::Seconds(30)));
  for (const std::string& w : scan.warnings) {
    Logf(LogLevel::kWarning, "source", "slot=%s %s", config.slot(), w);
  }
  ASSIGN_OR_RETURN(
      auto channel,
      DialMutualTls(config.tls(), config.source().replica_address(),
                    config.source().replica_identity()));
  Pusher pusher(config, channel);
  pusher.SetHeld(&scan.held);
  ASSIGN_OR_RETURN(PushReport r, pusher.Push(scan.manifest, checkpoint, epoch));
  if (args.Has("commit")) {
    RETURN_IF_ERROR(pusher.Commit(checkpoint, r.manifest_digest, epoch));
  }
  std::cout << absl::StrFormat(
      "{\"checkpoint\": %d, \"base\": %d, \"entries\": %d, \"files_whole\": "
      "%d, "
      "\"files_delta\": %d, \"content_bytes\": %d, \"wire_bytes\": %d, "
      "\"signature_fetches\": %d, \"resent_whole\": %d, \"index_hits\": %d, "
      "\"bytes_hashed\": %d, \"chunks_compressed\": %d, \"chunks_raw\": "
      "%d, \"committed\": %s, \"manifest_digest\": \"%s\"}\n",
      r.checkpoint, r.base_checkpoint, scan.manifest.size(), r.files_whole,
      r.files_delta, r.content_bytes, r.wire_bytes, r.signature_fetches,
      r.resent_whole, scan.index_hits, scan.bytes_hashed, r.chunks_compressed,
      r.chunks_raw, args.Has("commit") ? "true" : "false",
      HexOf(r.manifest_digest));
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
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: gwmirror-node serve|push|scan|restore --config FILE "
                 "[--checkpoint N] [--epoch E] [--commit] [--job NAME] "
                 "[--scratch] [--drop-scratch] [--log-format text|json]\n");
    return 2;
  }
  std::string cmd = argv[1];
  auto args = Args::Parse(
      argc, argv, 2, {"config", "checkpoint", "epoch", "job", "log-format"},
      {"commit", "scratch", "drop-scratch"});
  if (!args.ok()) return Fail(args.status());
  auto format = ParseLogFormat(args->Get("log-format").value_or("text"));
  if (!format.ok()) return Fail(format.status());
  SetLogFormat(*format);
  auto path = args->Require("config");
  if (!path.ok()) return Fail(path.status());
  auto config = LoadNodeConfig(*path);
  if (!config.ok()) return Fail(config.status());
  absl::Status st = ValidateDatabaseJobs(*config);
  if (!st.ok()) return Fail(st);
  if (cmd == "serve") {
    BlockStopSignals();  // Before gRPC starts its threads.
    st = Serve(*config);
  } else if (cmd == "push") {
    st = PushOnce(*config, *args);
  } else if (cmd == "scan") {
    st = ScanOnce(*config);
  } else if (cmd == "restore") {
    st = RestoreOnce(*config, *args);
  } else {
    st = absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", cmd, "\""));
  }
  return st.ok() ? 0 : Fail(st);
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
