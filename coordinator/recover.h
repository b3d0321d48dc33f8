// `gwmirror-coordinator recover`: rebuilds a lost coordinator state from
// what the nodes hold, so the cluster goes on where it was rather than
// from epoch 1 and checkpoint 1 (which every node would refuse).
#ifndef GWMIRROR_COORDINATOR_RECOVER_H_
#define GWMIRROR_COORDINATOR_RECOVER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/state_store.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// Asks every member (each named once in `nodes` as identity and address)
// for its epoch, committed checkpoint and its history's pins (a node that
// was a replica before a promote keeps its history), then writes them into the
// state at `config.state_dir()`. `active_site` is the operator's word on which
// site serves now (it must be the initial one while every node is at epoch 1).
// One line per finding in `report`.
absl::StatusOr<StateStore::Recovered> RecoverState(
    const gwmirror::v1::CoordinatorConfig& config,
    const std::string& active_site,
    const std::vector<std::pair<std::string, std::string>>& nodes,
    std::vector<std::string>* report);

// `gwmirror-coordinator migrate`: copies the whole state (epoch, sites,
// pins, every checkpoint with its digests and applied slots, every drill)
// from the store `from` names into the empty one `to` names (SQLite to
// etcd, or back), then reads it back and compares. Every coordinator must
// be stopped: a SQLite state in use is refused (its lock), and so is an
// etcd state whose lead another coordinator holds (after 30 s). One line
// per step in `report`.
absl::Status MigrateState(const gwmirror::v1::CoordinatorConfig& from,
                          const gwmirror::v1::CoordinatorConfig& to,
                          std::vector<std::string>* report);

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_RECOVER_H_
