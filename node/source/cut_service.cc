#include "node/source/cut_service.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "common/utf8.h"
#include "node/hash_index.h"
#include "node/metrics.h"
#include "node/source/deletion_guard.h"
#include "node/source/pusher.h"

namespace gwmirror {
namespace {

std::string HostRoot(const gwmirror::v1::NodeConfig& config) {
  return config.host_root().empty() ? "/" : config.host_root();
}

// How long a cut keeps scanning and pushing again while files change
// under the push, and the pause before each new try.
constexpr absl::Duration kPushFor = absl::Seconds(30);
absl::Duration PushBackoff(int round) {
  return absl::Milliseconds(std::min(20 * round, 200));
}

}  // namespace

TopologySource TopologySourceOf(const gwmirror::v1::NodeConfig& config) {
  TopologySource src;
  src.host_root = HostRoot(config);
  if (!config.topology().gateway_dir().empty()) {
    src.gateway_dir = config.topology().gateway_dir();
  }
  src.version_file = config.topology().version_file();
  src.host_name = config.topology().host_name();
  for (const auto& job : config.databases()) {
    gwmirror::v1::DumpJobEndpoint e;
    e.set_name(job.name());
    e.set_kind(job.kind());
    e.set_host(job.host());
    e.set_port(job.port());
    // slapcat and slapadd read the directory's files, like a socket: this
    // host's server, whatever port it listens on.
    e.set_socket(!job.socket().empty() ||
                 (job.kind() == "ldap" && job.host().empty()));
    e.set_database(job.kind() == "ldap" ? job.ldap_suffix() : job.database());
    src.dump_jobs.push_back(std::move(e));
  }
  return src;
}

CutService::CutService(gwmirror::v1::NodeConfig config, CallGate* gate,
                       EpochFile* epoch, SourceTree* tree,
                       ChangeWatcher* watcher, Prestager* prestager,
                       SendBudget* budget)
    : config_(std::move(config)),
      databases_(config_),
      gate_(*gate),
      epoch_(epoch),
      budget_(budget),
      tree_(tree),
      watcher_(watcher),
      prestager_(prestager) {}

grpc::Status CutService::Cut(grpc::ServerContext* ctx,
                             const gwmirror::v1::CutRequest* req,
                             gwmirror::v1::CutResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Source.Cut");
  if (absl::Status st = epoch_->Check(req->envelope()); !st.ok()) {
    return ToGrpc(st);
  }
  if (req->checkpoint() == 0 || req->replica_address().empty() ||
      req->replica_identity().empty()) {
    return ToGrpc(absl::InvalidArgumentError(
        "cut needs a checkpoint > 0, a replica address and its identity"));
  }
  if (!cut_mu_.TryLock()) {
    return ToGrpc(
        absl::AbortedError("another cut is in progress on this source"));
  }
  // Without a deadline from the caller, an hour.
  absl::Time deadline = absl::Now() + absl::Hours(1);
  if (ctx->deadline() <
      std::chrono::system_clock::now() + std::chrono::hours(1)) {
    deadline = absl::FromChrono(ctx->deadline());
  }
  absl::Time start = absl::Now();
  auto r = DoCut(*req, deadline);
  // Cuts under churn must not pile up on the first sync's high-water mark.
  ReleaseFreedHeap();
  cut_mu_.Unlock();
  NodeMetrics& m = NodeMetrics::Get();
  const bool held = IsHeld(r.status());
  m.cuts.Add(1, {r.ok() ? "ok" : held ? "held" : "failed"});
  if (r.ok())
    m.cut_duration.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (r.ok() || held) {
    m.deletion_held.Set(HeldKind(r.status()) == "mass-deletion" ? 1 : 0);
    m.anomaly_held.Set(IsAnomalyHeld(r.status()) ? 1 : 0);
  }
  if (held) {
    // A hold is an answer, not a failure: the coordinator records why.
    Logf(LogLevel::kWarning, "source", "slot=%s checkpoint=%d held: %s",
         config_.slot(), req->checkpoint(), r.status().message());
    resp->set_checkpoint(req->checkpoint());
    // It names paths, which are bytes; `held` is text.
    resp->set_held(ValidUtf8(r.status().message()));
    return grpc::Status::OK;
  }
  if (!r.ok()) {
    Logf(LogLevel::kWarning, "source", "slot=%s checkpoint=%d cut failed: %s",
         config_.slot(), req->checkpoint(), r.status().ToString());
    return ToGrpc(r.status());
  }
  *resp = *std::move(r);
  return grpc::Status::OK;
}

absl::Status CutService::Hook(
    const google::protobuf::RepeatedPtrField<std::string>& argv,
    const std::string& what) {
  if (argv.empty()) return absl::OkStatus();
  ProcessSpec spec;
  spec.argv.assign(argv.begin(), argv.end());
  spec.timeout = absl::Milliseconds(config_.source().hook_timeout_ms()
                                        ? config_.source().hook_timeout_ms()
                                        : 60'000);
  ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec));
  if (r.exit_code == 0 && !r.timed_out) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what, " hook failed: ", Describe(r)));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CutService::ReplicaChannel(
    const std::string& address, const std::string& identity) {
  absl::MutexLock l(&channel_mu_);
  const std::string peer = absl::StrCat(address, "|", identity);
  if (channel_ == nullptr || channel_peer_ != peer) {
    ASSIGN_OR_RETURN(channel_, DialMutualTls(config_.tls(), address, identity));
    channel_peer_ = peer;
  }
  return channel_;
}

