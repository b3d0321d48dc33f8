// gwmirror: the operator CLI. Its commands and flags are in
// cli/command_table.cc ("gwmirror help" prints them).
#include <functional>
#include <iostream>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command_table.h"
#include "cli/commands.h"
#include "common/args.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/sample/deployment.h"
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

absl::Status SampleDeploy(const Args& a) {
  DeployOptions o;
  ASSIGN_OR_RETURN(o.host_root, a.Require("host-root"));
  ASSIGN_OR_RETURN(o.group, a.Require("group"));
  ASSIGN_OR_RETURN(uint64_t seed, a.UintOr("seed", 1));
  ASSIGN_OR_RETURN(uint64_t interval, a.UintOr("switch-interval-ms", 0));
  o.switch_interval = absl::Milliseconds(interval);
  if (a.Get("switch").has_value()) {
    ASSIGN_OR_RETURN(uint64_t n, a.UintOr("switch", 0));
    o.switch_count = static_cast<int>(std::min<uint64_t>(n, 1 << 20));
  }
  o.prune = a.Has("prune");
  Deployment d;
  if (auto fed = a.Get("fed")) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(*fed));
    auto read = ReadFed(bytes);
    if (!read.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(*fed, ": ", read.status().message()));
    }
    d = *std::move(read);
  } else {
    auto current = CurrentDeployment(o);
    if (!current.ok() && !absl::IsNotFound(current.status())) {
      return current.status();
    }
    d = current.ok() ? NextDeployment(*current, seed)
                     : GenerateDeployment(seed, 256 << 10);
  }
  ASSIGN_OR_RETURN(DeployReport r, Deploy(d, o));
  std::cout << absl::StrFormat(
      "{\"group\": \"%s\", \"id\": \"%s\", \"previous\": \"%s\", "
      "\"bytes\": %d, \"switched\": [%s], \"pruned\": [%s]}\n",
      r.group_id, d.id, r.previous, r.bytes,
      r.switched.empty()
          ? ""
          : absl::StrCat("\"", absl::StrJoin(r.switched, "\", \""), "\""),
      r.pruned.empty()
          ? ""
          : absl::StrCat("\"", absl::StrJoin(r.pruned, "\", \""), "\""));
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
  gwmirror::v1::AbortRequest req;  // "abort"
  req.mutable_envelope()->set_epoch(epoch);
  req.set_checkpoint(checkpoint);
  gwmirror::v1::AbortResult resp;
  return FromGrpc(stub->Abort(&ctx, req, &resp));
}

int Main(int argc, char** argv) {
  using Run = std::function<absl::Status(const Args&)>;
  auto with_sub = [](absl::Status (*f)(const std::string&, const Args&),
                     std::string sub) -> Run {
    return [f, sub](const Args& a) { return f(sub, a); };
  };
  const std::map<std::string, Run> commands = {
      {"status", StatusCommand},
      {"coverage", CoverageCommand},
      {"checkpoints", CheckpointsCommand},
      {"drills", DrillsCommand},
      {"audit", AuditCommand},
      {"health", HealthCommand},
      {"checkpoint create", CheckpointCreateCommand},
      {"release", ReleaseCommand},
      {"pin", PinCommand},
      {"promote", PromoteCommand},
      {"failback", FailbackCommand},
      {"drill", DrillCommand},
      {"verify", VerifyCommand},
      {"export", ExportCommand},
      {"import", ImportCommand},
      {"certs init", with_sub(CertsCommand, "init")},
      {"certs issue", with_sub(CertsCommand, "issue")},
      {"certs list", with_sub(CertsCommand, "list")},
      {"certs rotate-ca", with_sub(CertsCommand, "rotate-ca")},
      {"sandbox up", with_sub(SandboxCommand, "up")},
      {"sandbox down", with_sub(SandboxCommand, "down")},
      {"sandbox link down", with_sub(SandboxCommand, "link down")},
      {"sandbox link up", with_sub(SandboxCommand, "link up")},
      {"sandbox link set", with_sub(SandboxCommand, "link set")},
      {"sample", Sample},
      {"sample deploy", SampleDeploy},
      {"changeset", ChangeSet},
      {"dumpgen", DumpGen},
      {"replica state", with_sub(Replica, "state")},
      {"replica commit", with_sub(Replica, "commit")},
      {"replica abort", with_sub(Replica, "abort")},
  };
  return RunCommandLine(
      GwmirrorSpec(), argc, argv,
      [&](const CommandLine& line) -> absl::StatusOr<int> {
        if (line.command == "status" && line.args.Has("check")) {
          return StatusCheckCommand(line.args);
        }
        Progress::UseJsonEvents(line.args.Has("json"));
        auto it = commands.find(line.command);
        if (it == commands.end()) {
          return absl::InternalError(
              absl::StrCat("command \"", line.command,
                           "\" is in the table but has no code"));
        }
        RETURN_IF_ERROR(it->second(line.args));
        return 0;
      });
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) {
  gwmirror::PrepareGrpc();
  return gwmirror::Main(argc, argv);
}
