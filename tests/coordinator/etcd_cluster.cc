#include "tests/coordinator/etcd_cluster.h"

#include <signal.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/etcd_client.h"

namespace gwmirror::testing {

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(
    const std::string& dir, int members) {
  // A port picked free can be taken by another process before etcd binds
  // it (tests run side by side): a cluster that does not come up is tried
  // once more, on new ports and directories.
  absl::StatusOr<std::unique_ptr<EtcdCluster>> c = StartOnce(dir, members);
  if (!c.ok()) {
    std::fprintf(stderr, "etcd cluster did not start (%s); trying again\n",
                 std::string(c.status().message()).c_str());
    c = StartOnce(dir + "/again", members);
  }
  return c;
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::StartOnce(
    const std::string& dir, int members) {
  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->dir_ = dir;
  c->ca_dir_ = dir + "/ca";
  RETURN_IF_ERROR(MakeDirs(c->ca_dir_, 0700));
  RETURN_IF_ERROR(CreateCa(c->ca_dir_, "etcd-test-ca"));
  ASSIGN_OR_RETURN(c->server_tls_,
                   IssueCertificate(c->ca_dir_, "etcd", dir + "/certs"));
  ASSIGN_OR_RETURN(c->members_, PlanEtcdCluster(dir, members));
  for (const EtcdMember& m : c->members_) {
    c->processes_.push_back(std::make_unique<Child>(
        EtcdMemberArgv(m, c->members_, /*fresh=*/true, c->server_tls_),
        std::map<std::string, std::string>{}, m.data_dir + ".log"));
  }
  for (int i = 0; i < members; ++i) RETURN_IF_ERROR(c->WaitAnswering(i));
  return c;
}

absl::Status EtcdCluster::WaitAnswering(int i) {
  gwmirror::v1::EtcdStore one = StoreConfig("/");
  one.clear_endpoints();
  one.add_endpoints(absl::StrCat("127.0.0.1:", members_[i].client_port));
  ASSIGN_OR_RETURN(auto client, EtcdClient::Connect(one));
  client->set_call_timeout(absl::Seconds(1));
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  absl::Status last;
  while (absl::Now() < give_up) {
    auto status = client->MemberStatus();
    if (status[0].ok() && status[0]->leader() != 0) return absl::OkStatus();
    last = status[0].status();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      members_[i].name, " did not answer in 20 s (", last.message(),
      "); its log: ", members_[i].data_dir, ".log"));
}

gwmirror::v1::EtcdStore EtcdCluster::StoreConfig(const std::string& prefix,
                                                 const std::string& client) {
  gwmirror::v1::TlsConfig tls;
  if (auto issued = IssueCertificate(ca_dir_, client, dir_ + "/certs");
      issued.ok()) {
    tls = *issued;
  }
  gwmirror::v1::EtcdStore s = EtcdStoreFor(members_, tls);
  s.set_prefix(prefix);
  return s;
}

void EtcdCluster::Kill(int i) { processes_[i].reset(); }

void EtcdCluster::Stop(int i) { processes_[i]->Kill(SIGSTOP); }

void EtcdCluster::Continue(int i) { processes_[i]->Kill(SIGCONT); }

absl::Status EtcdCluster::Restart(int i) {
  processes_[i].reset();
  processes_[i] = std::make_unique<Child>(
      EtcdMemberArgv(members_[i], members_, /*fresh=*/false, server_tls_),
      std::map<std::string, std::string>{}, members_[i].data_dir + ".log");
  return WaitAnswering(i);
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdCluster::Client() {
  return EtcdClient::Connect(StoreConfig("/", "etcdctl"));
}

absl::Status EtcdCluster::Put(const std::string& key,
                              const std::string& value) {
  ASSIGN_OR_RETURN(auto client, Client());
  etcdserverpb::TxnRequest req;
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  return client->Txn(req).status();
}

absl::Status EtcdCluster::RevokeLeaseOf(const std::string& key) {
  ASSIGN_OR_RETURN(auto client, Client());
  etcdserverpb::RangeRequest r;
  r.set_key(key);
  ASSIGN_OR_RETURN(auto resp, client->Range(r));
  if (resp.kvs_size() == 0 || resp.kvs(0).lease() == 0) {
    return absl::NotFoundError(absl::StrCat(key, " has no lease"));
  }
  return client->LeaseRevoke(resp.kvs(0).lease());
}

}  // namespace gwmirror::testing
