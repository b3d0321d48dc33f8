// The etcd cluster of `gwmirror sandbox up --etcd N`, and of the tests
// that start etcd themselves: Debian's etcd-server (/usr/bin/etcd) on
// loopback, or with --wan on the sites' addresses in their network
// namespaces, mutual TLS with certificates from the sandbox CA (peers and
// clients alike), throwaway data directories, elections in about a second.
#ifndef GWMIRROR_CLI_SANDBOX_ETCD_H_
#define GWMIRROR_CLI_SANDBOX_ETCD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

inline constexpr char kEtcdBinary[] = "/usr/bin/etcd";

struct EtcdMember {
  std::string name;      // "etcd-1"
  std::string data_dir;  // its own, created by etcd
  int client_port = 0, peer_port = 0;
  // Where it listens, and the network namespace it runs in ("": the
  // machine's own).
  std::string host = "127.0.0.1";
  std::string netns;
};

// Which site each of `count` members of a sandbox's cluster stands on
// with --wan: one per site and one on the witness (with five: two per
// site); a single member on `coordinator_site`.
std::vector<std::string> EtcdMemberSites(int count,
                                         const std::string& coordinator_site);

// `count` members named etcd-1.. under `dir`, each with two free loopback
// ports; FAILED_PRECONDITION when etcd is not installed.
absl::StatusOr<std::vector<EtcdMember>> PlanEtcdCluster(const std::string& dir,
                                                        int count);

// The command line of member `m` of `cluster`: `fresh` for its first start
// (a new cluster), else joining its data directory's existing one. `tls`
// is both its server and its peer certificate.
std::vector<std::string> EtcdMemberArgv(const EtcdMember& m,
                                        const std::vector<EtcdMember>& cluster,
                                        bool fresh,
                                        const gwmirror::v1::TlsConfig& tls);

// The coordinator's "etcd" config section for `cluster`.
gwmirror::v1::EtcdStore EtcdStoreFor(const std::vector<EtcdMember>& cluster,
                                     const gwmirror::v1::TlsConfig& client_tls);

}  // namespace gwmirror

#endif  // GWMIRROR_CLI_SANDBOX_ETCD_H_
