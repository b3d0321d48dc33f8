#include "coordinator/coordinator.h"

#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fault.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/protocol_names.h"
#include "common/replica_call.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gwmirror/v1/replica.grpc.pb.h"

namespace gwmirror {
namespace {

using gwmirror::v1::CheckpointInfo;
using gwmirror::v1::TopologyReport;

std::string Short(const std::string& digest) {
  return absl::BytesToHexString(digest).substr(0, 16) + "...";
}

template <typename T>
T Or(T v, T def) {
  return v ? v : def;
}

// A promote's or failback's audit detail.
std::string PromoteDetail(
    bool dry_run, const absl::StatusOr<gwmirror::v1::PromoteReport>& r) {
  if (!r.ok()) return dry_run ? "dry run" : "";
  return absl::StrCat(dry_run ? "dry run: " : "", "checkpoint ",
                      r->checkpoint(), ", epoch ", r->epoch(), ", ",
                      r->active_site(), " active",
                      r->error().empty() ? "" : ", INCOMPLETE: ", r->error());
}

}  // namespace

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
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Open(
    gwmirror::v1::CoordinatorConfig config, CoordinatorOptions options) {
  RETURN_IF_ERROR(ValidateCoordinatorConfig(config));
  RETURN_IF_ERROR(MakeDirs(config.state_dir(), 0700));
  ASSIGN_OR_RETURN(auto store,
                   StateStore::Open(config.state_dir() + "/state.db",
                                    config.initial_active_site()));
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
  {
    absl::MutexLock l(&c->mu_);
    for (const auto& m : c->config_.members())
      c->nodes_[m.identity()].member = m;
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
          CallGate::Limits{}) {}

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

Coordinator::~Coordinator() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (background_.joinable()) background_.join();
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

void Coordinator::NoteCertificate(const std::string& identity,
                                  absl::Time not_after) {
  absl::MutexLock l(&mu_);
  if (auto it = nodes_.find(identity); it != nodes_.end()) {
    it->second.cert_not_after = not_after;
  }
}

gwmirror::v1::NodeRole Coordinator::Role(const std::string& site) const {
  return site == store_->ActiveSite() ? gwmirror::v1::NODE_ROLE_SOURCE
                                      : gwmirror::v1::NODE_ROLE_REPLICA;
}

bool Coordinator::Healthy(const Node& n) const {
  return n.registered &&
         clock_->Now() - n.last_heartbeat <
             absl::Milliseconds(Or(config_.heartbeat_timeout_ms(), 5000u));
}

absl::StatusOr<gwmirror::v1::RegisterResponse> Coordinator::Register(
    const std::string& identity, const gwmirror::v1::RegisterRequest& req) {
  uint64_t epoch = store_->Epoch();
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(identity);
  if (it == nodes_.end() || it->second.member.site() != req.site() ||
      it->second.member.slot() != req.slot()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "unknown node \"", identity, "\" (site \"", req.site(), "\", slot \"",
        req.slot(), "\"): not a member of this cluster"));
  }
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
    switched_ = clock_->Now();
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
  Node& n = it->second;
  nodes_client_->Forget(NodeRef{identity, req.address()});
  n.address = req.address();
  n.registered = true;
  n.last_heartbeat = clock_->Now();
  n.report = req.topology();
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
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(identity);
  if (it == nodes_.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "unknown node \"", identity, "\": not a member of this cluster"));
  }
  if (!it->second.registered) {
    return absl::NotFoundError(absl::StrCat(
        "node \"", identity, "\" is not registered; register first"));
  }
  if (req.envelope().epoch() != epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        req.envelope().epoch() < epoch ? "stale epoch " : "unknown epoch ",
        req.envelope().epoch(), ": the coordinator is at epoch ", epoch));
  }
  it->second.last_heartbeat = clock_->Now();
  it->second.report = req.topology();
  auto time_of = [](int64_t ms) {
    return ms > 0 ? absl::FromUnixMillis(ms) : absl::InfinitePast();
  };
  Node& n = it->second;
  n.pending_since = time_of(req.pending_since_unix_ms());
  n.unstaged_since = time_of(req.unstaged_since_unix_ms());
  n.pending_files = req.pending_files();
  n.pending_bytes = req.pending_bytes();
  n.prestaging = req.prestaging();
  n.drifted = req.drifted_entries();
  n.report_checkpoint = req.report_checkpoint();
  n.stale = req.replica_stale();
  // While a checkpoint runs, only changes newer than its start are news.
  bool news =
      n.pending_since != absl::InfinitePast() &&
      (cut_started_ == absl::InfinitePast() || n.pending_since >= cut_started_);
  bool drift = n.drifted > 0 && cut_started_ == absl::InfinitePast();
  if ((news || drift) && config_.follow_changes()) {
    change_reported_ = true;
  }
  gwmirror::v1::HeartbeatResponse resp;
  resp.set_epoch(epoch);
  *resp.mutable_grant() = Stamp(epoch).grant();
  resp.set_role(Role(n.member.site()));
  if (resp.role() == gwmirror::v1::NODE_ROLE_SOURCE) {
    for (const auto& [id, peer] : nodes_) {
      if (peer.member.slot() == n.member.slot() &&
          peer.member.site() != n.member.site() && Healthy(peer)) {
        resp.set_replica_address(peer.address);
        resp.set_replica_identity(id);
      }
    }
  }
  return resp;
}

absl::Time Coordinator::PrestageWaitEnds(absl::Duration max_delay) const {
  absl::Time until = absl::InfinitePast();
  for (const auto& [id, n] : nodes_) {
    if (n.prestaging && n.unstaged_since != absl::InfinitePast() &&
        Healthy(n)) {
      until = std::max(until, n.unstaged_since + max_delay);
    }
  }
  return until;
}

absl::StatusOr<std::vector<Coordinator::SlotPeers>>
Coordinator::HealthySlots() {
  std::string active = store_->ActiveSite();
  absl::MutexLock l(&mu_);
  std::map<std::string, SlotPeers> slots;
  std::vector<std::string> problems;
  for (const auto& [id, n] : nodes_) {
    SlotPeers& s = slots[n.member.slot()];
    s.slot = n.member.slot();
    (n.member.site() == active ? s.source : s.replica) = n;
  }
  std::vector<SlotPeers> out;
  for (auto& [name, s] : slots) {
    for (const Node* n : {&s.source, &s.replica}) {
      bool is_source = n == &s.source;
      if (n->member.identity().empty()) {
        problems.push_back(absl::StrCat("slot ", name, " has no ",
                                        is_source ? "source" : "replica",
                                        " member"));
      } else if (!Healthy(*n)) {
        problems.push_back(absl::StrCat(
            name, ": ", is_source ? "source" : "replica", " ",
            n->member.identity(),
            n->registered ? absl::StrCat(" lost (last heartbeat ",
                                         absl::FormatDuration(absl::Trunc(
                                             clock_->Now() - n->last_heartbeat,
                                             absl::Milliseconds(100))),
                                         " ago)")
                          : " never registered"));
      }
    }
    out.push_back(s);
  }
  if (!problems.empty()) {
    return absl::UnavailableError(absl::StrJoin(problems, "; "));
  }
  return out;
}

ParityVerdict Coordinator::Parity(const std::vector<TopologyReport>* fresh) {
  std::string active = store_->ActiveSite();
  std::vector<TopologyReport> reports;
  // Instances on a standby host are only judged once a checkpoint was
  // applied, and only from reports read after the node held it (a report
  // read before its apply, arriving after it, must not count).
  uint64_t applied = 0;
  if (auto list = store_->List(1, true);
      list.ok() && !list->empty() && list->front().applied_unix_ms() > 0) {
    applied = list->front().id();
  }
  bool check_instances = applied != 0;
  absl::MutexLock l(&mu_);
  for (const auto& [id, n] : nodes_) {
    // A node that is gone serves nothing: its absence is the finding.
    if (!Healthy(n)) continue;
    bool production = n.member.site() == active;
    if (production && fresh != nullptr) continue;
    if (!production && n.report_checkpoint < applied) check_instances = false;
    TopologyReport r = n.report;
    r.set_slot(n.member.slot());
    r.set_site(production ? "production" : "standby");
    reports.push_back(std::move(r));
  }
  if (fresh != nullptr) {
    for (TopologyReport r : *fresh) {
      r.set_site("production");
      reports.push_back(std::move(r));
    }
  }
  return ComputeParity(reports, check_instances);
}

