// gwmirror-coordinator: the cluster's control plane.
// "gwmirror-coordinator help" and the table in Main give its commands.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/args.h"
#include "common/command_line.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/coordinator.h"
#include "coordinator/etcd_state_store.h"
#include "coordinator/follower.h"
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

// "host:0" becomes "host:port": the leader keeps the ports it followed on.
void KeepPort(std::string* listen, int port) {
  if (absl::EndsWith(*listen, ":0")) {
    listen->resize(listen->size() - 1);
    absl::StrAppend(listen, port);
  }
}

// With the etcd store: serves as a follower (coordinator/follower.h) until
// this process wins the lead, and returns the store it leads with; nullptr
// when a stop signal came first.
absl::StatusOr<std::unique_ptr<EtcdStateStore>> Follow(
    gwmirror::v1::CoordinatorConfig& config,
    const std::function<void()>& on_hangup) {
  EtcdStateStore::Options options = EtcdStateStore::OptionsFor(config);
  // Waiting for etcd to answer (a site coming back) is not waiting for a
  // signal: a stop meanwhile is taken there.
  options.stopped = TakePendingStopSignal;
  absl::StatusOr<std::unique_ptr<EtcdStateStore>> connected =
      EtcdStateStore::Connect(config.etcd(), std::move(options));
  if (absl::IsCancelled(connected.status())) return nullptr;
  ASSIGN_OR_RETURN(std::unique_ptr<EtcdStateStore> store, std::move(connected));
  FollowerServices follower(config, store.get());
  grpc::ServerBuilder builder;
  builder.RegisterService(follower.coordinator());
  builder.RegisterService(follower.control());
  int port = 0;
  ASSIGN_OR_RETURN(std::unique_ptr<grpc::Server> server,
                   StartServer(builder, config.tls(), config.listen(),
                               config.port_file(), &port, {}));
  for (const char* service : {gwmirror::v1::Coordinator::service_full_name(),
                              gwmirror::v1::Control::service_full_name()}) {
    server->GetHealthCheckService()->SetServingStatus(service, false);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> metrics,
                   MetricsServer::StartIfConfigured(
                       config.metrics_listen(), config.metrics_port_file(),
                       {MetricsServer::Metrics([&follower] {
                         return follower.RenderMetrics() +
                                DefaultMetrics().Render();
                       })}));
  Logf(LogLevel::kInfo, "coordinator",
       "following on port %d until this coordinator (%s) leads", port,
       store->name());
  KeepPort(config.mutable_listen(), port);
  if (absl::Status st = store->SetAddress(config.listen()); !st.ok()) {
    Logf(LogLevel::kWarning, "coordinator",
         "etcd: could not record where this coordinator listens: %s",
         st.message());
  }
  if (metrics) KeepPort(config.mutable_metrics_listen(), metrics->port());
  std::atomic<bool> campaigned{false};
  absl::Status campaign;
  std::thread campaigner([&] {
    campaign = store->Campaign(absl::InfiniteDuration());
    campaigned = true;
    kill(getpid(), SIGTERM);
  });
  WaitForStopSignal(on_hangup);
  if (!campaigned) store->StopCampaign();
  campaigner.join();
  metrics.reset();
  StopServer(server.get());
  if (absl::IsCancelled(campaign)) return nullptr;
  RETURN_IF_ERROR(campaign);
  return store;
}

