// Real etcd servers for tests, started as the sandbox starts them
// (cli/sandbox_etcd.h), with a CA made for them. Members can be killed,
// stopped (SIGSTOP) and started again. Everything ends with the object.
#ifndef GWMIRROR_TESTS_COORDINATOR_ETCD_CLUSTER_H_
#define GWMIRROR_TESTS_COORDINATOR_ETCD_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/sandbox_etcd.h"
#include "coordinator/etcd_client.h"
#include "gwmirror/v1/config.pb.h"
#include "tests/node/test_util.h"

namespace gwmirror::testing {

class EtcdCluster {
 public:
  // Starts `members` members under `dir` and waits (20 s at most) until
  // each answers.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(
      const std::string& dir, int members);

  // What a coordinator's config says to use this cluster (a client
  // certificate of its own named `client`).
  gwmirror::v1::EtcdStore StoreConfig(const std::string& prefix,
                                      const std::string& client = "coord");
  // SIGKILL / SIGSTOP / SIGCONT member i; Restart starts a killed member
  // again on its data directory.
  void Kill(int i);
  void Stop(int i);
  void Continue(int i);
  absl::Status Restart(int i);

  // Direct access, as an operator's etcdctl would have: put a key; revoke
  // the lease a key is attached to (its holder is deposed at once).
  absl::Status Put(const std::string& key, const std::string& value);
  absl::Status RevokeLeaseOf(const std::string& key);
  // A client of the whole cluster (prefix "/").
  absl::StatusOr<std::unique_ptr<EtcdClient>> Client();

 private:
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> StartOnce(
      const std::string& dir, int members);
  absl::Status WaitAnswering(int i);

  std::string dir_, ca_dir_;
  gwmirror::v1::TlsConfig server_tls_;
  std::vector<EtcdMember> members_;
  std::vector<std::unique_ptr<Child>> processes_;
};

}  // namespace gwmirror::testing

#endif  // GWMIRROR_TESTS_COORDINATOR_ETCD_CLUSTER_H_