void Coordinator::Abort(uint64_t id, const std::vector<SlotPeers>& slots,
                        const std::string& reason) {
  Logf(LogLevel::kWarning, "coordinator", "checkpoint=%d aborted: %s", id,
       reason);
  absl::Status st = store_->RecordAborted(id, reason);
  if (!st.ok()) {
    Logf(LogLevel::kError, "coordinator", "checkpoint=%d: %s", id,
         st.ToString());
  }
  uint64_t epoch = store_->Epoch();
  pool_.ParallelFor(slots.size(), [&](size_t i) {
    // Best effort: a replica that misses this discards the staging at its
    // next push (a newer checkpoint) anyway.
    (void)nodes_client_->Abort(slots[i].replica.ref(), epoch, id);
  });
}

absl::StatusOr<CheckpointInfo> Coordinator::Attempt(bool automatic,
                                                    bool* incoherent) {
  *incoherent = false;
  uint64_t epoch = store_->Epoch();
  absl::Time deadline =
      clock_->Now() +
      absl::Milliseconds(Or(config_.checkpoint_timeout_ms(), 600000u));
  auto healthy = HealthySlots();
  if (!healthy.ok() && automatic) return healthy.status();
  std::set<std::string> released;
  {
    absl::MutexLock l(&mu_);
    // A held slot waits for its operator; automatic cuts would only pile
    // up the same refusal.
    for (const auto& [slot, why] : held_) {
      if (automatic && !released_.count(slot)) {
        return absl::FailedPreconditionError(absl::StrCat(slot, ": ", why));
      }
    }
    released = released_;
  }
  ASSIGN_OR_RETURN(uint64_t id,
                   store_->BeginCut(epoch, absl::ToUnixMillis(clock_->Now())));
  RETURN_IF_ERROR(FaultPoint("coordinator:cut"));
  if (!healthy.ok()) {
    std::string reason = std::string(healthy.status().message());
    Abort(id, {}, reason);
    return absl::UnavailableError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  const std::vector<SlotPeers>& slots = *healthy;
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d cut on %d slots", id,
       slots.size());

  // 2. Sources stage N at their replicas.
  std::vector<absl::StatusOr<gwmirror::v1::CutResult>> cuts(
      slots.size(), absl::UnknownError("not run"));
  pool_.ParallelFor(slots.size(), [&](size_t i) {
    cuts[i] = nodes_client_->Cut(slots[i].source.ref(), epoch, id,
                                 slots[i].replica.ref(),
                                 released.count(slots[i].slot) > 0, deadline);
  });
  {
    absl::MutexLock l(&mu_);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (cuts[i].ok() && !cuts[i]->held().empty()) {
        held_[slots[i].slot] = cuts[i]->held();
        cuts[i] = absl::FailedPreconditionError(cuts[i]->held());
      }
    }
  }
  std::vector<std::string> failures;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!cuts[i].ok()) {
      failures.push_back(
          absl::StrCat(slots[i].slot, ": ", cuts[i].status().message()));
    } else if (cuts[i]->checkpoint() != id ||
               cuts[i]->manifest_digest().size() != 32) {
      failures.push_back(
          absl::StrCat(slots[i].slot, ": source answered for checkpoint ",
                       cuts[i]->checkpoint(), " with a ",
                       cuts[i]->manifest_digest().size(), "-byte digest"));
      cuts[i] = absl::InvalidArgumentError("bad cut result");
    }
  }
  if (failures.empty()) {
    absl::Status st = FaultPoint("coordinator:staged");
    if (!st.ok()) return st;
  }
  // 3. Every replica holds staged(N, the digest its source froze).
  std::map<std::string, std::string> digests;
  if (failures.empty()) {
    std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> states(
        slots.size(), absl::UnknownError("not run"));
    pool_.ParallelFor(slots.size(), [&](size_t i) {
      states[i] = nodes_client_->State(slots[i].replica.ref(), epoch,
                                       absl::Seconds(10));
    });
    for (size_t i = 0; i < slots.size(); ++i) {
      const std::string& want = cuts[i]->manifest_digest();
      if (!states[i].ok()) {
        failures.push_back(absl::StrCat(slots[i].slot, ": replica ",
                                        states[i].status().message()));
      } else if (states[i]->staged_checkpoint() != id ||
                 states[i]->staged_digest() != want) {
        failures.push_back(absl::StrCat(
            slots[i].slot, ": replica holds staged checkpoint ",
            states[i]->staged_checkpoint(), " (",
            Short(states[i]->staged_digest()), ") but its source froze ", id,
            " (", Short(want), ")"));
      } else {
        digests[slots[i].slot] = want;
      }
    }
  }
  if (!failures.empty()) {
    std::string reason = absl::StrJoin(failures, "; ");
    Abort(id, slots, reason);
    return absl::AbortedError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  // 4. Group coherence: every gateway instance of a group runs one archive.
  std::vector<TopologyReport> fresh;
  std::map<std::string, std::string> group_of;  // Service id -> group.
  for (const auto& c : cuts) fresh.push_back(c->topology());
  for (const auto& r : fresh) {
    for (const auto& g : r.topology().groups()) {
      for (const auto& s : g.services()) {
        if (s.type() == "gateway")
          group_of[s.id()] = g.name().empty() ? g.id() : g.name();
      }
    }
  }
  std::map<std::string, std::map<std::string, std::vector<std::string>>>
      archives;
  for (const auto& r : fresh) {
    for (const auto& [instance, archive] : r.deployments()) {
      auto g = group_of.find(instance);
      if (g != group_of.end()) archives[g->second][archive].push_back(instance);
    }
  }
  std::vector<std::string> split;
  for (const auto& [group, by_archive] : archives) {
    if (by_archive.size() < 2) continue;
    std::vector<std::string> parts;
    for (const auto& [archive, instances] : by_archive) {
      parts.push_back(
          absl::StrCat(absl::StrJoin(instances, ", "), " on ", archive));
    }
    split.push_back(absl::StrCat("group \"", group,
                                 "\" runs different deployment "
                                 "archives (",
                                 absl::StrJoin(parts, "; "), ")"));
  }
  if (!split.empty()) {
    *incoherent = true;
    std::string reason =
        absl::StrCat("deployment in progress: ", absl::StrJoin(split, "; "));
    Abort(id, slots, reason);
    return absl::AbortedError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  // Topology parity, with the sources' reports of this very cut.
  ParityVerdict verdict = Parity(&fresh);
  if (!verdict.parity && config_.parity_policy() != "warn") {
    std::string reason = absl::StrCat("topology parity fails (strict policy): ",
                                      absl::StrJoin(verdict.differences, "; "));
    Abort(id, slots, reason);
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", id, " aborted: ", reason));
  }
  // 5. The commit point.
  RETURN_IF_ERROR(
      store_->RecordConsistent(id, digests, absl::ToUnixMillis(clock_->Now())));
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d consistent", id);
  RETURN_IF_ERROR(FaultPoint("coordinator:consistent"));
  // 6. Apply.
  {
    // What was held went through with the operator's release.
    absl::MutexLock l(&mu_);
    for (const std::string& slot : released) {
      held_.erase(slot);
      released_.erase(slot);
    }
  }
  RETURN_IF_ERROR(ApplyConsistent(id, digests));
  return store_->Get(id);
}

absl::StatusOr<gwmirror::v1::DrillReport> Coordinator::Drill(
    const gwmirror::v1::StartDrillRequest& req) {
  // Every standby node takes part: a drill that skips one proves nothing
  // about it.
  ASSIGN_OR_RETURN(std::vector<SlotPeers> slots, HealthySlots());
  uint64_t epoch = store_->Epoch();
  absl::Time start = clock_->Now();
  ASSIGN_OR_RETURN(uint64_t id, store_->BeginDrill(absl::ToUnixMillis(start)));
  Logf(LogLevel::kInfo, "coordinator", "drill=%d on %d standby nodes", id,
       slots.size());
  std::vector<absl::StatusOr<gwmirror::v1::DrillResult>> results(
      slots.size(), absl::UnknownError(""));
  pool_.ParallelFor(slots.size(), [&](size_t i) {
    results[i] = nodes_client_->Drill(slots[i].replica.ref(), epoch, id, req);
  });
  gwmirror::v1::DrillReport report;
  report.set_id(id);
  report.set_started_unix_ms(absl::ToUnixMillis(start));
  report.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
  report.set_ok(true);
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!results[i].ok()) {
      report.set_ok(false);
      absl::StrAppend(report.mutable_error(),
                      report.error().empty() ? "" : "; ", slots[i].slot, ": ",
                      results[i].status().message());
      continue;
    }
    const gwmirror::v1::DrillResult& r = *results[i];
    gwmirror::v1::SlotDrill* s = report.add_slots();
    s->set_slot(slots[i].slot);
    s->set_checkpoint(r.checkpoint());
    s->set_entries(r.entries());
    s->set_bytes(r.bytes());
    s->set_copy_ms(r.copy_ms());
    s->set_restore_ms(r.restore_ms());
    s->set_smoke_ms(r.smoke_ms());
    *s->mutable_restored() = r.restored();
    if (report.checkpoint() == 0 || r.checkpoint() < report.checkpoint()) {
      report.set_checkpoint(r.checkpoint());
    }
  }
  if (report.checkpoint() > 0) {
    auto cp = store_->Get(report.checkpoint());
    if (cp.ok()) {
      report.set_rpo_ms(
          std::max<int64_t>(0, absl::ToUnixMillis(start) - cp->cut_unix_ms()));
    }
  }
  RETURN_IF_ERROR(store_->RecordDrill(report));
  Logf(report.ok() ? LogLevel::kInfo : LogLevel::kWarning, "coordinator",
       "drill=%d %s: checkpoint %d, RTO %d ms, RPO %d ms%s", id,
       report.ok() ? "passed" : "FAILED", report.checkpoint(), report.rto_ms(),
       report.rpo_ms(), report.ok() ? "" : absl::StrCat(": ", report.error()));
  return report;
}

