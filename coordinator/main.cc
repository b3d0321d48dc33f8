// gwmirror-coordinator: the cluster's control plane.
//   gwmirror-coordinator serve --config FILE
// Exit 0 on SIGTERM/SIGINT; otherwise non-zero with one line on stderr.

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/args.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/coordinator.h"
#include "coordinator/recover.h"
#include "coordinator/service.h"

namespace gwmirror {
namespace {

absl::StatusOr<gwmirror::v1::CoordinatorConfig> LoadConfig(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(path));
  gwmirror::v1::CoordinatorConfig config;
  RETURN_IF_ERROR(ParseJson(json, path, &config));
  if (absl::Status st = ValidateCoordinatorConfig(config); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  }
  return config;
}

absl::Status Serve(const std::string& path) {
  ASSIGN_OR_RETURN(gwmirror::v1::CoordinatorConfig config, LoadConfig(path));
  ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> c, Coordinator::Open(config));
  // Renewed certificates and CA bundles are taken on SIGHUP and when the
  // files change, without a restart.
  Coordinator* coordinator = c.get();
  ASSIGN_OR_RETURN(
      std::unique_ptr<TlsReloader> tls,
      TlsReloader::Start(config.tls(), config.state_dir() + "/tls",
                         [coordinator](const CertificateInfo& info) {
                           coordinator->NoteOwnCertificate(info);
                         }));
  CoordinatorService nodes(c.get());
  ControlService control(c.get());
  grpc::ServerBuilder builder;
  builder.RegisterService(&nodes);
  builder.RegisterService(&control);
  int port = 0;
  ASSIGN_OR_RETURN(std::unique_ptr<grpc::Server> server,
                   StartServer(builder, config.tls(), config.listen(),
                               config.port_file(), &port,
                               {gwmirror::v1::Coordinator::service_full_name(),
                                gwmirror::v1::Control::service_full_name()}));
  Logf(LogLevel::kInfo, "coordinator", "listening on port %d", port);
  ASSIGN_OR_RETURN(
      std::unique_ptr<MetricsServer> metrics,
      MetricsServer::StartIfConfigured(
          config.metrics_listen(), config.metrics_port_file(),
          [&c] { return c->RenderMetrics() + DefaultMetrics().Render(); }));
  if (metrics) {
    Logf(LogLevel::kInfo, "coordinator", "metrics on port %d", metrics->port());
  }
  // Unfinished checkpoints of a previous run are settled by the background
  // loop as soon as the replicas have registered.
  c->StartBackground();
  int sig = WaitForStopSignal([&tls] { (void)tls->Reload(); });
  Logf(LogLevel::kInfo, "coordinator", "stopping on signal %d", sig);
  StopServer(server.get());
  return absl::OkStatus();
}

absl::Status Recover(const std::string& path, const Args& args) {
  ASSIGN_OR_RETURN(gwmirror::v1::CoordinatorConfig config, LoadConfig(path));
  ASSIGN_OR_RETURN(std::string active, args.Require("active-site"));
  ASSIGN_OR_RETURN(auto nodes, args.RequireNodes("node"));
  std::vector<std::string> report;
  absl::Status st = RecoverState(config, active, nodes, &report).status();
  for (const std::string& line : report) std::cout << line << "\n";
  return st;
}

int Main(int argc, char** argv) {
  const std::string cmd = argc >= 2 ? argv[1] : "";
  if (cmd != "serve" && cmd != "recover") {
    std::fprintf(stderr,
                 "usage: gwmirror-coordinator serve --config FILE "
                 "[--log-format text|json]\n"
                 "       gwmirror-coordinator recover --config FILE "
                 "--active-site SITE --node ID@HOST:PORT[,...]\n");
    return 2;
  }
  auto args = Args::Parse(argc, argv, 2,
                          {"config", "log-format", "active-site", "node"}, {});
  absl::Status st = args.status();
  if (st.ok()) {
    auto format = ParseLogFormat(args->Get("log-format").value_or("text"));
    st = format.status();
    if (format.ok()) SetLogFormat(*format);
  }
  if (st.ok()) {
    auto path = args->Require("config");
    st = !path.ok()       ? path.status()
         : cmd == "serve" ? Serve(*path)
                          : Recover(*path, *args);
  }
  if (st.ok()) return 0;
  std::fprintf(stderr, "gwmirror-coordinator: %s\n",
               std::string(st.message()).c_str());
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) {
  gwmirror::BlockStopSignals();  // Before gRPC starts its threads.
  return gwmirror::Main(argc, argv);
}
