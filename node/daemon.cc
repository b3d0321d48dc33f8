#include "node/daemon.h"

#include "absl/strings/str_cat.h"
#include "common/cluster_state.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "node/databases.h"
#include "node/metrics.h"
#include "node/source/pusher.h"
#include "node/work_progress.h"

namespace gwmirror {

NodeDaemon::NodeDaemon(gwmirror::v1::NodeConfig config)
    : config_(std::move(config)) {
  role_ = !config_.has_replica()  ? kSource
          : !config_.has_source() ? kReplica
                                  : kUnknown;
}

absl::StatusOr<std::unique_ptr<NodeDaemon>> NodeDaemon::Start(
    gwmirror::v1::NodeConfig config) {
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
  std::unique_ptr<NodeDaemon> d(new NodeDaemon(std::move(config)));
  // A part that fails to start leaves the ones before it to Stop().
  RETURN_IF_ERROR(d->StartParts());
  return d;
}

absl::Status NodeDaemon::StartParts() {
  const gwmirror::v1::NodeConfig& c = config_;
  RETURN_IF_ERROR(MakeDirs(c.state_dir(), 0700));
  ASSIGN_OR_RETURN(state_lock_, StateDirLock::Acquire(c.state_dir()));
  // Renewed certificates and CA bundles are taken on SIGHUP and when the
  // files change, without a restart.
  ASSIGN_OR_RETURN(tls_, TlsReloader::Start(c.tls(), c.state_dir() + "/tls"));
  ASSIGN_OR_RETURN(epoch_, EpochFile::Open(c.state_dir() + "/epoch",
                                           "this node", NodeEpochAuthority(c)));
  ASSIGN_OR_RETURN(SendPolicy policy, SendPolicy::From(c.bandwidth()));
  send_budget_.SetPolicy(std::move(policy));
  // Who may call what on this node, and how much one caller may hold.
  gate_ = std::make_unique<CallGate>(
      [this](const std::string& id) { return NodeRoles(config_, id); },
      CallGate::Limits{});
  // Operators' direct acts on this node, forwarded to the coordinator.
  ASSIGN_OR_RETURN(audit_, AuditLog::Open(c.state_dir() + "/audit.log"));
  grpc::ServerBuilder builder;
  if (c.has_replica()) {
    ASSIGN_OR_RETURN(store_, ReplicaStore::Open(c));
    drills_ = std::make_unique<DrillRunner>(c, store_.get());
    activation_ = std::make_unique<Activation>(c);
    replica_ = std::make_unique<ReplicaService>(
        store_.get(), c.state_dir(), gate_.get(), drills_.get(),
        activation_.get(), audit_.get(), &send_budget_);
    builder.RegisterService(replica_.get());
  }
  if (c.has_source()) {
    ChangeWatcher::Options wo;
    wo.ignore = DatabaseJobs(c).DumpFiles();
    wo.on_change = [this] {
      Wake();
      Poke();
    };
    watcher_ = std::make_unique<ChangeWatcher>(c, wo);
    tree_ = std::make_unique<SourceTree>(c, watcher_.get(), wo.ignore);
    if (!c.source().prestage_off()) {
      prestager_ = std::make_unique<Prestager>(c, tree_.get(), watcher_.get(),
                                               epoch_.get(), &send_budget_,
                                               [this] { Wake(); });
      absl::MutexLock l(&hub_mu_);
      poke_target_ = prestager_.get();
    }
    RETURN_IF_ERROR(watcher_->Start());
    if (prestager_) prestager_->Start();
    source_ = std::make_unique<CutService>(c, gate_.get(), epoch_.get(),
                                           tree_.get(), watcher_.get(),
                                           prestager_.get(), &send_budget_);
    builder.RegisterService(source_.get());
  }
  if (store_) {
    drift_ = std::make_unique<DriftChecker>(store_.get(), c.replica(),
                                            [this] { Wake(); });
    // Until told otherwise, a node that can be a source has a live tree its
    // committed manifest does not describe.
    drift_->SetReplicaRole(role_ == kReplica);
    drift_->Start();
  }
  builder.SetMaxReceiveMessageSize(4 << 20);
  int port = 0;
  std::vector<std::string> services;
  if (replica_) services.push_back(gwmirror::v1::Replica::service_full_name());
  if (source_) services.push_back(gwmirror::v1::Source::service_full_name());
  ASSIGN_OR_RETURN(server_, StartServer(builder, c.tls(), c.listen(),
                                        c.port_file(), &port, services));
  Logf(LogLevel::kInfo, "node", "slot=%s site=%s listening on port %d (%s%s)",
       c.slot(), c.site(), port, source_ ? "source" : "",
       replica_ ? (source_ ? ", replica" : "replica") : "");
  if (store_) {
    NodeMetrics::Get().committed_checkpoint.Set(
        store_->State().committed_checkpoint());
  }
  ASSIGN_OR_RETURN(
      metrics_server_,
      MetricsServer::StartIfConfigured(
          c.metrics_listen(), c.metrics_port_file(),
          {MetricsServer::Metrics([] { return DefaultMetrics().Render(); })}));
  if (metrics_server_) {
    Logf(LogLevel::kInfo, "node", "slot=%s metrics on port %d", c.slot(),
         metrics_server_->port());
  }
  if (c.has_coordinator()) {
    std::string address = c.advertise_address();
    if (address.empty()) {
      address =
          absl::StrCat(c.listen().substr(0, c.listen().rfind(':')), ":", port);
    }
    membership_ = std::make_unique<Membership>(
        c, address, epoch_.get(), audit_.get(),
        [this](gwmirror::v1::HeartbeatRequest* req) { Fill(req); },
        [this](const gwmirror::v1::HeartbeatResponse& r) { OnResponse(r); });
    RETURN_IF_ERROR(membership_->Start());
    absl::MutexLock l(&hub_mu_);
    wake_target_ = membership_.get();
  }
  return absl::OkStatus();
}

void NodeDaemon::Wake() {
  absl::MutexLock l(&hub_mu_);
  if (wake_target_ != nullptr) wake_target_->Wake();
}

void NodeDaemon::Poke() {
  absl::MutexLock l(&hub_mu_);
  if (poke_target_ != nullptr) poke_target_->Poke();
}

void NodeDaemon::Fill(gwmirror::v1::HeartbeatRequest* req) {
  if (watcher_ && role_ == kSource) {
    ChangeWatcher::Pending p = watcher_->Snapshot();
    auto ms = [](absl::Time t) {
      return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t);
    };
    req->set_pending_since_unix_ms(ms(p.since));
    req->set_unstaged_since_unix_ms(ms(p.unstaged_since));
    req->set_pending_files(p.files);
    req->set_pending_bytes(p.bytes);
    req->set_prestaging(prestager_ != nullptr &&
                        prestager_->WorthWaitingFor(p));
  }
  const uint64_t rate = send_budget_.RecentRate();
  const uint64_t cap = send_budget_.CapNow();
  req->set_send_rate(rate);
  req->set_send_cap(cap);
  NodeMetrics::Get().send_rate.Set(rate);
  NodeMetrics::Get().send_cap.Set(cap);
  if (auto progress =
          (role_ == kSource ? WorkProgress::Push() : WorkProgress::Drill())
              .Snapshot()) {
    *req->mutable_progress() = *progress;
  }
  if (store_ && role_ == kReplica) {
    gwmirror::v1::ReplicaState state = store_->State();
    NodeMetrics& metrics = NodeMetrics::Get();
    metrics.committed_checkpoint.Set(state.committed_checkpoint());
    metrics.scrub_problems.Set(state.scrub_problems());
    req->set_drifted_entries(state.drifted_entries());
    req->set_report_checkpoint(state.committed_checkpoint());
    req->set_staged_checkpoint(state.staged_checkpoint());
  }
  // Also before the coordinator has named a role: a node restarted with a
  // store is stale (it re-reads its tree once told it is a replica), and a
  // cut must wait for that rather than find out from a refused push.
  if (store_) req->set_replica_stale(store_->stale());
}