absl::StatusOr<gwmirror::v1::CutResult> CutService::DoCut(
    const gwmirror::v1::CutRequest& req, absl::Time deadline) {
  gwmirror::v1::CutResult out;
  out.set_checkpoint(req.checkpoint());
  // The topology and deployments are read with the scan, so they are the
  // ones of the frozen manifest (a half-written deployments.json would fail
  // the verification and be read again).
  auto read_topology = [&] {
    *out.mutable_topology() = ReadTopologyReport(
        TopologySourceOf(config_), config_.site(), config_.slot());
  };
  ASSIGN_OR_RETURN(auto channel, ReplicaChannel(req.replica_address(),
                                                req.replica_identity()));
  // The pre-stager steps aside; what it already sent is used.
  Prestager::CutGuard guard(prestager_);
  // Pre-cut hook (pause a broker, say), then the dumps, then the scan; the
  // post-cut hook runs once the push has read every file.
  RETURN_IF_ERROR(Hook(config_.source().pre_cut_hook(), "pre-cut"));
  auto resume = absl::MakeCleanup([&] {
    absl::Status post_hook = Hook(config_.source().post_cut_hook(), "post-cut");
    if (!post_hook.ok()) {
      Logf(LogLevel::kWarning, "source", "slot=%s checkpoint=%d %s",
           config_.slot(), req.checkpoint(), post_hook.message());
    }
  });
  RETURN_IF_ERROR(databases_.DumpDue(absl::Now()));
  Pusher pusher(config_, channel);
  pusher.SetDeadline(deadline);  // The coordinator's, for this cut.
  pusher.SetSendBudget(budget_);
  pusher.SetMemo(prestager_ != nullptr ? prestager_->memo() : &memo_);
  if (prestager_ != nullptr) {
    prestager_->SetTarget(req.replica_address(), req.replica_identity());
    pusher.SetLedger(prestager_->ledger());
  }
  // An operator's release lets one cut through both guards.
  if (!req.release_mass_deletion()) {
    uint32_t pct = config_.source().max_delete_percent();
    pusher.SetDeletionGuard((pct == 0 ? 50 : pct) / 100.0);
    pusher.SetAnomalyGuard(!config_.source().anomaly_guard().off());
  }
  // A file that changes between the scan and its sending aborts the push:
  // scan again, pausing a little longer each time (a burst of writes has
  // quiet gaps), for at most kPushFor or until the deadline.
  const absl::Time start = absl::Now();
  const absl::Time give_up = std::min(deadline, start + kPushFor);
  absl::Status last;
  int round = 0, transport_retries = 0;
  for (;; ++round) {
    absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    if (round > 0) absl::SleepFor(std::min(left, PushBackoff(round)));
    int attempts = 0;
    ASSIGN_OR_RETURN(ScanResult scan,
                     tree_->StableScan(left, &attempts, read_topology));
    for (const std::string& w : scan.warnings) {
      Logf(LogLevel::kWarning, "source", "slot=%s %s", config_.slot(), w);
    }
    pusher.SetHeld(&scan);
    pusher.SetDigestSink(tree_->LearnSink());
    auto r = pusher.Push(scan.manifest, req.checkpoint(), req.envelope());
    pusher.SetHeld(nullptr);
    if (r.ok()) {
      out.set_manifest_digest(r->manifest_digest);
      out.set_entries(scan.manifest.size());
      out.set_files_whole(r->files_whole);
      out.set_files_delta(r->files_delta);
      out.set_content_bytes(r->content_bytes);
      out.set_wire_bytes(r->wire_bytes);
      out.set_scan_attempts(attempts);
      out.set_bytes_hashed(scan.bytes_hashed);
      out.set_index_hits(scan.index_hits);
      out.set_files_prestaged(r->files_prestaged);
      if (watcher_ != nullptr) {
        watcher_->Staged(absl::FromUnixNanos(scan.started_ns));
      }
      Logf(LogLevel::kInfo, "source",
           "slot=%s checkpoint=%d staged: %d entries, %d whole, %d delta, "
           "%d pre-staged, %d copied, %d wire bytes, %d bytes hashed, %d "
           "index hits",
           config_.slot(), req.checkpoint(), scan.manifest.size(),
           r->files_whole, r->files_delta, r->files_prestaged, r->files_copied,
           r->wire_bytes, scan.bytes_hashed, scan.index_hits);
      return out;
    }
    last = r.status();
    // A connection to the replica that died while the link was down (a
    // partition healed, a replica restarted) fails the first call made on
    // it ("Broken pipe"); gRPC makes a new one for the next. Twice at
    // most: a link still down fails the cut as before.
    if (absl::IsUnavailable(last) && transport_retries < 2) {
      ++transport_retries;
      Logf(LogLevel::kWarning, "source",
           "slot=%s checkpoint=%d push: %s; pushing again", config_.slot(),
           req.checkpoint(), last.message());
      continue;
    }
    if (!absl::IsAborted(last)) return last;
  }
  if (round == 0) {
    return absl::DeadlineExceededError(
        "the checkpoint's deadline passed before the push began");
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the source tree kept changing: no stable push in ",
                   absl::FormatDuration(give_up - start), " (", round,
                   " pushes; last: ", last.message(), ")"));
}

}  // namespace gwmirror