absl::Status Serve(const std::string& path) {
  ASSIGN_OR_RETURN(gwmirror::v1::CoordinatorConfig config, LoadConfig(path));
  // Renewed certificates and CA bundles are taken on SIGHUP and when the
  // files change, without a restart.
  std::atomic<Coordinator*> leading{nullptr};
  ASSIGN_OR_RETURN(std::unique_ptr<TlsReloader> tls,
                   TlsReloader::Start(config.tls(), config.state_dir() + "/tls",
                                      [&leading](const CertificateInfo& info) {
                                        if (Coordinator* c = leading) {
                                          c->NoteOwnCertificate(info);
                                        }
                                      }));
  CoordinatorOptions options;
  if (config.has_etcd()) {
    ASSIGN_OR_RETURN(options.store,
                     Follow(config, [&tls] { (void)tls->Reload(); }));
    if (options.store == nullptr) {
      Logf(LogLevel::kInfo, "coordinator", "stopping on a signal, not leading");
      return absl::OkStatus();
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> c,
                   Coordinator::Open(config, std::move(options)));
  Coordinator* coordinator = c.get();
  leading = coordinator;
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
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> metrics,
                   MetricsServer::StartIfConfigured(
                       config.metrics_listen(), config.metrics_port_file(),
                       {MetricsServer::Metrics([&c] {
                          return c->RenderMetrics() + DefaultMetrics().Render();
                        }),
                        HttpPage{"/", "text/html; charset=utf-8",
                                 [&c] { return c->RenderStatusPage(); }}}));
  if (metrics) {
    Logf(LogLevel::kInfo, "coordinator", "metrics on port %d", metrics->port());
  }
  // Unfinished checkpoints of a previous run are settled by the background
  // loop as soon as the replicas have registered.
  c->StartBackground();
  // With the etcd store: a coordinator that lost the lead stops acting at
  // once (its writes are refused from then on) and exits, non-zero, so
  // that its supervisor starts it again to campaign anew.
  std::atomic<bool> stop_watching{false};
  std::string lost;
  std::thread lead_watch([&] {
    while (!stop_watching) {
      if (absl::Status st = coordinator->Lead(); !st.ok()) {
        lost = std::string(st.message());
        kill(getpid(), SIGTERM);
        return;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  });
  // SIGHUP: certificates, and the config's `external` declarations.
  int sig = WaitForStopSignal([&tls, &path, coordinator] {
    (void)tls->Reload();
    absl::StatusOr<gwmirror::v1::CoordinatorConfig> fresh = LoadConfig(path);
    if (!fresh.ok()) {
      Logf(LogLevel::kError, "coordinator",
           "config not reloaded, the running one stays: %s",
           fresh.status().message());
      return;
    }
    coordinator->ReloadDeclarations(*fresh);
  });
  stop_watching = true;
  lead_watch.join();
  leading = nullptr;
  if (!lost.empty()) {
    StopServer(server.get());
    return absl::UnavailableError(lost);
  }
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

absl::Status Migrate(const std::string& path, const Args& args) {
  ASSIGN_OR_RETURN(gwmirror::v1::CoordinatorConfig to, LoadConfig(path));
  ASSIGN_OR_RETURN(std::string from_path, args.Require("from"));
  ASSIGN_OR_RETURN(gwmirror::v1::CoordinatorConfig from, LoadConfig(from_path));
  std::vector<std::string> report;
  absl::Status st = MigrateState(from, to, &report);
  for (const std::string& line : report) std::cout << line << "\n";
  return st;
}

int Main(int argc, char** argv) {
  static const ProgramSpec spec{
      .name = "gwmirror-coordinator",
      .man_section = 8,
      .summary = "the gwmirror cluster's control plane",
      .description =
          "gwmirror-coordinator takes the consistency checkpoints across "
          "every host of both sites, keeps the epochs that fence a promoted "
          "site, runs drills and serves the operator's CLI and /metrics. "
          "Exit 0 on SIGTERM or SIGINT; non-zero when its state store "
          "fails, or when it keeps its state on etcd and loses the lead.",
      .global = DaemonFlags("The coordinator config"),
      .commands = {
          {.path = "serve",
           .group = "Commands",
           .summary = "Run the coordinator",
           .example = "gwmirror-coordinator serve --config "
                      "/etc/gwmirror/coordinator.json"},
          {.path = "recover",
           .group = "Commands",
           .summary = "Rebuild a lost coordinator's state from the nodes",
           .flags = {{.names = "--active-site",
                      .value = "SITE",
                      .help = "The site that is active now",
                      .required = true},
                     {.names = "--node",
                      .value = "ID@HOST:PORT[,...]",
                      .help = "Every node",
                      .required = true}},
           .example = "gwmirror-coordinator recover --config c.json "
                      "--active-site standby --node gw1@10.0.0.5:7101"},
          {.path = "migrate",
           .group = "Commands",
           .summary = "Copy the whole state from another config's store "
                      "(SQLite to etcd, or back) into this config's, "
                      "which must be empty; every coordinator stopped",
           .flags = {{.names = "--from",
                      .value = "FILE",
                      .help = "The config whose state is copied",
                      .required = true}},
           .example = "gwmirror-coordinator migrate --config "
                      "coordinator-etcd.json --from coordinator.json"},
      }};
  return RunCommandLine(
      spec, argc, argv, [](const CommandLine& line) -> absl::StatusOr<int> {
        ASSIGN_OR_RETURN(std::string path, DaemonConfigPath(line.args));
        RETURN_IF_ERROR(line.command == "serve"     ? Serve(path)
                        : line.command == "recover" ? Recover(path, line.args)
                                                    : Migrate(path, line.args));
        return 0;
      });
}

}  // namespace
}  // namespace gwmirror

int main(int argc, char** argv) {
  gwmirror::PrepareGrpc();
  gwmirror::BlockStopSignals();  // Before gRPC starts its threads.
  return gwmirror::Main(argc, argv);
}
