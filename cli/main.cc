// gwmirror: the operator CLI.
//
//   gwmirror status [--json] [--watch]
//   gwmirror health [--address HOST:PORT --name CN] [--service S]
//   gwmirror checkpoint create [--wait] [--json]
//   gwmirror checkpoints [--json]
//   gwmirror release --slot S
//   gwmirror drill [--smoke CMD] [--json]
//   gwmirror drills [--json]
//   gwmirror promote [--dry-run] [--yes] [--json]
//     (each with --config CLI.json, or $GWMIRROR_CONFIG)
//   gwmirror sandbox up --dir D [--slots N] [--size small|large] [--manual]
//                       [--databases] [--no-prestage]
//   gwmirror sandbox down --dir D [--keep]
//   gwmirror sample --dir D [--size small|large] [--seed S] [--host I]
//                   [--hosts N]
//   gwmirror changeset --dir D [--seed S] [--percent P]
//   gwmirror dumpgen --out BASE --changed-out CHANGED [--mib N] [--seed S]
//   gwmirror certs init|issue|list --dir D ... (cli/commands.h)
//   gwmirror replica state|commit|abort --config CLI.json --address HOST:PORT
//                    --name REPLICA_CN [--checkpoint N] [--digest HEX]
//                    [--epoch E]
//
// Exit 0 on success, otherwise non-zero with one line on stderr.
#include <cstdio>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "common/args.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/sample/generator.h"