absl::StatusOr<gwmirror::v1::PromoteReport> Coordinator::Promote(
    const gwmirror::v1::PromoteRequest& req, bool final_pending) {
  // No checkpoint runs meanwhile; a consistent one is applied first.
  absl::MutexLock cl(&checkpoint_mu_);
  RETURN_IF_ERROR(ResumeLocked());
  const absl::Time start = clock_->Now();
  const std::string active = store_->ActiveSite();
  const std::string target = StandbySite();
  if (target.empty()) {
    return absl::FailedPreconditionError("no other site to promote");
  }
  ASSIGN_OR_RETURN(std::vector<Node> nodes, SiteNodes(target));
  gwmirror::v1::CheckpointInfo cp;
  if (req.checkpoint() != 0) {
    auto known = store_->Get(req.checkpoint());
    if (!known.ok() ||
        (known->state() != gwmirror::v1::CHECKPOINT_STATE_CONSISTENT &&
         known->state() != gwmirror::v1::CHECKPOINT_STATE_APPLIED)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", req.checkpoint(), " is not a consistent checkpoint",
          known.ok() ? absl::StrCat(" (", StateName(known->state()), ")")
                     : ""));
    }
    ASSIGN_OR_RETURN(auto retained, Retained(nodes, nullptr));
    if (retained.count(req.checkpoint()) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", req.checkpoint(),
                       " is not retained on every standby node; "
                       "`gwmirror checkpoints` lists those that are"));
    }
    cp = *std::move(known);
  } else {
    ASSIGN_OR_RETURN(auto last, store_->List(1, /*committed_only=*/true));
    if (last.empty()) {
      return absl::FailedPreconditionError(
          "no consistent checkpoint yet: nothing to promote to");
    }
    cp = last.front();
  }
  gwmirror::v1::PromoteReport report;
  report.set_dry_run(req.dry_run());
  report.set_checkpoint(cp.id());
  report.set_rpo_ms(
      std::max<int64_t>(0, absl::ToUnixMillis(start) - cp.cut_unix_ms()));
  uint64_t epoch = store_->Epoch();
  auto step = [&](const std::string& name) {
    gwmirror::v1::PromoteStep* s = report.add_steps();
    s->set_name(name);
    return s;
  };
  // One activation phase on every standby node.
  auto phase = [&](const std::string& name,
                   gwmirror::v1::ActivationPhase what) {
    return ActivateAll(nodes, epoch, what, cp.id(), step(name));
  };
  // 1. The standby trees hold the checkpoint.
  {
    absl::Time t = clock_->Now();
    gwmirror::v1::PromoteStep* s = step("check standby trees");
    for (const Node& n : nodes) {
      ASSIGN_OR_RETURN(gwmirror::v1::ReplicaState state,
                       nodes_client_->State(n.ref(), epoch, absl::Seconds(10)));
      if (req.checkpoint() != 0) {
        s->add_done(absl::StrCat(
            n.member.slot(), ": ", n.member.identity(), " holds checkpoint ",
            state.committed_checkpoint(), ", retains ", cp.id()));
        continue;
      }
      if (state.committed_checkpoint() != cp.id() && final_pending) {
        s->add_done(
            absl::StrCat(n.member.slot(), ": ", n.member.identity(),
                         " holds checkpoint ", state.committed_checkpoint(),
                         "; the final checkpoint brings it up to date"));
        continue;
      }
      if (state.committed_checkpoint() != cp.id()) {
        return absl::FailedPreconditionError(
            absl::StrCat("standby ", n.member.slot(), " holds checkpoint ",
                         state.committed_checkpoint(),
                         ", not the last consistent ", cp.id()));
      }
      s->add_done(absl::StrCat(n.member.slot(), ": ", n.member.identity(),
                               " holds checkpoint ", cp.id()));
    }
    s->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
  }
  if (req.dry_run()) {
    step("raise epoch")
        ->add_done(absl::StrCat("epoch ", epoch + 1, ": ", target, " active, ",
                                active, " fenced"));
    if (req.checkpoint() != 0) {
      step("bring trees to checkpoint")
          ->add_done(absl::StrCat("every standby tree back to checkpoint ",
                                  cp.id(), " from its history"));
    }
    RETURN_IF_ERROR(phase("would run", gwmirror::v1::ACTIVATION_PHASE_DRY_RUN));
    if (!config_.traffic_switch().empty()) {
      step("traffic switch")
          ->add_done(absl::StrJoin(config_.traffic_switch(), " "));
    }
    report.set_epoch(epoch);
    report.set_active_site(active);
    report.set_fenced_site(store_->FencedSite());
    report.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
    return report;
  }
  // 2. The commit point of a promote: one transaction.
  {
    absl::Time t = clock_->Now();
    gwmirror::v1::PromoteStep* s = step("raise epoch");
    ASSIGN_OR_RETURN(epoch, store_->SwitchActive(target));
    {
      absl::MutexLock m(&mu_);
      switched_ = clock_->Now();
    }
    // Without its proof the nodes would refuse the new epoch: the raise
    // stands in the state (a restart signs it), but say so now.
    RETURN_IF_ERROR(SignGrant());
    s->add_done(absl::StrCat("epoch ", epoch, ": ", target, " active, ", active,
                             " fenced"));
    s->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
    Logf(LogLevel::kWarning, "coordinator",
         "promote: epoch %d, %s active, %s fenced (checkpoint %d)", epoch,
         target, active, cp.id());
  }
  report.set_epoch(epoch);
  report.set_active_site(target);
  report.set_fenced_site(active);
  absl::Status st;
  if (req.checkpoint() != 0) {
    st = phase("bring trees to checkpoint",
               gwmirror::v1::ACTIVATION_PHASE_ROLLBACK);
  }
  if (st.ok())
    st = phase("restore databases", gwmirror::v1::ACTIVATION_PHASE_RESTORE);
  if (st.ok())
    st =
        phase("apply site overrides", gwmirror::v1::ACTIVATION_PHASE_OVERRIDES);
  if (st.ok())
    st = phase("start node managers",
               gwmirror::v1::ACTIVATION_PHASE_NODE_MANAGERS);
  if (st.ok())
    st = phase("start instances", gwmirror::v1::ACTIVATION_PHASE_INSTANCES);
  if (st.ok() && !config_.traffic_switch().empty()) {
    absl::Time t = clock_->Now();
    gwmirror::v1::PromoteStep* s = step("traffic switch");
    ProcessSpec spec;
    spec.argv.assign(config_.traffic_switch().begin(),
                     config_.traffic_switch().end());
    spec.timeout = absl::Seconds(120);
    spec.env.emplace_back("GWMIRROR_ACTIVE_SITE", target);
    auto r = RunProcess(spec);
    if (!r.ok()) {
      st = r.status();
    } else if (r->exit_code != 0 || r->timed_out) {
      st = absl::FailedPreconditionError(
          absl::StrCat("traffic switch failed: ", Describe(*r)));
    } else {
      s->add_done(absl::StrJoin(config_.traffic_switch(), " "));
    }
    s->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
  }
  if (!st.ok()) report.set_error(std::string(st.message()));
  report.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
  Logf(st.ok() ? LogLevel::kInfo : LogLevel::kError, "coordinator",
       "promote to %s %s in %d ms%s", target, st.ok() ? "done" : "INCOMPLETE",
       report.rto_ms(), st.ok() ? "" : absl::StrCat(": ", st.message()));
  return report;
}