void NodeDaemon::OnResponse(const gwmirror::v1::HeartbeatResponse& resp) {
  int now = resp.role() == gwmirror::v1::NODE_ROLE_SOURCE    ? kSource
            : resp.role() == gwmirror::v1::NODE_ROLE_REPLICA ? kReplica
                                                             : kUnknown;
  if (now == kUnknown || (now == kSource && !config_.has_source()) ||
      (now == kReplica && !config_.has_replica())) {
    return;  // A role this node's config cannot take: keep the old one.
  }
  if (role_.exchange(now) != now) {
    Logf(LogLevel::kInfo, "node", "slot=%s role: %s at epoch %d",
         config_.slot(), now == kSource ? "source" : "replica", resp.epoch());
  }
  if (drift_) drift_->SetReplicaRole(now == kReplica);
  if (store_ && resp.discard_staged() != 0) {
    absl::Status st = store_->Abort(resp.discard_staged());
    Logf(st.ok() ? LogLevel::kInfo : LogLevel::kWarning, "replica",
         "slot=%s checkpoint=%d the coordinator aborted it: staging %s",
         config_.slot(), resp.discard_staged(),
         st.ok() ? "dropped" : st.ToString());
    if (st.ok() && drift_) drift_->ReadoptSoon();
  }
  if (prestager_) {
    // Only a source pre-streams, and only to the replica it is told of.
    prestager_->SetTarget(now == kSource ? resp.replica_address() : "",
                          now == kSource ? resp.replica_identity() : "");
  }
}

void NodeDaemon::Reload(const gwmirror::v1::NodeConfig* fresh) {
  if (tls_) (void)tls_->Reload();  // A refusal is logged by the reloader.
  if (fresh == nullptr) return;
  // Validated when loaded; only the bandwidth is taken without a restart.
  auto policy = SendPolicy::From(fresh->bandwidth());
  if (!policy.ok()) return;
  send_budget_.SetPolicy(*std::move(policy));
  const uint64_t cap = send_budget_.CapNow();
  Logf(LogLevel::kInfo, "node", "slot=%s reloaded: send cap now %s",
       config_.slot(), cap == 0 ? std::string("none") : RateText(cap));
}

void NodeDaemon::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    // From here no worker thread's callback reaches membership or the
    // pre-stager.
    absl::MutexLock l(&hub_mu_);
    wake_target_ = nullptr;
    poke_target_ = nullptr;
  }
  membership_.reset();
  // The services use what follows: stop serving first.
  if (server_) StopServer(server_.get());
  drift_.reset();
  prestager_.reset();
  tree_.reset();  // Saves the stat index.
  watcher_.reset();
  metrics_server_.reset();
}

NodeDaemon::~NodeDaemon() { Stop(); }

}  // namespace gwmirror
