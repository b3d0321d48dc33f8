#include "coordinator/coordinator.h"

#include <google/protobuf/util/message_differencer.h>

#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/connection_url.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/replica_call.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/etcd_client.h"
#include "gwmirror/v1/replica.grpc.pb.h"

namespace gwmirror {

using coordinator_internal::Or;

absl::Status ValidateCoordinatorConfig(
    const gwmirror::v1::CoordinatorConfig& c) {
  auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator config: ", why));
  };
  if (c.state_dir().empty()) return bad("\"state_dir\" is required");
  if (c.listen().empty()) return bad("\"listen\" is required");
  if (c.sites_size() != 2 || c.sites(0) == c.sites(1) || c.sites(0).empty() ||
      c.sites(1).empty()) {
    return bad("\"sites\" must name two different sites");
  }
  if (c.initial_active_site() != c.sites(0) &&
      c.initial_active_site() != c.sites(1)) {
    return bad("\"initial_active_site\" must be one of \"sites\"");
  }
  if (c.has_etcd()) {
    if (absl::Status st = ValidateEtcdStore(c.etcd()); !st.ok()) {
      return bad(std::string(st.message()));
    }
  }
  if (!c.parity_policy().empty() && c.parity_policy() != "strict" &&
      c.parity_policy() != "warn") {
    return bad(absl::StrCat("parity_policy \"", c.parity_policy(),
                            "\" is neither \"strict\" nor \"warn\""));
  }
  std::set<std::string> ids;
  std::set<std::pair<std::string, std::string>> seats;
  for (const auto& m : c.members()) {
    if (m.identity().empty() || m.slot().empty()) {
      return bad("every member needs an identity and a slot");
    }
    if (m.site() != c.sites(0) && m.site() != c.sites(1)) {
      return bad(absl::StrCat("member \"", m.identity(),
                              "\" is on unknown site \"", m.site(), "\""));
    }
    if (!ids.insert(m.identity()).second) {
      return bad(absl::StrCat("member \"", m.identity(), "\" is listed twice"));
    }
    if (!seats.insert({m.site(), m.slot()}).second) {
      return bad(absl::StrCat("slot \"", m.slot(),
                              "\" has two members on site \"", m.site(), "\""));
    }
  }
  if (c.members().empty()) return bad("\"members\" lists no node");
  // One certificate, one role: a name listed twice would hold the union.
  std::set<std::string> operators(c.operator_identities().begin(),
                                  c.operator_identities().end());
  for (const std::string& v : c.viewer_identities()) {
    if (operators.count(v) || ids.count(v)) {
      return bad(absl::StrCat("\"", v, "\" is a viewer and also an ",
                              operators.count(v) ? "operator" : "member"));
    }
  }
  for (const std::string& o : operators) {
    if (ids.count(o)) {
      return bad(absl::StrCat("\"", o, "\" is an operator and also a member"));
    }
  }
  for (int i = 0; i < c.external_size(); ++i) {
    const auto& d = c.external(i);
    if (d.match().empty() || d.protected_by().empty()) {
      return bad(absl::StrCat("external[", i,
                              "] needs \"match\" (a connection URL or name) "
                              "and \"protected_by\" (what protects it)"));
    }
    if (absl::StrContains(d.match(), "://") ||
        absl::StartsWithIgnoreCase(d.match(), "jdbc:")) {
      if (auto e = ParseConnectionUrl(d.match()); !e.ok()) {
        return bad(absl::StrCat("external[", i, "]: ", e.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Open(
    gwmirror::v1::CoordinatorConfig config, CoordinatorOptions options) {
  RETURN_IF_ERROR(ValidateCoordinatorConfig(config));
  RETURN_IF_ERROR(MakeDirs(config.state_dir(), 0700));
  std::unique_ptr<StateStore> store = std::move(options.store);
  if (store == nullptr) {
    ASSIGN_OR_RETURN(store, OpenStateStore(config));
  }
  std::unique_ptr<Coordinator> c(
      new Coordinator(std::move(config), std::move(store), std::move(options)));
  ASSIGN_OR_RETURN(c->audit_,
                   AuditLog::Open(c->config_.state_dir() + "/audit.log"));
  // The certificate this process serves with (a renewed file on disk takes
  // effect, and shows, at the next start).
  if (auto pem = ReadFileToString(c->config_.tls().cert_file()); pem.ok()) {
    if (auto cert = InspectCertificate(*pem, c->config_.tls().cert_file());
        cert.ok()) {
      absl::MutexLock l(&c->grant_mu_);
      c->own_cert_ = *std::move(cert);
    }
  }
  // The proof of the epoch it holds, which nodes adopt and relay.
  RETURN_IF_ERROR(c->SignGrant());
  return c;
}

Coordinator::Coordinator(gwmirror::v1::CoordinatorConfig config,
                         std::unique_ptr<StateStore> store,
                         CoordinatorOptions options)
    : config_(std::move(config)),
      clock_(options.clock),
      store_(std::move(store)),
      nodes_client_(options.nodes != nullptr
                        ? std::move(options.nodes)
                        : NewGrpcNodeClient(
                              config_.tls(),
                              [this](uint64_t epoch) { return Stamp(epoch); })),
      gate_(
          [this](const std::string& id) {
            return CoordinatorRoles(config_, id);
          },
          CallGate::Limits{}),
      registry_(clock_,
                absl::Milliseconds(Or(config_.heartbeat_timeout_ms(), 5000u)),
                {config_.members().begin(), config_.members().end()}),
      runner_({&config_, clock_, store_.get(), &registry_, nodes_client_.get(),
               &pool_}),
      declarations_(config_.external().begin(), config_.external().end()),
      scheduler_(&config_, clock_, &registry_, &runner_) {}

void Coordinator::ReloadDeclarations(
    const gwmirror::v1::CoordinatorConfig& fresh) {
  gwmirror::v1::CoordinatorConfig others = fresh;
  others.clear_external();
  gwmirror::v1::CoordinatorConfig mine = config_;
  mine.clear_external();
  others.clear_tls();  // Reloaded on its own (TlsReloader).
  mine.clear_tls();
  if (!google::protobuf::util::MessageDifferencer::Equals(others, mine)) {
    Logf(LogLevel::kWarning, "coordinator",
         "config reloaded: only `external` declarations (and certificates) "
         "are taken without a restart; restart to apply the other changes");
  }
  absl::MutexLock l(&mu_);
  declarations_.assign(fresh.external().begin(), fresh.external().end());
  Logf(LogLevel::kInfo, "coordinator", "%d external declarations in force",
       declarations_.size());
}

void Coordinator::Audit(gwmirror::v1::AuditRecord r) {
  if (r.unix_ms() == 0) r.set_unix_ms(absl::ToUnixMillis(clock_->Now()));
  r.set_epoch(store_->Epoch());
  Logf(LogLevel::kInfo, "audit", "%s (%s) %s %s%s: %s", r.identity(), r.role(),
       r.action(), r.detail(),
       r.node().empty() ? "" : absl::StrCat(" on ", r.node()), r.outcome());
  if (absl::Status st = audit_->Append(std::move(r)); !st.ok()) {
    Logf(LogLevel::kError, "audit", "cannot append to the audit log: %s",
         st.ToString());
  }
}

absl::StatusOr<gwmirror::v1::AuditList> Coordinator::ReadAudit(
    uint32_t limit) const {
  return audit_->Read(limit);
}

gwmirror::v1::Envelope Coordinator::Stamp(uint64_t epoch) const {
  gwmirror::v1::Envelope e;
  e.set_epoch(epoch);
  absl::MutexLock l(&grant_mu_);
  if (grant_.epoch() == epoch) *e.mutable_grant() = grant_;
  return e;
}

absl::Status Coordinator::SignGrant() {
  ASSIGN_OR_RETURN(gwmirror::v1::EpochGrant g,
                   SignEpochGrant(config_.tls(), store_->Epoch(),
                                  store_->ActiveSite(), clock_->Now()));
  absl::MutexLock l(&grant_mu_);
  grant_ = std::move(g);
  return absl::OkStatus();
}

Coordinator::~Coordinator() = default;

void Coordinator::RequestCheckpoint() { scheduler_.Request(); }

void Coordinator::StartBackground() { scheduler_.Start(); }

absl::StatusOr<gwmirror::v1::CheckpointInfo> Coordinator::RunCheckpoint(
    bool automatic) {
  return runner_.Run(automatic);
}

absl::Status Coordinator::Resume() { return runner_.Resume(); }

gwmirror::v1::NodeRole Coordinator::Role(const std::string& site) const {
  return site == store_->ActiveSite() ? gwmirror::v1::NODE_ROLE_SOURCE
                                      : gwmirror::v1::NODE_ROLE_REPLICA;
}

void Coordinator::NoteCertificate(const std::string& identity,
                                  absl::Time not_after) {
  registry_.NoteCertificate(identity, not_after);
}

void Coordinator::NoteOwnCertificate(const CertificateInfo& info) {
  {
    absl::MutexLock l(&grant_mu_);
    own_cert_ = info;
  }
  if (absl::Status st = SignGrant(); !st.ok()) {
    Logf(LogLevel::kError, "coordinator", "re-signing the epoch grant: %s",
         st.ToString());
  }
}

absl::StatusOr<gwmirror::v1::RegisterResponse> Coordinator::Register(
    const std::string& identity, const gwmirror::v1::RegisterRequest& req) {
  RETURN_IF_ERROR(registry_.CheckMember(identity, req.site(), req.slot()));
  uint64_t epoch = store_->Epoch();
  // One registration at a time: an adopted forced promote is adopted once.
  absl::MutexLock l(&mu_);
  if (req.envelope().epoch() > epoch && req.has_forced_promote() &&
      req.forced_promote().epoch() == req.envelope().epoch()) {
    // A forced promote happened without us: its epoch and site stand, when
    // an operator of this cluster signed them.
    const gwmirror::v1::EpochGrant& g = req.forced_promote();
    EpochAuthority operators;
    operators.ca_file = config_.tls().ca_file();
    operators.issuers.insert(config_.operator_identities().begin(),
                             config_.operator_identities().end());
    auto issuer = VerifyEpochGrant(g, g.epoch(), operators);
    if (!issuer.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "node \"", identity, "\" claims a forced promote to epoch ",
          g.epoch(), " that is refused: ", issuer.status().message()));
    }
    if (g.active_site() != req.site()) {
      return absl::PermissionDeniedError(
          absl::StrCat("node \"", identity, "\" of site \"", req.site(),
                       "\" claims a forced promote that makes site \"",
                       g.active_site(), "\" active"));
    }
    RETURN_IF_ERROR(store_->AdoptActive(epoch = g.epoch(), g.active_site()));
    runner_.NoteRolesSwitched();
    RETURN_IF_ERROR(SignGrant());
    Logf(LogLevel::kWarning, "coordinator",
         "adopted a forced promote: epoch %d, %s active, %s fenced "
         "(signed by operator %s, claimed by %s)",
         epoch, g.active_site(), store_->FencedSite(), *issuer, identity);
    gwmirror::v1::AuditRecord a;
    a.set_unix_ms(g.issued_unix_ms());
    a.set_identity(*issuer);
    a.set_role("operator");
    a.set_action("forced promote adopted");
    a.set_detail(absl::StrCat("epoch ", g.epoch(), ", ", g.active_site(),
                              " active; claimed by ", identity));
    a.set_outcome("ok");
    a.set_node(identity);
    Audit(std::move(a));
  }
  if (req.envelope().epoch() > epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node \"", identity, "\" has seen epoch ", req.envelope().epoch(),
        " but the coordinator is at epoch ", epoch,
        ": refusing a coordinator state older than the cluster"));
  }
  if (req.address().empty()) {
    return absl::InvalidArgumentError("register needs the node's address");
  }
  nodes_client_->Forget(NodeRef{identity, req.address()});
  registry_.Registered(identity, req.address(), req.topology());
  Logf(LogLevel::kInfo, "coordinator", "node %s (%s %s) registered at %s",
       identity, req.site(), req.slot(), req.address());
  gwmirror::v1::RegisterResponse resp;
  resp.set_epoch(epoch);
  *resp.mutable_grant() = Stamp(epoch).grant();
  resp.set_role(Role(req.site()));
  resp.set_heartbeat_ms(1000);
  return resp;
}

absl::StatusOr<gwmirror::v1::HeartbeatResponse> Coordinator::Heartbeat(
    const std::string& identity, const gwmirror::v1::HeartbeatRequest& req) {
  uint64_t epoch = store_->Epoch();
  ASSIGN_OR_RETURN(const NodeView n, registry_.Heartbeat(identity, req, epoch));
  // While a checkpoint runs, only changes newer than its start are news.
  if (config_.follow_changes()) {
    const absl::Time cut_started = runner_.CutStarted();
    bool news = n->pending_since != absl::InfinitePast() &&
                (cut_started == absl::InfinitePast() ||
                 n->pending_since >= cut_started);
    bool drift = n->drifted > 0 && cut_started == absl::InfinitePast();
    if (news || drift) scheduler_.NoteChange();
  }
  gwmirror::v1::HeartbeatResponse resp;
  resp.set_epoch(epoch);
  *resp.mutable_grant() = Stamp(epoch).grant();
  resp.set_role(Role(n->member->site()));
  if (req.staged_checkpoint() != 0) {
    // A staging kept for a checkpoint this coordinator aborted, or never
    // began (its state is older than the replica's), is dropped; one being
    // cut or consistent is left to the checkpoint runner and Resume.
    auto info = store_->Get(req.staged_checkpoint());
    if (absl::IsNotFound(info.status()) ||
        (info.ok() &&
         info->state() == gwmirror::v1::CHECKPOINT_STATE_ABORTED)) {
      Logf(LogLevel::kInfo, "coordinator",
           "checkpoint=%d %s keeps its staging, which is %s: dropping it",
           req.staged_checkpoint(), identity,
           info.ok() ? "aborted" : "unknown here");
      resp.set_discard_staged(req.staged_checkpoint());
    }
  }
  if (resp.role() == gwmirror::v1::NODE_ROLE_SOURCE) {
    if (NodeView peer = registry_.HealthyPeer(*n)) {
      resp.set_replica_address(peer->address);
      resp.set_replica_identity(peer->member->identity());
    }
  }
  return resp;
}

}  // namespace gwmirror
