#include "coordinator/state_store.h"

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"
#include "coordinator/etcd_state_store.h"
#include "coordinator/sqlite_state_store.h"

namespace gwmirror {

absl::Status ValidateContents(const StateStore::Contents& contents) {
  if (contents.meta.epoch() == 0 || contents.meta.active_site().empty()) {
    return absl::InvalidArgumentError(
        "the state to import has no epoch or no active site");
  }
  uint64_t last = 0;
  for (const gwmirror::v1::StoredCheckpoint& c : contents.checkpoints) {
    const gwmirror::v1::CheckpointInfo& i = c.info();
    if (i.id() <= last) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", i.id(), " comes after ", last, ": ids must grow"));
    }
    last = i.id();
    switch (i.state()) {
      case gwmirror::v1::CHECKPOINT_STATE_CUT:
      case gwmirror::v1::CHECKPOINT_STATE_CONSISTENT:
      case gwmirror::v1::CHECKPOINT_STATE_APPLIED:
      case gwmirror::v1::CHECKPOINT_STATE_ABORTED:
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint ", i.id(), " is in state \"", StateName(i.state()),
            "\", which a store never records"));
    }
    for (const std::string& slot : c.applied_slots()) {
      if (!i.digests().contains(slot)) {
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint ", i.id(), ": slot ", slot,
                         " applied it but has no digest"));
      }
    }
  }
  last = 0;
  for (const auto& [id, report] : contents.drills) {
    if (id <= last) {
      return absl::InvalidArgumentError(
          absl::StrCat("drill ", id, " comes after ", last, ": ids must grow"));
    }
    last = id;
  }
  return absl::OkStatus();
}

std::vector<std::pair<uint64_t, uint64_t>> ForgettableRanges(
    uint64_t below, const std::set<uint64_t>& kept) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t from = 1;
  for (uint64_t k : kept) {
    if (k >= below) break;
    if (k > from) out.emplace_back(from, k);
    from = k + 1;
  }
  if (below > from) out.emplace_back(from, below);
  return out;
}

absl::StatusOr<gwmirror::v1::CheckpointInfo> StateStore::Newest(
    bool committed_only) const {
  ASSIGN_OR_RETURN(std::vector<gwmirror::v1::CheckpointInfo> last,
                   List(1, committed_only));
  if (last.empty()) return absl::NotFoundError("no checkpoint yet");
  last.front().clear_digests();
  return std::move(last.front());
}

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(
    const gwmirror::v1::CoordinatorConfig& config) {
  if (config.has_etcd()) {
    ASSIGN_OR_RETURN(auto store,
                     EtcdStateStore::Open(config.etcd(),
                                          EtcdStateStore::OptionsFor(config)));
    return std::unique_ptr<StateStore>(std::move(store));
  }
  RETURN_IF_ERROR(MakeDirs(config.state_dir(), 0700));
  ASSIGN_OR_RETURN(auto store,
                   SqliteStateStore::Open(config.state_dir() + "/state.db",
                                          config.initial_active_site()));
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace gwmirror