absl::Status Coordinator::ActivateAll(const std::vector<Node>& nodes,
                                      uint64_t epoch,
                                      gwmirror::v1::ActivationPhase phase,
                                      uint64_t checkpoint,
                                      gwmirror::v1::PromoteStep* step) {
  const absl::Time t = clock_->Now();
  std::vector<absl::StatusOr<std::vector<std::string>>> out(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    out[i] = nodes_client_->Activate(nodes[i].ref(), epoch, phase, checkpoint);
  });
  absl::Status st;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& slot = nodes[i].member.slot();
    if (!out[i].ok()) {
      st.Update(
          absl::Status(out[i].status().code(),
                       absl::StrCat(slot, ": ", out[i].status().message())));
      continue;
    }
    for (const std::string& line : *out[i]) {
      step->add_done(absl::StrCat(slot, ": ", line));
    }
  }
  step->set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
  return st;
}

absl::StatusOr<gwmirror::v1::PromoteReport> Coordinator::Failback(
    const gwmirror::v1::FailbackRequest& req) {
  const std::string back = store_->FencedSite();
  const std::string active = store_->ActiveSite();
  if (back.empty()) {
    return absl::FailedPreconditionError(
        "no promote fenced a site yet: nothing to fail back to (promote "
        "is the way to switch sites)");
  }
  ASSIGN_OR_RETURN(std::vector<Node> returning, SiteNodes(back));
  ASSIGN_OR_RETURN(std::vector<Node> current, SiteNodes(active));
  const absl::Time start = clock_->Now();
  const uint64_t epoch = store_->Epoch();
  // The returning nodes must take pushes before anything stops: a node
  // that was a source re-reads its tree first.
  for (const Node& n : returning) {
    for (absl::Time give_up = clock_->Now() + absl::Seconds(60);;) {
      ASSIGN_OR_RETURN(gwmirror::v1::ReplicaState state,
                       nodes_client_->State(n.ref(), epoch, absl::Seconds(10)));
      if (!state.stale()) break;
      if (clock_->Now() > give_up) {
        return absl::UnavailableError(
            absl::StrCat(n.member.identity(),
                         " is still re-reading its tree as a "
                         "replica; fail back once it is done"));
      }
      clock_->SleepFor(absl::Milliseconds(200));
    }
  }
  std::vector<gwmirror::v1::PromoteStep> before;
  // One activation phase on every node of the active site.
  auto on_active = [&](const std::string& name,
                       gwmirror::v1::ActivationPhase phase) {
    before.emplace_back().set_name(name);
    return ActivateAll(current, epoch, phase, 0, &before.back());
  };
  if (req.dry_run()) {
    gwmirror::v1::PromoteStep step;
    step.set_name("quiesce and final checkpoint");
    step.add_done(absl::StrCat("stop instances, then Node Managers, on ",
                               active, "; a final checkpoint to ", back));
    before.push_back(step);
  } else {
    absl::Status st = on_active("stop instances",
                                gwmirror::v1::ACTIVATION_PHASE_STOP_INSTANCES);
    if (st.ok())
      st = on_active("stop node managers",
                     gwmirror::v1::ACTIVATION_PHASE_STOP_NODE_MANAGERS);
    absl::Time t = clock_->Now();
    absl::StatusOr<gwmirror::v1::CheckpointInfo> final_cp =
        st.ok() ? RunCheckpoint()
                : absl::StatusOr<gwmirror::v1::CheckpointInfo>(st);
    if (!final_cp.ok()) {
      // Nothing switched: the active site runs again.
      absl::Status restart =
          on_active("restart node managers",
                    gwmirror::v1::ACTIVATION_PHASE_NODE_MANAGERS);
      if (restart.ok())
        restart = on_active("restart instances",
                            gwmirror::v1::ACTIVATION_PHASE_INSTANCES);
      return absl::AbortedError(absl::StrCat(
          "failback aborted, nothing switched: ", final_cp.status().message(),
          restart.ok()
              ? absl::StrCat("; ", active, "'s gateway restarted")
              : absl::StrCat("; restarting ", active,
                             "'s gateway FAILED too: ", restart.message())));
    }
    gwmirror::v1::PromoteStep step;
    step.set_name("final checkpoint");
    step.add_done(
        absl::StrCat("checkpoint ", final_cp->id(), " applied on ", back));
    step.set_ms(absl::ToInt64Milliseconds(clock_->Now() - t));
    before.push_back(step);
  }
  gwmirror::v1::PromoteRequest promote;
  promote.set_dry_run(req.dry_run());
  ASSIGN_OR_RETURN(gwmirror::v1::PromoteReport report,
                   Promote(promote, /*final_pending=*/req.dry_run()));
  gwmirror::v1::PromoteReport out = report;
  out.clear_steps();
  for (auto& s : before) *out.add_steps() = std::move(s);
  for (const auto& s : report.steps()) *out.add_steps() = s;
  out.set_rto_ms(absl::ToInt64Milliseconds(clock_->Now() - start));
  // Nothing written on the active site was left behind.
  if (!req.dry_run()) out.set_rpo_ms(0);
  return out;
}

absl::StatusOr<gwmirror::v1::DrillList> Coordinator::ListDrills(
    uint32_t limit) {
  ASSIGN_OR_RETURN(auto drills, store_->ListDrills(limit ? limit : 100));
  gwmirror::v1::DrillList out;
  for (auto& d : drills) *out.add_drills() = std::move(d);
  return out;
}