namespace gwmirror {
namespace {

absl::Status Sample(const Args& a) {
  ASSIGN_OR_RETURN(std::string dir, a.Require("dir"));
  SampleOptions o;
  o.size = a.Get("size").value_or("small");
  ASSIGN_OR_RETURN(o.seed, a.UintOr("seed", 1));
  ASSIGN_OR_RETURN(uint64_t host, a.UintOr("host", 1));
  ASSIGN_OR_RETURN(uint64_t hosts, a.UintOr("hosts", 1));
  o.host_index = static_cast<int>(host);
  o.host_count = static_cast<int>(hosts);
  if (auto v = a.Get("version")) o.product_version = *v;
  ASSIGN_OR_RETURN(SampleReport r, GenerateSample(dir, o));
  std::cout << absl::StrFormat(
      "{\"files\": %d, \"bytes\": %d, \"transient_files\": %d}\n", r.files,
      r.bytes, r.transient_files);
  return absl::OkStatus();
}

absl::Status ChangeSet(const Args& a) {
  ASSIGN_OR_RETURN(std::string dir, a.Require("dir"));
  ASSIGN_OR_RETURN(uint64_t seed, a.UintOr("seed", 2));
  ASSIGN_OR_RETURN(uint64_t percent, a.UintOr("percent", 1));
  ASSIGN_OR_RETURN(
      ChangeSetReport r,
      ApplyChangeSet(dir, "opt/Axway-7.7", seed, percent / 100.0, 50, 50, 20));
  std::cout << absl::StrFormat(
      "{\"edited\": %d, \"added\": %d, \"deleted\": %d, \"chmodded\": %d, "
      "\"changed_bytes\": %d}\n",
      r.edited, r.added, r.deleted, r.chmodded, r.changed_bytes);
  return absl::OkStatus();
}

absl::Status DumpGen(const Args& a) {
  ASSIGN_OR_RETURN(std::string base, a.Require("out"));
  ASSIGN_OR_RETURN(std::string changed, a.Require("changed-out"));
  ASSIGN_OR_RETURN(uint64_t mib, a.UintOr("mib", 64));
  ASSIGN_OR_RETURN(uint64_t seed, a.UintOr("seed", 1));
  return GenerateDumpPair(base, changed, mib, seed);
}

absl::Status Replica(const std::string& sub, const Args& a) {
  ASSIGN_OR_RETURN(std::string config_path, a.Require("config"));
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(config_path));
  gwmirror::v1::CliConfig config;
  RETURN_IF_ERROR(ParseJson(json, config_path, &config));
  ASSIGN_OR_RETURN(std::string address, a.Require("address"));
  ASSIGN_OR_RETURN(std::string name, a.Require("name"));
  ASSIGN_OR_RETURN(uint64_t epoch, a.UintOr("epoch", 0));
  ASSIGN_OR_RETURN(auto channel, DialMutualTls(config.tls(), address, name));
  auto stub = gwmirror::v1::Replica::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));
  if (sub == "state") {
    gwmirror::v1::GetStateRequest req;
    req.mutable_envelope()->set_epoch(epoch);
    gwmirror::v1::ReplicaState resp;
    RETURN_IF_ERROR(FromGrpc(stub->GetState(&ctx, req, &resp)));
    std::cout << absl::StrFormat(
        "{\"committed_checkpoint\": %d, \"manifest_digest\": \"%s\", "
        "\"epoch\": %d}\n",
        resp.committed_checkpoint(), HexOf(resp.manifest_digest()),
        resp.epoch());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(uint64_t checkpoint, a.RequireUint("checkpoint"));
  if (sub == "commit") {
    ASSIGN_OR_RETURN(std::string hex, a.Require("digest"));
    std::string digest = absl::HexStringToBytes(hex);
    if (hex.size() != 64 || HexOf(digest) != absl::AsciiStrToLower(hex)) {
      return absl::InvalidArgumentError("--digest must be 64 hex characters");
    }
    gwmirror::v1::CommitRequest req;
    req.mutable_envelope()->set_epoch(epoch);
    req.set_checkpoint(checkpoint);
    req.set_manifest_digest(digest);
    gwmirror::v1::CommitResult resp;
    return FromGrpc(stub->Commit(&ctx, req, &resp));
  }
  if (sub == "abort") {
    gwmirror::v1::AbortRequest req;
    req.mutable_envelope()->set_epoch(epoch);
    req.set_checkpoint(checkpoint);
    gwmirror::v1::AbortResult resp;
    return FromGrpc(stub->Abort(&ctx, req, &resp));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown replica command \"", sub, "\" (state, commit, abort)"));
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: gwmirror "
                 "status|health|checkpoint|checkpoints|pin|verify|export|"
                 "import|drill|drills|audit|promote|failback|sandbox|sample|"
                 "changeset|dumpgen|certs|replica ... "
                 "(see the README)\n");
    return 2;
  }
  std::string cmd = argv[1];
  std::string sub;
  int first = 2;
  if ((cmd == "certs" || cmd == "replica" || cmd == "checkpoint" ||
       cmd == "sandbox") &&
      argc > 2) {
    sub = argv[2];
    first = 3;
  }
  auto args = Args::Parse(
      argc, argv, first,
      {"dir",        "size",         "seed",  "host",    "hosts",
       "version",    "percent",      "name",  "config",  "address",
       "checkpoint", "digest",       "epoch", "out",     "changed-out",
       "mib",        "slots",        "slot",  "smoke",   "file",
       "host-root",  "standby-node", "days",  "service", "limit",
       "role"},
      {"json", "wait", "keep", "manual", "watch", "databases", "no-prestage",
       "dry-run", "yes", "all", "unpin", "repair", "force", "renew"});
  absl::Status st = args.status();
  if (st.ok()) {
    if (cmd == "sample") {
      st = Sample(*args);
    } else if (cmd == "changeset") {
      st = ChangeSet(*args);
    } else if (cmd == "dumpgen") {
      st = DumpGen(*args);
    } else if (cmd == "certs") {
      st = CertsCommand(sub, *args);
    } else if (cmd == "replica") {
      st = Replica(sub, *args);
    } else if (cmd == "health") {
      st = HealthCommand(*args);
    } else if (cmd == "status") {
      st = StatusCommand(*args);
    } else if (cmd == "checkpoint") {
      st = CheckpointCommand(sub, *args);
    } else if (cmd == "release") {
      st = ReleaseCommand(*args);
    } else if (cmd == "checkpoints") {
      st = CheckpointsCommand(*args);
    } else if (cmd == "drill") {
      st = DrillCommand(*args);
    } else if (cmd == "drills") {
      st = DrillsCommand(*args);
    } else if (cmd == "audit") {
      st = AuditCommand(*args);
    } else if (cmd == "promote") {
      st = PromoteCommand(*args);
    } else if (cmd == "failback") {
      st = FailbackCommand(*args);
    } else if (cmd == "pin") {
      st = PinCommand(*args);
    } else if (cmd == "verify") {
      st = VerifyCommand(*args);
    } else if (cmd == "export") {
      st = ExportCommand(*args);
    } else if (cmd == "import") {
      st = ImportCommand(*args);
    } else if (cmd == "sandbox") {
      st = SandboxCommand(sub, *args);
    } else {
      st = absl::InvalidArgumentError(
          absl::StrCat("unknown command \"", cmd, "\""));
    }
  }
  if (st.ok()) return 0;
  std::fprintf(stderr, "gwmirror: %s\n", std::string(st.message()).c_str());
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) { return gwmirror::Main(argc, argv); }
