#include "coordinator/etcd_client.h"

#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace gwmirror {
namespace {

bool Unanswered(const absl::Status& st) {
  return absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st);
}

// A member's answer while the cluster elects a leader (its leader died):
// the call was not served, and will be once one is elected, in a second
// or so. A fenced transaction asked again is safe: if the first one went
// through after all, the second fails its compare, and the store reads
// back what happened.
bool Electing(const absl::Status& st) {
  return absl::IsUnavailable(st) &&
         (absl::StrContains(st.message(), "etcdserver: leader changed") ||
          absl::StrContains(st.message(), "etcdserver: no leader"));
}

}  // namespace

std::string EtcdPrefixEnd(std::string prefix) {
  // Increment the last byte that is not 0xff, dropping those after it.
  while (!prefix.empty()) {
    unsigned char c = static_cast<unsigned char>(prefix.back());
    if (c < 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // Every key.
}

absl::Status ValidateEtcdStore(const gwmirror::v1::EtcdStore& config) {
  if (config.endpoints().empty()) {
    return absl::InvalidArgumentError(
        "etcd.endpoints: name at least one member (\"host:port\")");
  }
  for (const std::string& endpoint : config.endpoints()) {
    std::vector<std::string> parts = absl::StrSplit(endpoint, ':');
    int port = 0;
    if (parts.size() != 2 || parts[0].empty() ||
        !absl::SimpleAtoi(parts[1], &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd.endpoints: \"", endpoint, "\" is not host:port"));
    }
  }
  const gwmirror::v1::TlsConfig& tls = config.tls();
  if (tls.ca_file().empty() || tls.cert_file().empty() ||
      tls.key_file().empty()) {
    return absl::InvalidArgumentError(
        "etcd.tls: ca_file, cert_file and key_file are required (the "
        "coordinator talks to etcd over mutual TLS)");
  }
  if (config.lease_ttl_s() == 1) {
    return absl::InvalidArgumentError(
        "etcd.lease_ttl_s: at least 2 (etcd's own minimum lease is longer "
        "anyway)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(
    const gwmirror::v1::EtcdStore& config) {
  RETURN_IF_ERROR(ValidateEtcdStore(config));
  const gwmirror::v1::TlsConfig& tls = config.tls();
  std::unique_ptr<EtcdClient> c(new EtcdClient());
  for (const std::string& endpoint : config.endpoints()) {
    std::vector<std::string> parts = absl::StrSplit(endpoint, ':');
    const std::string server_name =
        config.server_name().empty() ? parts[0] : config.server_name();
    ASSIGN_OR_RETURN(auto channel, DialMutualTls(tls, endpoint, server_name));
    Member m;
    m.endpoint = endpoint;
    m.kv = etcdserverpb::KV::NewStub(channel);
    m.lease = etcdserverpb::Lease::NewStub(channel);
    m.maintenance = etcdserverpb::Maintenance::NewStub(channel);
    c->members_.push_back(std::move(m));
  }
  return c;
}

template <typename Call>
absl::Status EtcdClient::OnSomeMember(absl::string_view what, Call call) {
  std::vector<size_t> ask;
  for (size_t i = 0; i < members_.size(); ++i) {
    ask.push_back((current_ + i) % members_.size());
  }
  absl::Status st;
  size_t last = current_;
  absl::Time give_up = absl::InfiniteFuture();
  for (;;) {
    // Members that answered they are electing a leader are asked again
    // every 100 ms, for at most one more call timeout.
    std::vector<size_t> electing;
    for (size_t k : ask) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
      // Waits for the member's connection within the deadline, polling it
      // meanwhile, rather than failing at once while it is being made.
      ctx.set_wait_for_ready(true);
      st = FromGrpc(call(members_[k], &ctx));
      last = k;
      if (!Unanswered(st)) {
        current_ = k;
        break;
      }
      if (Electing(st)) electing.push_back(k);
    }
    if (!Unanswered(st) || electing.empty()) break;
    if (give_up == absl::InfiniteFuture())
      give_up = absl::Now() + call_timeout_;
    if (absl::Now() >= give_up) break;
    absl::SleepFor(absl::Milliseconds(100));
    ask = std::move(electing);
  }
  if (st.ok()) return st;
  return absl::Status(st.code(),
                      absl::StrCat("etcd ", what, " (", members_[last].endpoint,
                                   "): ", st.message()));
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& req) {
  etcdserverpb::RangeResponse resp;
  RETURN_IF_ERROR(
      OnSomeMember("range", [&](Member& m, grpc::ClientContext* ctx) {
        return m.kv->Range(ctx, req, &resp);
      }));
  return resp;
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(
    const etcdserverpb::TxnRequest& req) {
  etcdserverpb::TxnResponse resp;
  RETURN_IF_ERROR(OnSomeMember("txn", [&](Member& m, grpc::ClientContext* ctx) {
    return m.kv->Txn(ctx, req, &resp);
  }));
  return resp;
}

absl::StatusOr<etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(
    int64_t ttl_s) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  etcdserverpb::LeaseGrantResponse resp;
  RETURN_IF_ERROR(
      OnSomeMember("lease grant", [&](Member& m, grpc::ClientContext* ctx) {
        return m.lease->LeaseGrant(ctx, req, &resp);
      }));
  if (!resp.error().empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcd lease grant: ", resp.error()));
  }
  return resp;
}

absl::Status EtcdClient::LeaseRevoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseRevokeResponse resp;
  return OnSomeMember("lease revoke", [&](Member& m, grpc::ClientContext* ctx) {
    return m.lease->LeaseRevoke(ctx, req, &resp);
  });
}

absl::StatusOr<int64_t> EtcdClient::LeaseKeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  RETURN_IF_ERROR(
      OnSomeMember("lease keepalive", [&](Member& m, grpc::ClientContext* ctx) {
        // The API renews over a stream; one request, one answer.
        auto stream = m.lease->LeaseKeepAlive(ctx);
        etcdserverpb::LeaseKeepAliveRequest req;
        req.set_id(lease);
        if (stream->Write(req) && stream->Read(&resp)) {
          stream->WritesDone();
          ctx->TryCancel();
          (void)stream->Finish();
          return grpc::Status::OK;
        }
        stream->WritesDone();
        grpc::Status st = stream->Finish();
        return st.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                      "keepalive stream closed unanswered")
                       : st;
      }));
  return resp.ttl();
}

std::vector<absl::StatusOr<etcdserverpb::StatusResponse>>
EtcdClient::MemberStatus(absl::Duration timeout) {
  if (timeout == absl::ZeroDuration()) timeout = call_timeout_;
  // All members at once: one that does not answer costs `timeout`, not
  // `timeout` per member.
  std::vector<absl::StatusOr<etcdserverpb::StatusResponse>> out(
      members_.size(), absl::UnknownError("not asked"));
  std::vector<std::thread> asks;
  for (size_t i = 0; i < members_.size(); ++i) {
    asks.emplace_back([this, i, timeout, &out] {
      Member& m = members_[i];
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
      ctx.set_wait_for_ready(true);
      etcdserverpb::StatusResponse resp;
      absl::Status st = FromGrpc(
          m.maintenance->Status(&ctx, etcdserverpb::StatusRequest(), &resp));
      if (st.ok()) {
        out[i] = std::move(resp);
      } else {
        out[i] = absl::Status(
            st.code(), absl::StrCat("etcd ", m.endpoint, ": ", st.message()));
      }
    });
  }
  for (std::thread& t : asks) t.join();
  return out;
}

}  // namespace gwmirror
