// A node's side of cluster membership: registers with the coordinator
// (site, slot, address, what it serves, its topology report) and heartbeats
// with a fresh report, re-registering whenever the coordinator no longer
// knows it (a coordinator restart) or the epoch moved on. Learns the
// current epoch from Register. One background thread.
#ifndef GWMIRROR_NODE_MEMBERSHIP_H_
#define GWMIRROR_NODE_MEMBERSHIP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/epoch.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"

namespace gwmirror {

class Membership {
 public:
  Membership(gwmirror::v1::NodeConfig config, std::string address,
             EpochFile* epoch);
  ~Membership();  // Stops the thread.
  absl::Status Start();

 private:
  void Run();
  absl::Status Register();
  absl::Status Heartbeat();

  const gwmirror::v1::NodeConfig config_;
  const std::string address_;
  EpochFile* const epoch_;
  std::unique_ptr<gwmirror::v1::Coordinator::Stub> stub_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_MEMBERSHIP_H_