absl::Status Coordinator::Release(const std::string& slot) {
  absl::MutexLock l(&mu_);
  bool known = false;
  for (const auto& [id, n] : nodes_) known |= n.member.slot() == slot;
  if (!known) {
    return absl::NotFoundError(absl::StrCat("no slot \"", slot, "\""));
  }
  if (!held_.count(slot)) {
    return absl::FailedPreconditionError(
        absl::StrCat("slot ", slot, " holds no mass deletion"));
  }
  released_.insert(slot);
  if (config_.follow_changes()) change_reported_ = true;
  Logf(LogLevel::kWarning, "coordinator",
       "slot=%s mass deletion released by an operator", slot);
  return absl::OkStatus();
}

absl::Status Coordinator::ApplyConsistent(
    uint64_t id, const std::map<std::string, std::string>& digests) {
  ASSIGN_OR_RETURN(std::vector<std::string> pending,
                   store_->UnappliedSlots(id));
  std::string active = store_->ActiveSite();
  std::vector<Node> replicas;
  {
    absl::MutexLock l(&mu_);
    for (const std::string& slot : pending) {
      for (const auto& [ident, n] : nodes_) {
        if (n.member.slot() == slot && n.member.site() != active)
          replicas.push_back(n);
      }
    }
  }
  uint64_t epoch = store_->Epoch();
  const std::vector<uint64_t> pins = store_->Pins();
  std::vector<absl::Status> results(replicas.size());
  pool_.ParallelFor(replicas.size(), [&](size_t i) {
    const std::string& slot = replicas[i].member.slot();
    auto d = digests.find(slot);
    if (d == digests.end()) {
      // The commit point recorded every slot's digest: a slot without one
      // is a broken invariant, never a reason to commit something else.
      results[i] = absl::InternalError(absl::StrCat(
          "checkpoint ", id, " recorded no digest for slot ", slot));
      Logf(LogLevel::kError, "coordinator", "%s", results[i].ToString());
      return;
    }
    if (replicas[i].address.empty()) {
      results[i] = absl::UnavailableError("replica not registered");
      return;
    }
    results[i] =
        nodes_client_->Commit(replicas[i].ref(), epoch, id, d->second, pins);
  });
  // What was applied, recorded in one transaction (a slot missing from the
  // record is committed again after a restart: a no-op on its replica).
  std::vector<std::string> applied;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (results[i].ok()) applied.push_back(replicas[i].member.slot());
  }
  if (!applied.empty()) {
    absl::Status st =
        store_->RecordApplied(id, applied, absl::ToUnixMillis(clock_->Now()));
    if (st.ok()) st = FaultPoint("coordinator:applied-slot");
    if (!st.ok()) return st;
  }
  std::vector<std::string> failures;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (!results[i].ok()) {
      failures.push_back(
          absl::StrCat(replicas[i].member.slot(), ": ", results[i].message()));
    }
  }
  if (replicas.size() != pending.size()) {
    failures.push_back("a slot has no replica member");
  }
  if (!failures.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "checkpoint ", id, " is consistent but not applied everywhere yet (",
        absl::StrJoin(failures, "; "),
        "); its commit is retried before the "
        "next cut"));
  }
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d applied on every replica",
       id);
  return absl::OkStatus();
}

absl::Status Coordinator::ResumeLocked() {
  ASSIGN_OR_RETURN(std::vector<CheckpointInfo> open, store_->Unfinished());
  for (const CheckpointInfo& c : open) {
    if (c.state() == gwmirror::v1::CHECKPOINT_STATE_CUT) {
      // Not yet consistent: it never will be. Replicas drop its staging.
      std::vector<SlotPeers> slots;
      {
        absl::MutexLock l(&mu_);
        std::string active = store_->ActiveSite();
        for (const auto& [id, n] : nodes_) {
          if (n.member.site() != active && !n.address.empty()) {
            slots.push_back(SlotPeers{n.member.slot(), Node(), n});
          }
        }
      }
      Abort(c.id(), slots,
            "interrupted before it was consistent (coordinator restart)");
      continue;
    }
    std::map<std::string, std::string> digests;
    for (const auto& [slot, hex] : c.digests()) {
      digests[slot] = absl::HexStringToBytes(hex);
    }
    RETURN_IF_ERROR(ApplyConsistent(c.id(), digests));
  }
  return absl::OkStatus();
}

absl::Status Coordinator::Resume() {
  absl::MutexLock l(&checkpoint_mu_);
  return ResumeLocked();
}

absl::StatusOr<CheckpointInfo> Coordinator::RunCheckpoint(bool automatic) {
  static MetricFamily& runs = DefaultMetrics().Counter(
      "gwmirror_checkpoints_total",
      "Checkpoint attempts since the coordinator started, by outcome.",
      {"outcome"});
  static MetricFamily& duration = DefaultMetrics().Histogram(
      "gwmirror_checkpoint_duration_seconds",
      "Time from a checkpoint's start to its commit on every standby.",
      DurationBuckets());
  static const bool declared = [] {
    for (const char* o : {"ok", "failed"}) runs.Add(0, {o});
    return true;
  }();
  (void)declared;
  absl::Time start = clock_->Now();
  absl::StatusOr<CheckpointInfo> r = RunCheckpointOnce(automatic);
  runs.Add(1, {r.ok() ? "ok" : "failed"});
  if (r.ok()) duration.Observe(absl::ToDoubleSeconds(clock_->Now() - start));
  return r;
}

absl::StatusOr<CheckpointInfo> Coordinator::RunCheckpointOnce(bool automatic) {
  absl::MutexLock l(&checkpoint_mu_);
  {
    absl::MutexLock m(&mu_);
    cut_started_ = clock_->Now();
  }
  // Heartbeats during the run report changes it is about to cover; once it
  // ends, the next ones say what is still pending.
  auto done = absl::MakeCleanup([this] {
    absl::MutexLock m(&mu_);
    cut_started_ = absl::InfinitePast();
  });
  RETURN_IF_ERROR(ResumeLocked());
  // A replica that was a source until a promote re-reads its tree first;
  // a cut waits for that (its heartbeats say when), at most 30 s.
  for (absl::Time until = clock_->Now() + absl::Seconds(30);
       clock_->Now() < until;) {
    const std::string active = store_->ActiveSite();
    bool stale = false;
    bool ask = false;
    std::vector<Node> replicas;
    {
      absl::MutexLock m(&mu_);
      ask = clock_->Now() - switched_ < absl::Minutes(2);
      for (const auto& [id, n] : nodes_) {
        if (n.member.site() == active || !Healthy(n)) continue;
        stale |= n.stale;
        replicas.push_back(n);
      }
    }
    // Heartbeats lag a role switch: ask the replicas themselves then.
    for (size_t i = 0; ask && !stale && i < replicas.size(); ++i) {
      auto state = nodes_client_->State(replicas[i].ref(), store_->Epoch(),
                                        absl::Seconds(5));
      stale = state.ok() && state->stale();
    }
    if (!stale) break;
    clock_->SleepFor(absl::Milliseconds(100));
  }
  absl::Time give_up =
      clock_->Now() +
      absl::Milliseconds(Or(config_.coherence_wait_ms(), 60000u));
  for (;;) {
    bool incoherent = false;
    auto r = Attempt(automatic, &incoherent);
    if (r.ok() || !incoherent || clock_->Now() >= give_up) {
      if (!r.ok() && incoherent) {
        return absl::AbortedError(absl::StrCat(
            r.status().message(), "; still so after ",
            absl::FormatDuration(
                absl::Milliseconds(Or(config_.coherence_wait_ms(), 60000u))),
            ": finish or roll back the deployment"));
      }
      return r;
    }
    clock_->SleepFor(
        absl::Milliseconds(Or(config_.coherence_retry_ms(), 1000u)));
  }
}

void Coordinator::RequestCheckpoint() {
  absl::MutexLock l(&mu_);
  checkpoint_requested_ = true;
}

