#include "node/membership.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "common/tls.h"
#include "node/source/cut_service.h"
#include "node/topology_report.h"

namespace gwmirror {

Membership::Membership(gwmirror::v1::NodeConfig config, std::string address,
                       EpochFile* epoch, AuditLog* audit, Fill fill,
                       OnResponse on_response)
    : config_(std::move(config)),
      address_(std::move(address)),
      epoch_(epoch),
      audit_(audit),
      fill_(std::move(fill)),
      on_response_(std::move(on_response)) {}

Membership::~Membership() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Membership::Wake() {
  absl::MutexLock l(&mu_);
  wake_ = true;
}

absl::Status Membership::Start() {
  addresses_.push_back(config_.coordinator().address());
  for (const std::string& a : config_.coordinator().more_addresses()) {
    addresses_.push_back(a);
  }
  for (const std::string& a : addresses_) {
    ASSIGN_OR_RETURN(
        auto channel,
        DialMutualTls(config_.tls(), a, config_.coordinator().identity()));
    stubs_.push_back(gwmirror::v1::Coordinator::NewStub(channel));
  }
  thread_ = std::thread([this] {
    NameThisThread("gwm-membership");
    Run();
  });
  return absl::OkStatus();
}

absl::Status Membership::Register() {
  gwmirror::v1::RegisterRequest req;
  req.mutable_envelope()->set_epoch(epoch_->Get());
  // A forced promote left its claim beside the state: the operator's
  // signed grant, which the coordinator verifies before adopting it.
  auto claim = ReadFileToString(config_.state_dir() + "/active_claim");
  gwmirror::v1::EpochGrant grant;
  if (claim.ok() && grant.ParseFromString(*claim) &&
      grant.epoch() >= epoch_->Get()) {
    req.mutable_envelope()->set_epoch(grant.epoch());
    *req.mutable_forced_promote() = std::move(grant);
  }
  req.set_site(config_.site());
  req.set_slot(config_.slot());
  req.set_address(address_);
  req.set_serves_source(config_.has_source());
  req.set_serves_replica(config_.has_replica());
  *req.mutable_topology() = ReadTopologyReport(TopologySourceOf(config_),
                                               config_.site(), config_.slot());
  gwmirror::v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  RETURN_IF_ERROR(FromGrpc(stubs_[current_]->Register(&ctx, req, &resp)));
  RETURN_IF_ERROR(epoch_->Check(resp.epoch(), resp.grant()));
  Logf(LogLevel::kInfo, "node", "slot=%s registered as %s at epoch %d",
       config_.slot(), gwmirror::v1::NodeRole_Name(resp.role()), resp.epoch());
  if (on_response_) {
    gwmirror::v1::HeartbeatResponse as_heartbeat;
    as_heartbeat.set_epoch(resp.epoch());
    as_heartbeat.set_role(resp.role());
    on_response_(as_heartbeat);
  }
  return absl::OkStatus();
}

absl::Status Membership::Heartbeat() {
  gwmirror::v1::HeartbeatRequest req;
  req.mutable_envelope()->set_epoch(epoch_->Get());
  // First what the node holds, then the report: a report read after the
  // committed checkpoint it names is at least that checkpoint's.
  if (fill_) fill_(&req);
  *req.mutable_topology() = ReadTopologyReport(TopologySourceOf(config_),
                                               config_.site(), config_.slot());
  uint64_t audit_end = 0;
  if (audit_ != nullptr) {
    auto unsent = audit_->Unsent(64);
    if (unsent.ok()) {
      for (auto& r : unsent->first) *req.add_audit() = std::move(r);
      audit_end = unsent->second;
    }
  }
  gwmirror::v1::HeartbeatResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  RETURN_IF_ERROR(FromGrpc(stubs_[current_]->Heartbeat(&ctx, req, &resp)));
  if (req.audit_size() > 0) {
    if (absl::Status st = audit_->MarkSent(audit_end); !st.ok()) {
      Logf(LogLevel::kWarning, "node", "audit: %s", st.ToString());
    }
  }
  if (on_response_) on_response_(resp);
  return absl::OkStatus();
}

void Membership::Run() {
  const absl::Duration period =
      absl::Milliseconds(config_.coordinator().heartbeat_ms()
                             ? config_.coordinator().heartbeat_ms()
                             : 1000);
  bool registered = false;
  std::string last_error;
  do {
    absl::Status st = registered ? Heartbeat() : Register();
    if (st.ok()) {
      registered = true;
      last_error.clear();
      continue;
    }
    // Unknown to the coordinator, or a new epoch: join again. Anything else
    // (coordinator down) is retried as it was.
    if (absl::IsNotFound(st) || absl::IsFailedPrecondition(st))
      registered = false;
    // With several coordinators, one that does not answer, or refuses as
    // a follower (UNAVAILABLE naming the leader), does not lead: join the
    // next. While none takes the node it goes round them; that is said
    // once, not once per coordinator and period.
    std::string said = st.ToString();
    std::string key = said;
    if (stubs_.size() > 1 &&
        (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st))) {
      said = absl::StrCat(addresses_[current_], ": ", st.message(),
                          "; trying the others in turn");
      key = "going round the coordinators";
      current_ = (current_ + 1) % stubs_.size();
      registered = false;
    }
    if (key != last_error) {  // Say it once, not every period.
      last_error = key;
      Logf(LogLevel::kWarning, "node", "slot=%s coordinator %s: %s",
           config_.slot(), registered ? "heartbeat" : "registration", said);
    }
  } while (WaitPeriod(period));
}

bool Membership::WaitPeriod(absl::Duration period) {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || wake_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), period);
  wake_ = false;
  return !stop_;
}

}  // namespace gwmirror
