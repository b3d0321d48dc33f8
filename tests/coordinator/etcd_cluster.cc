#include "tests/coordinator/etcd_cluster.h"

#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/etcd_client.h"

namespace gwmirror::testing {

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(
    const std::string& dir, int members) {
  if (access("/usr/bin/etcd", X_OK) != 0) {
    return absl::FailedPreconditionError(
        "/usr/bin/etcd is missing: install etcd-server (scripts/setup.sh "
        "does)");
  }
  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->dir_ = dir;
  c->ca_dir_ = dir + "/ca";
  RETURN_IF_ERROR(MakeDirs(c->ca_dir_, 0700));
  RETURN_IF_ERROR(CreateCa(c->ca_dir_, "etcd-test-ca"));
  ASSIGN_OR_RETURN(c->server_tls_,
                   IssueCertificate(c->ca_dir_, "etcd", dir + "/certs"));
  std::vector<std::string> peers;
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = absl::StrCat("etcd-", i + 1);
    m.data_dir = absl::StrCat(dir, "/", m.name);
    m.log = absl::StrCat(dir, "/", m.name, ".log");
    ASSIGN_OR_RETURN(m.client_port, FreeLoopbackPort());
    ASSIGN_OR_RETURN(m.peer_port, FreeLoopbackPort());
    peers.push_back(absl::StrCat(m.name, "=https://127.0.0.1:", m.peer_port));
    c->members_.push_back(std::move(m));
  }
  c->initial_cluster_ = absl::StrJoin(peers, ",");
  for (Member& m : c->members_) {
    m.process =
        std::make_unique<Child>(c->Argv(m, /*fresh=*/true),
                                std::map<std::string, std::string>{}, m.log);
  }
  for (int i = 0; i < members; ++i) RETURN_IF_ERROR(c->WaitAnswering(i));
  return c;
}

std::vector<std::string> EtcdCluster::Argv(const Member& m, bool fresh) const {
  const std::string client = absl::StrCat("https://127.0.0.1:", m.client_port);
  const std::string peer = absl::StrCat("https://127.0.0.1:", m.peer_port);
  return {"/usr/bin/etcd", "--name", m.name, "--data-dir", m.data_dir,
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", initial_cluster_, "--initial-cluster-state",
          fresh ? "new" : "existing", "--initial-cluster-token",
          "gwmirror-test", "--client-cert-auth", "--trusted-ca-file",
          server_tls_.ca_file(), "--cert-file", server_tls_.cert_file(),
          "--key-file", server_tls_.key_file(), "--peer-client-cert-auth",
          "--peer-trusted-ca-file", server_tls_.ca_file(), "--peer-cert-file",
          server_tls_.cert_file(), "--peer-key-file", server_tls_.key_file(),
          // Elections in about a second, not the default's several.
          "--heartbeat-interval", "100", "--election-timeout", "1000",
          "--logger", "zap", "--log-level", "warn"};
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
  return absl::DeadlineExceededError(
      absl::StrCat(members_[i].name, " did not answer in 20 s (",
                   last.message(), "); its log: ", members_[i].log));
}

gwmirror::v1::EtcdStore EtcdCluster::StoreConfig(const std::string& prefix,
                                                 const std::string& client) {
  gwmirror::v1::EtcdStore s;
  for (const Member& m : members_) {
    s.add_endpoints(absl::StrCat("127.0.0.1:", m.client_port));
  }
  s.set_prefix(prefix);
  auto tls = IssueCertificate(ca_dir_, client, dir_ + "/certs");
  if (tls.ok()) *s.mutable_tls() = *tls;
  return s;
}

void EtcdCluster::Kill(int i) { members_[i].process.reset(); }

void EtcdCluster::Stop(int i) { members_[i].process->Kill(SIGSTOP); }

void EtcdCluster::Continue(int i) { members_[i].process->Kill(SIGCONT); }

absl::Status EtcdCluster::Restart(int i) {
  Member& m = members_[i];
  m.process.reset();
  m.process = std::make_unique<Child>(
      Argv(m, /*fresh=*/false), std::map<std::string, std::string>{}, m.log);
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