void Coordinator::StartBackground() {
  background_ = std::thread([this] { Background(); });
}

void Coordinator::Background() {
  absl::Duration interval =
      config_.checkpoint_interval_ms()
          ? absl::Milliseconds(config_.checkpoint_interval_ms())
          : absl::InfiniteDuration();
  // Unset: cuts for changes take at most a third of the time (twice the
  // last cut's duration between starts), and at most four a second.
  const absl::Duration fixed_gap =
      absl::Milliseconds(config_.change_cut_interval_ms());
  absl::Duration last_cut_took = absl::ZeroDuration();
  auto gap = [&] {
    if (fixed_gap > absl::ZeroDuration()) return fixed_gap;
    return std::max(absl::Milliseconds(250), 2 * last_cut_took);
  };
  const absl::Duration max_delay =
      absl::Milliseconds(Or(config_.change_cut_max_delay_ms(), 5000u));
  absl::Time next = clock_->Now() + interval;
  absl::Time next_resume = clock_->Now();
  absl::Time last_cut = absl::InfinitePast();
  for (;;) {
    bool run = false;
    bool resume = false;
    const absl::Duration change_gap = gap();
    {
      absl::MutexLock l(&mu_);
      // A change waits until change_gap after the last cut started, and
      // until pre-streaming sources caught up (at most max_delay).
      auto change_due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return change_reported_ && clock_->Now() >= last_cut + change_gap &&
               clock_->Now() >= PrestageWaitEnds(max_delay);
      };
      auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || checkpoint_requested_ || change_due();
      };
      absl::Time deadline =
          std::min({next, next_resume, clock_->Now() + absl::Seconds(1)});
      if (change_reported_) {
        deadline = std::min(deadline, std::max(last_cut + change_gap,
                                               PrestageWaitEnds(max_delay)));
      }
      mu_.AwaitWithDeadline(absl::Condition(&wake), deadline);
      if (stopping_) return;
      bool due = change_due();
      run = checkpoint_requested_ || clock_->Now() >= next || due;
      resume = clock_->Now() >= next_resume;
      checkpoint_requested_ = false;
      if (due) change_reported_ = false;
    }
    if (run) {
      next = clock_->Now() + interval;
      last_cut = clock_->Now();
      auto r = RunCheckpoint(/*automatic=*/true);
      last_cut_took = clock_->Now() - last_cut;
      if (!r.ok()) {
        Logf(LogLevel::kWarning, "coordinator", "checkpoint failed: %s",
             r.status().ToString());
      }
      // Changes during the cut arrive with the sources' next heartbeats.
    } else if (resume) {
      // Finish what a lost replica or a restart left (a consistent
      // checkpoint not applied everywhere) without waiting for a new cut.
      next_resume = clock_->Now() + absl::Seconds(2);
      absl::Status st = Resume();
      if (!st.ok()) {
        Logf(LogLevel::kWarning, "coordinator", "resume: %s", st.ToString());
      }
    }
  }
}

std::string Coordinator::StandbySite() const {
  const std::string active = store_->ActiveSite();
  for (const auto& s : config_.sites()) {
    if (s != active) return s;
  }
  return "";
}

absl::StatusOr<std::vector<Coordinator::Node>> Coordinator::SiteNodes(
    const std::string& site) {
  std::vector<Node> nodes;
  absl::MutexLock l(&mu_);
  for (const auto& [id, n] : nodes_) {
    if (n.member.site() != site) continue;
    if (!Healthy(n)) {
      return absl::FailedPreconditionError(absl::StrCat(
          site, " node ", id, " (", n.member.slot(), ") is not heartbeating"));
    }
    nodes.push_back(n);
  }
  if (nodes.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no node of site ", site, " has registered"));
  }
  return nodes;
}

absl::StatusOr<std::map<uint64_t, gwmirror::v1::CheckpointInfo>>
Coordinator::Retained(const std::vector<Node>& nodes,
                      const std::vector<uint64_t>* set_pins) {
  const uint64_t epoch = store_->Epoch();
  std::vector<absl::StatusOr<gwmirror::v1::HistoryList>> lists(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    lists[i] = nodes_client_->History(nodes[i].ref(), epoch, set_pins);
  });
  std::map<uint64_t, gwmirror::v1::CheckpointInfo> out;
  std::map<uint64_t, size_t> holders;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!lists[i].ok()) {
      return absl::Status(lists[i].status().code(),
                          absl::StrCat(nodes[i].member.slot(), ": ",
                                       lists[i].status().message()));
    }
    for (const auto& p : lists[i]->points()) {
      gwmirror::v1::CheckpointInfo& c = out[p.checkpoint()];
      ++holders[p.checkpoint()];
      c.set_id(p.checkpoint());
      c.set_bytes_on_disk(c.bytes_on_disk() + p.bytes_on_disk());
      c.set_added(c.added() + p.added());
      c.set_changed(c.changed() + p.changed());
      c.set_removed(c.removed() + p.removed());
      c.set_pinned(c.pinned() || p.pinned());
      if (c.committed_unix_ms() == 0 ||
          p.committed_unix_ms() < c.committed_unix_ms()) {
        c.set_committed_unix_ms(p.committed_unix_ms());
      }
    }
  }
  for (auto it = out.begin(); it != out.end();) {
    it = holders[it->first] == nodes.size() ? std::next(it) : out.erase(it);
  }
  return out;
}

absl::StatusOr<gwmirror::v1::CheckpointList> Coordinator::ListRetained() {
  ASSIGN_OR_RETURN(std::vector<Node> nodes, SiteNodes(StandbySite()));
  ASSIGN_OR_RETURN(auto retained, Retained(nodes, nullptr));
  gwmirror::v1::CheckpointList out;
  for (auto it = retained.rbegin(); it != retained.rend(); ++it) {
    gwmirror::v1::CheckpointInfo* c = out.add_checkpoints();
    auto known = store_->Get(it->first);
    if (known.ok()) {
      *c = *std::move(known);
    } else {
      c->set_state(
          gwmirror::v1::CHECKPOINT_STATE_ADOPTED);  // What the standby held
                                                    // before any cut.
    }
    c->MergeFrom(it->second);
  }
  return out;
}

absl::StatusOr<gwmirror::v1::PinResponse> Coordinator::Pin(
    const gwmirror::v1::PinRequest& req) {
  ASSIGN_OR_RETURN(std::vector<Node> nodes, SiteNodes(StandbySite()));
  if (!req.unpin()) {
    ASSIGN_OR_RETURN(auto retained, Retained(nodes, nullptr));
    if (retained.count(req.checkpoint()) == 0) {
      return absl::NotFoundError(
          absl::StrCat("checkpoint ", req.checkpoint(),
                       " is not retained on every standby node"));
    }
  }
  RETURN_IF_ERROR(store_->Pin(req.checkpoint(), !req.unpin()));
  std::vector<uint64_t> pins = store_->Pins();
  RETURN_IF_ERROR(Retained(nodes, &pins).status());
  Logf(LogLevel::kInfo, "coordinator", "checkpoint=%d %s by an operator",
       req.checkpoint(), req.unpin() ? "unpinned" : "pinned");
  gwmirror::v1::PinResponse out;
  for (uint64_t p : pins) out.add_pinned(p);
  return out;
}

