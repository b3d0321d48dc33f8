// gwmirror-node: the per-host daemon and its one-shot tools.
//   gwmirror-node serve --config F           run the replica server
//   gwmirror-node push --config F --checkpoint N [--epoch E] [--commit]
//                                           scan, stage N at the replica
//   gwmirror-node scan --config F            print the manifest summary
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/args.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "node/replica/service.h"
#include "node/replica/store.h"
#include "node/scanner.h"
#include "node/source/pusher.h"

namespace gwmirror {
namespace {

int Fail(const absl::Status& st) {
  std::fprintf(stderr, "gwmirror-node: %s\n", std::string(st.message()).c_str());
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::Status Serve(const gwmirror::v1::NodeConfig& config) {
  if (!config.has_replica()) {
    return absl::InvalidArgumentError(
        "serve needs a \"replica\" section in the config");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ReplicaStore> store,
                   ReplicaStore::Open(config));
  std::set<std::string> controllers(config.replica().controller_identities().begin(),
                                    config.replica().controller_identities().end());
  ReplicaService service(store.get(), config.replica().source_identity(),
                         controllers);
  ASSIGN_OR_RETURN(auto creds, MakeServerCredentials(config.tls()));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.replica().listen(), creds, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(4 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.replica().listen()));
  }
  if (!config.port_file().empty()) {
    RETURN_IF_ERROR(
        WriteFileAtomic(config.port_file(), absl::StrCat(port, "\n"), 0644));
  }
  Logf(LogLevel::kInfo, "node", "slot=%s replica listening on port %d",
       config.slot(), port);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  Logf(LogLevel::kInfo, "node", "slot=%s stopping on signal %d", config.slot(),
       sig);
  server->Shutdown();
  return absl::OkStatus();
}

// Scans with the persistent index of the state directory and saves the
// refreshed index.
absl::StatusOr<ScanResult> IndexedScan(const gwmirror::v1::NodeConfig& config) {
  std::string host_root = config.host_root().empty() ? "/" : config.host_root();
  std::string dir = config.state_dir() + "/source";
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  auto previous = HashIndex::Load(dir + "/index");
  if (!previous.ok()) {
    Logf(LogLevel::kWarning, "source", "slot=%s ignoring the hash index: %s",
         config.slot(), previous.status().ToString());
    previous = HashIndex();
  }
  ASSIGN_OR_RETURN(ScanResult scan,
                   ScanMirrorSet(host_root, config.roots(), &*previous));
  RETURN_IF_ERROR(scan.index.Save(dir + "/index"));
  return scan;
}

absl::Status PushOnce(const gwmirror::v1::NodeConfig& config, const Args& args) {
  if (!config.has_source()) {
    return absl::InvalidArgumentError(
        "push needs a \"source\" section in the config");
  }
  ASSIGN_OR_RETURN(uint64_t checkpoint, args.RequireUint("checkpoint"));
  ASSIGN_OR_RETURN(uint64_t epoch, args.UintOr("epoch", 0));
  ASSIGN_OR_RETURN(ScanResult scan, IndexedScan(config));
  for (const std::string& w : scan.warnings) {
    Logf(LogLevel::kWarning, "source", "slot=%s %s", config.slot(), w);
  }
  ASSIGN_OR_RETURN(auto channel,
                   DialMutualTls(config.tls(), config.source().replica_address(),
                                 config.source().replica_identity()));
  Pusher pusher(config, channel);
  ASSIGN_OR_RETURN(PushReport r, pusher.Push(scan.manifest, checkpoint, epoch));
  if (args.Has("commit")) {
    RETURN_IF_ERROR(pusher.Commit(checkpoint, r.manifest_digest, epoch));
  }
  std::cout << absl::StrFormat(
      "{\"checkpoint\": %d, \"base\": %d, \"entries\": %d, \"files_whole\": %d, "
      "\"files_delta\": %d, \"content_bytes\": %d, \"wire_bytes\": %d, "
      "\"signature_fetches\": %d, \"resent_whole\": %d, \"index_hits\": %d, "
      "\"bytes_hashed\": %d, \"committed\": %s, \"manifest_digest\": \"%s\"}\n",
      r.checkpoint, r.base_checkpoint, scan.manifest.size(), r.files_whole,
      r.files_delta, r.content_bytes, r.wire_bytes, r.signature_fetches,
      r.resent_whole, scan.index_hits, scan.bytes_hashed,
      args.Has("commit") ? "true" : "false", HexOf(r.manifest_digest));
  return absl::OkStatus();
}

absl::Status ScanOnce(const gwmirror::v1::NodeConfig& config) {
  std::string host_root = config.host_root().empty() ? "/" : config.host_root();
  ASSIGN_OR_RETURN(ScanResult scan, ScanMirrorSet(host_root, config.roots()));
  for (const std::string& w : scan.warnings) std::cerr << "warning: " << w << "\n";
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
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: gwmirror-node serve|push|scan --config FILE "
                 "[--checkpoint N] [--epoch E] [--commit]\n");
    return 2;
  }
  std::string cmd = argv[1];
  auto args = Args::Parse(argc, argv, 2, {"config", "checkpoint", "epoch"},
                          {"commit"});
  if (!args.ok()) return Fail(args.status());
  auto path = args->Require("config");
  if (!path.ok()) return Fail(path.status());
  auto config = LoadNodeConfig(*path);
  if (!config.ok()) return Fail(config.status());
  absl::Status st;
  if (cmd == "serve") {
    // Block the stop signals before gRPC starts its threads, for sigwait.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    st = Serve(*config);
  } else if (cmd == "push") {
    st = PushOnce(*config, *args);
  } else if (cmd == "scan") {
    st = ScanOnce(*config);
  } else {
    st = absl::InvalidArgumentError(absl::StrCat("unknown command \"", cmd, "\""));
  }
  return st.ok() ? 0 : Fail(st);
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
