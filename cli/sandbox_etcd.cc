#include "cli/sandbox_etcd.h"

#include <unistd.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {

absl::StatusOr<std::vector<EtcdMember>> PlanEtcdCluster(const std::string& dir,
                                                        int count) {
  if (access(kEtcdBinary, X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kEtcdBinary,
                     " is missing: install etcd-server "
                     "(scripts/setup.sh does)"));
  }
  std::vector<EtcdMember> out;
  // Two calls may pick the same port once the first is closed again: every
  // port of the cluster is distinct.
  std::set<int> taken;
  auto pick = [&taken]() -> absl::StatusOr<int> {
    for (;;) {
      ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
      if (taken.insert(port).second) return port;
    }
  };
  for (int i = 1; i <= count; ++i) {
    EtcdMember m;
    m.name = absl::StrCat("etcd-", i);
    m.data_dir = absl::StrCat(dir, "/", m.name);
    ASSIGN_OR_RETURN(m.client_port, pick());
    ASSIGN_OR_RETURN(m.peer_port, pick());
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> EtcdMemberSites(int count,
                                         const std::string& coordinator_site) {
  if (count == 1) return {coordinator_site};
  if (count == 3) return {"production", "standby", "witness"};
  return {"production", "production", "standby", "standby", "witness"};
}

std::vector<std::string> EtcdMemberArgv(const EtcdMember& m,
                                        const std::vector<EtcdMember>& cluster,
                                        bool fresh,
                                        const gwmirror::v1::TlsConfig& tls) {
  std::vector<std::string> peers;
  for (const EtcdMember& p : cluster) {
    peers.push_back(
        absl::StrCat(p.name, "=https://", p.host, ":", p.peer_port));
  }
  const std::string client =
      absl::StrCat("https://", m.host, ":", m.client_port);
  const std::string peer = absl::StrCat("https://", m.host, ":", m.peer_port);
  return {kEtcdBinary, "--name", m.name, "--data-dir", m.data_dir,
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", absl::StrJoin(peers, ","),
          "--initial-cluster-state", fresh ? "new" : "existing",
          "--initial-cluster-token", "gwmirror-sandbox", "--client-cert-auth",
          "--trusted-ca-file", tls.ca_file(), "--cert-file", tls.cert_file(),
          "--key-file", tls.key_file(), "--peer-client-cert-auth",
          "--peer-trusted-ca-file", tls.ca_file(), "--peer-cert-file",
          tls.cert_file(), "--peer-key-file", tls.key_file(),
          // Elections in about a second, not the default's several.
          "--heartbeat-interval", "100", "--election-timeout", "1000",
          // Old revisions go, so the history a checkpoint a second writes
          // does not grow without end.
          "--auto-compaction-mode", "revision", "--auto-compaction-retention",
          "1000", "--logger", "zap", "--log-level", "warn"};
}

gwmirror::v1::EtcdStore EtcdStoreFor(
    const std::vector<EtcdMember>& cluster,
    const gwmirror::v1::TlsConfig& client_tls) {
  gwmirror::v1::EtcdStore s;
  for (const EtcdMember& m : cluster) {
    s.add_endpoints(absl::StrCat(m.host, ":", m.client_port));
  }
  s.set_prefix("/gwmirror/");
  *s.mutable_tls() = client_tls;
  return s;
}

}  // namespace gwmirror