absl::StatusOr<gwmirror::v1::VerifyReport> Coordinator::Verify(
    const gwmirror::v1::VerifyClusterRequest& req) {
  std::vector<Node> nodes;
  {
    const std::string standby = StandbySite();
    absl::MutexLock l(&mu_);
    for (const auto& [id, n] : nodes_) {
      if (n.member.site() == standby) nodes.push_back(n);
    }
  }
  const uint64_t epoch = store_->Epoch();
  std::vector<absl::StatusOr<gwmirror::v1::VerifyResult>> results(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    results[i] = nodes_client_->Verify(nodes[i].ref(), epoch, req.repair());
  });
  gwmirror::v1::VerifyReport report;
  report.set_ok(true);
  uint64_t differences = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    gwmirror::v1::SlotVerify* s = report.add_slots();
    s->set_slot(nodes[i].member.slot());
    s->set_identity(nodes[i].member.identity());
    if (!results[i].ok()) {
      s->set_error(std::string(results[i].status().message()));
      report.set_ok(false);
      continue;
    }
    *s->mutable_result() = *results[i];
    report.set_ok(report.ok() && results[i]->problems().empty());
    differences += results[i]->tree_differences();
    for (const std::string& p : results[i]->unrepairable()) {
      report.add_unrepaired(absl::StrCat(s->slot(), ": ", p));
    }
  }
  if (req.repair() && differences > 0) {
    // The replicas recorded what differs; a checkpoint brings good copies.
    auto cp = RunCheckpoint();
    if (cp.ok()) {
      report.set_repair_checkpoint(cp->id());
    } else {
      report.add_unrepaired(
          absl::StrCat(differences,
                       " standby entries wait for a checkpoint from their "
                       "sources, which failed: ",
                       cp.status().message()));
    }
  }
  Logf(report.ok() ? LogLevel::kInfo : LogLevel::kWarning, "coordinator",
       "verify%s: %s", req.repair() ? " --repair" : "",
       report.ok() ? "clean" : "problems found");
  return report;
}

absl::StatusOr<gwmirror::v1::CheckpointList> Coordinator::List(size_t limit) {
  ASSIGN_OR_RETURN(auto v, store_->List(limit ? limit : 100, true));
  gwmirror::v1::CheckpointList out;
  for (auto& c : v) *out.add_checkpoints() = std::move(c);
  return out;
}

gwmirror::v1::ClusterStatus Coordinator::Status() {
  gwmirror::v1::ClusterStatus s;
  s.set_epoch(store_->Epoch());
  *s.mutable_epoch_grant() = Stamp(s.epoch()).grant();
  s.set_active_site(store_->ActiveSite());
  s.set_fenced_site(store_->FencedSite());
  {
    absl::MutexLock l(&grant_mu_);
    if (own_cert_.has_value()) {
      s.set_coordinator_identity(own_cert_->subject);
      s.set_coordinator_certificate_expires_unix_ms(
          absl::ToUnixMillis(own_cert_->not_after));
    }
  }
  for (const auto& site : config_.sites()) s.add_sites(site);
  s.set_parity_policy(
      config_.parity_policy().empty() ? "strict" : config_.parity_policy());
  ParityVerdict verdict = Parity(nullptr);
  s.set_parity(verdict.parity);
  for (const auto& d : verdict.differences) s.add_differences(d);
  if (auto last = store_->List(1, true); last.ok() && !last->empty()) {
    *s.mutable_last_consistent() = last->front();
    s.set_rpo_ms(absl::ToUnixMillis(clock_->Now()) -
                 last->front().cut_unix_ms());
  } else {
    s.set_rpo_ms(-1);
  }
  if (auto last = store_->List(1, false); last.ok() && !last->empty()) {
    *s.mutable_last_attempt() = last->front();
  }
  std::vector<Node> nodes;
  std::map<std::string, bool> healthy;
  std::map<std::string, std::string> held_slots;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [id, n] : nodes_) {
      nodes.push_back(n);
      healthy[id] = Healthy(n);
    }
    held_slots = held_;
  }
  std::map<std::string, gwmirror::v1::SlotStatus> slots;
  std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> states(
      nodes.size(), absl::UnknownError(""));
  pool_.ParallelFor(nodes.size(), [&](size_t i) {
    if (nodes[i].member.site() != s.active_site() &&
        healthy[nodes[i].member.identity()]) {
      states[i] =
          nodes_client_->State(nodes[i].ref(), s.epoch(), absl::Seconds(2));
    }
  });
  bool all_healthy = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    gwmirror::v1::SlotStatus& slot = slots[n.member.slot()];
    slot.set_name(n.member.slot());
    bool is_source = n.member.site() == s.active_site();
    gwmirror::v1::NodeStatus* ns =
        is_source ? slot.mutable_source() : slot.mutable_replica();
    ns->set_identity(n.member.identity());
    ns->set_site(n.member.site());
    ns->set_address(n.address);
    ns->set_healthy(healthy[n.member.identity()]);
    all_healthy = all_healthy && ns->healthy();
    ns->set_heartbeat_age_ms(
        n.registered
            ? absl::ToInt64Milliseconds(clock_->Now() - n.last_heartbeat)
            : -1);
    ns->set_installed_version(n.report.installed_version());
    if (n.cert_not_after != absl::InfinitePast()) {
      ns->set_certificate_expires_unix_ms(absl::ToUnixMillis(n.cert_not_after));
    }
    if (!is_source && states[i].ok()) {
      ns->set_applied_checkpoint(states[i]->committed_checkpoint());
      ns->set_staged_checkpoint(states[i]->staged_checkpoint());
      ns->set_drifted_entries(states[i]->drifted_entries());
    }
    if (auto it = held_slots.find(n.member.slot());
        is_source && it != held_slots.end()) {
      slot.set_held(it->second);
    }
    if (is_source && n.unstaged_since != absl::InfinitePast()) {
      slot.set_lag_ms(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(clock_->Now() - n.unstaged_since)));
    }
    if (is_source) {
      slot.set_pending_files(n.pending_files);
      slot.set_pending_bytes(n.pending_bytes);
    }
  }
  bool held = false;
  for (auto& [name, slot] : slots) {
    held |= !slot.held().empty();
    auto it = verdict.by_slot.find(name);
    if (it != verdict.by_slot.end()) {
      for (const auto& d : it->second) slot.add_differences(d);
    }
    *s.add_slots() = slot;
  }
  if (!verdict.parity && s.parity_policy() == "strict") {
    s.set_state("BLOCKED");
  } else if (!verdict.parity || !all_healthy || held) {
    s.set_state("DEGRADED");
  } else {
    s.set_state("OK");
  }
  return s;
}

std::string Coordinator::RenderMetrics() {
  gwmirror::v1::ClusterStatus s = Status();
  std::string out;
  auto metric = [&](const std::string& name, const std::string& help,
                    const std::string& type) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  };
  metric("gwmirror_epoch", "Current fencing epoch.", "gauge");
  absl::StrAppend(&out, "gwmirror_epoch ", s.epoch(), "\n");
  metric("gwmirror_rpo_seconds",
         "Now minus the cut time of the last consistent checkpoint.", "gauge");
  if (s.rpo_ms() >= 0) {
    absl::StrAppend(&out, "gwmirror_rpo_seconds ", s.rpo_ms() / 1000.0, "\n");
  }
  metric("gwmirror_last_consistent_checkpoint",
         "Id of the last consistent checkpoint.", "gauge");
  absl::StrAppend(&out, "gwmirror_last_consistent_checkpoint ",
                  s.last_consistent().id(), "\n");
  metric("gwmirror_topology_parity",
         "1 when the standby has production's shape.", "gauge");
  absl::StrAppend(&out, "gwmirror_topology_parity ", s.parity() ? 1 : 0, "\n");
  metric("gwmirror_slot_lag_seconds",
         "Age of the oldest source change not yet staged at the replica.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_slot_lag_seconds{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ",
                    slot.lag_ms() / 1000.0, "\n");
  }
  metric("gwmirror_slot_pending_files",
         "Changed files the standby's committed tree does not hold yet.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_slot_pending_files{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ", slot.pending_files(),
                    "\n");
  }
  metric("gwmirror_slot_pending_bytes",
         "Bytes of changed files the standby's committed tree does not hold "
         "yet.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_slot_pending_bytes{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ", slot.pending_bytes(),
                    "\n");
  }
  metric("gwmirror_replica_drifted_entries",
         "Standby entries found differing from the committed checkpoint, "
         "awaiting repair.",
         "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_replica_drifted_entries{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ",
                    slot.replica().drifted_entries(), "\n");
  }
  metric("gwmirror_replica_applied_checkpoint",
         "Checkpoint each replica has applied.", "gauge");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(&out, "gwmirror_replica_applied_checkpoint{slot=\"",
                    EscapeLabelValue(slot.name()), "\"} ",
                    slot.replica().applied_checkpoint(), "\n");
  }
  metric("gwmirror_node_up", "1 when the node heartbeats in time.", "gauge");
  for (const auto& slot : s.slots()) {
    for (const auto* n : {&slot.source(), &slot.replica()}) {
      if (n->identity().empty()) continue;
      absl::StrAppend(
          &out, "gwmirror_node_up{slot=\"", EscapeLabelValue(slot.name()),
          "\",site=\"", EscapeLabelValue(n->site()), "\",identity=\"",
          EscapeLabelValue(n->identity()), "\"} ", n->healthy() ? 1 : 0, "\n");
    }
  }
  metric("gwmirror_checkpoints", "Checkpoints recorded, by state.", "gauge");
  if (auto counts = store_->CountByState(); counts.ok()) {
    for (const char* state : {"cut", "consistent", "applied", "aborted"}) {
      auto it = counts->find(state);
      absl::StrAppend(&out, "gwmirror_checkpoints{state=\"", state, "\"} ",
                      it == counts->end() ? 0 : it->second, "\n");
    }
  }
  return out;
}

