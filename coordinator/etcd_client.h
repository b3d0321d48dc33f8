// A small client of etcd's v3 gRPC API (proto/etcd/rpc.proto): the calls
// the etcd state store makes, over mutual TLS, with failover between the
// cluster's members. Every call has a deadline; a member that does not
// answer (UNAVAILABLE, DEADLINE_EXCEEDED) is left for the next one, in the
// configured order, and the one that answered is used first from then on.
// A call that fails on every member returns the last member's error. A
// write that timed out may still have happened: the caller settles that
// (the store reads back what it wrote). Thread-safe.
#ifndef GWMIRROR_COORDINATOR_ETCD_CLIENT_H_
#define GWMIRROR_COORDINATOR_ETCD_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcd/rpc.grpc.pb.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

class EtcdClient {
 public:
  // Checks the config (endpoints and TLS material present) and makes a
  // channel per member; nothing is dialled until the first call.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(
      const gwmirror::v1::EtcdStore& config);

  absl::StatusOr<etcdserverpb::RangeResponse> Range(
      const etcdserverpb::RangeRequest& req);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(
      const etcdserverpb::TxnRequest& req);
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> LeaseGrant(int64_t ttl_s);
  absl::Status LeaseRevoke(int64_t lease);
  // Renews `lease` once: the seconds it has left from now (0: it expired).
  absl::StatusOr<int64_t> LeaseKeepAlive(int64_t lease);
  // Each member's status, or why it did not answer within `timeout` (0:
  // the call timeout), in configured order.
  std::vector<absl::StatusOr<etcdserverpb::StatusResponse>> MemberStatus(
      absl::Duration timeout = absl::ZeroDuration());
  const std::string& endpoint(size_t i) const { return members_[i].endpoint; }

  // Every call's deadline (default 5 s).
  void set_call_timeout(absl::Duration d) { call_timeout_ = d; }

 private:
  struct Member {
    std::string endpoint;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  };
  EtcdClient() = default;
  // Runs `call(member, ctx)` on the member last found answering, then on
  // the others in order while they do not answer; those that answer that
  // the cluster is electing a leader are asked again for a while.
  template <typename Call>
  absl::Status OnSomeMember(absl::string_view what, Call call);

  std::vector<Member> members_;
  std::atomic<size_t> current_{0};
  absl::Duration call_timeout_ = absl::Seconds(5);
};

// The config's own problems (no endpoint, one not host:port, TLS files
// missing, a lease under 2 s), as INVALID_ARGUMENT naming the key.
absl::Status ValidateEtcdStore(const gwmirror::v1::EtcdStore& config);

// The key just after every key that starts with `prefix` (etcd's range_end
// for a prefix scan).
std::string EtcdPrefixEnd(std::string prefix);

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_ETCD_CLIENT_H_