// ------------------------------------------------------------------ gRPC

grpc::Status CoordinatorService::Register(
    grpc::ServerContext* ctx, const gwmirror::v1::RegisterRequest* req,
    gwmirror::v1::RegisterResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Coordinator.Register");
  auto r = c_->Register(ticket.identity(), *req);
  if (r.ok()) {
    *resp = *std::move(r);
    if (auto cert = PeerCertificate(*ctx); cert.ok()) {
      c_->NoteCertificate(cert->subject, cert->not_after);
      RecordCertificateExpiry(*cert);
    }
  }
  return ToGrpc(r.status());
}

grpc::Status CoordinatorService::Heartbeat(
    grpc::ServerContext* ctx, const gwmirror::v1::HeartbeatRequest* req,
    gwmirror::v1::HeartbeatResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Coordinator.Heartbeat");
  if (req->audit_size() > 64) {
    return ToGrpc(absl::InvalidArgumentError(
        "a heartbeat forwards at most 64 audit records"));
  }
  auto r = c_->Heartbeat(ticket.identity(), *req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  // The operators' acts on that node, into the cluster's log; the node
  // marks them sent once this answer arrives.
  for (gwmirror::v1::AuditRecord a : req->audit()) {
    a.set_node(ticket.identity());
    c_->Audit(std::move(a));
  }
  return grpc::Status::OK;
}

void ControlService::Record(const CallGate::Ticket& t, const char* method,
                            std::string detail, const absl::Status& outcome) {
  gwmirror::v1::AuditRecord r;
  r.set_identity(t.identity());
  r.set_role(RoleNames(t.roles()));
  r.set_action(method);
  r.set_detail(std::move(detail));
  r.set_outcome(outcome.ok() ? "ok" : outcome.ToString());
  c_->Audit(std::move(r));
}

grpc::Status ControlService::Status(grpc::ServerContext* ctx,
                                    const gwmirror::v1::StatusRequest* req,
                                    gwmirror::v1::ClusterStatus* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Status");
  *resp = c_->Status();
  return grpc::Status::OK;
}

grpc::Status ControlService::Audit(grpc::ServerContext* ctx,
                                   const gwmirror::v1::AuditRequest* req,
                                   gwmirror::v1::AuditList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Audit");
  auto r = c_->ReadAudit(req->limit());
  if (r.ok()) *resp = *std::move(r);
  return ToGrpc(r.status());
}

grpc::Status ControlService::CreateCheckpoint(
    grpc::ServerContext* ctx, const gwmirror::v1::CreateCheckpointRequest* req,
    gwmirror::v1::CheckpointInfo* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.CreateCheckpoint");
  if (!req->wait()) {
    c_->RequestCheckpoint();
    resp->set_state(gwmirror::v1::CHECKPOINT_STATE_REQUESTED);
    Record(ticket, "Control.CreateCheckpoint", "requested", absl::OkStatus());
    return grpc::Status::OK;
  }
  auto r = c_->RunCheckpoint();
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.CreateCheckpoint",
         r.ok() ? absl::StrCat("checkpoint ", resp->id(), " ",
                               StateName(resp->state()))
                : "wait",
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::Release(grpc::ServerContext* ctx,
                                     const gwmirror::v1::ReleaseRequest* req,
                                     gwmirror::v1::ReleaseResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Release");
  absl::Status st = c_->Release(req->slot());
  Record(ticket, "Control.Release", absl::StrCat("slot ", req->slot()), st);
  return ToGrpc(st);
}

grpc::Status ControlService::Drill(grpc::ServerContext* ctx,
                                   const gwmirror::v1::StartDrillRequest* req,
                                   gwmirror::v1::DrillReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Drill");
  auto r = c_->Drill(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Drill",
         absl::StrCat(req->checkpoint()
                          ? absl::StrCat("checkpoint ", req->checkpoint())
                          : "last checkpoint",
                      req->smoke().empty() ? "" : ", with a smoke command",
                      r.ok() ? absl::StrCat(", drill ", resp->id(),
                                            resp->ok() ? " passed" : " FAILED")
                             : ""),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::ListDrills(
    grpc::ServerContext* ctx, const gwmirror::v1::ListDrillsRequest* req,
    gwmirror::v1::DrillList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.ListDrills");
  auto r = c_->ListDrills(req->limit());
  if (r.ok()) *resp = *std::move(r);
  return ToGrpc(r.status());
}

grpc::Status ControlService::Promote(grpc::ServerContext* ctx,
                                     const gwmirror::v1::PromoteRequest* req,
                                     gwmirror::v1::PromoteReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Promote");
  auto r = c_->Promote(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Promote", PromoteDetail(req->dry_run(), r),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::ListCheckpoints(
    grpc::ServerContext* ctx, const gwmirror::v1::ListCheckpointsRequest* req,
    gwmirror::v1::CheckpointList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.ListCheckpoints");
  auto r = req->retained() ? c_->ListRetained() : c_->List(req->limit());
  if (r.ok()) *resp = *std::move(r);
  return ToGrpc(r.status());
}

grpc::Status ControlService::Failback(grpc::ServerContext* ctx,
                                      const gwmirror::v1::FailbackRequest* req,
                                      gwmirror::v1::PromoteReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Failback");
  auto r = c_->Failback(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Failback", PromoteDetail(req->dry_run(), r),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::Pin(grpc::ServerContext* ctx,
                                 const gwmirror::v1::PinRequest* req,
                                 gwmirror::v1::PinResponse* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Pin");
  auto r = c_->Pin(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(ticket, "Control.Pin",
         absl::StrCat(req->unpin() ? "unpin" : "pin", " checkpoint ",
                      req->checkpoint()),
         r.status());
  return ToGrpc(r.status());
}

grpc::Status ControlService::Verify(
    grpc::ServerContext* ctx, const gwmirror::v1::VerifyClusterRequest* req,
    gwmirror::v1::VerifyReport* resp) {
  GWM_ADMIT_OR_RETURN(ticket, c_->gate(), ctx, "Control.Verify");
  auto r = c_->Verify(*req);
  if (r.ok()) *resp = *std::move(r);
  Record(
      ticket, "Control.Verify",
      absl::StrCat(
          req->repair() ? "repair" : "check",
          r.ok() ? (resp->ok() ? ", all verified" : ", problems found") : ""),
      r.status());
  return ToGrpc(r.status());
}

}  // namespace gwmirror
