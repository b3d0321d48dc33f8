// The coordinator's durable state, behind one interface with two
// implementations: SQLite on the coordinator's own disk (the default,
// coordinator/sqlite_state_store.h) and an etcd cluster shared by several
// coordinators, one of which leads (coordinator/etcd_state_store.h). Both
// keep the same promises, and tests/coordinator/state_store_test.cc holds
// each to them:
//   - checkpoint ids only grow (the highest ever recorded + 1, aborted ones
//     included), so no id is ever used twice;
//   - a checkpoint becomes consistent only from "cut" (the commit point,
//     with its per-slot digests, in one transaction), so it cannot be
//     committed twice, nor after it was aborted; nothing deletes a
//     consistent one;
//   - a call that returned OK is durable; one that failed changed nothing.
#ifndef GWMIRROR_COORDINATOR_STATE_STORE_H_
#define GWMIRROR_COORDINATOR_STATE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"
#include "gwmirror/v1/state.pb.h"

namespace gwmirror {

class StateStore {
 public:
  virtual ~StateStore() = default;

  // OK while this process may act on the state; once not (an etcd leader
  // whose lease expired), why, and every write is refused.
  virtual absl::Status Lead() const { return absl::OkStatus(); }

  virtual uint64_t Epoch() const = 0;
  virtual std::string ActiveSite() const = 0;
  // The site a promote took the active role from ("" until one did).
  virtual std::string FencedSite() const = 0;
  // Promote: in one transaction, the epoch goes up by one, `site` becomes
  // active and the former active site fenced. The new epoch.
  virtual absl::StatusOr<uint64_t> SwitchActive(const std::string& site) = 0;

  // A forced promote (without the coordinator) made `site` active at
  // `epoch`, higher than ours: adopt both; the former active site is fenced.
  virtual absl::Status AdoptActive(uint64_t epoch, const std::string& site) = 0;

  // Rebuilds a lost state from what the nodes hold (`gwmirror-coordinator
  // recover`): the epoch, the active and fenced sites, the newest committed
  // checkpoint (recorded as applied, so new ids follow it and the RPO
  // counts from its cut) and the pins. Only into a store that has recorded
  // no checkpoint yet.
  struct Recovered {
    uint64_t epoch = 1;
    std::string active_site, fenced_site;
    uint64_t checkpoint = 0;
    int64_t cut_ms = 0;
    std::vector<uint64_t> pins;
  };
  virtual absl::Status Recover(const Recovered& r) = 0;

  // Checkpoints the operators pinned (retention on the replicas keeps
  // them); Pin adds or removes one.
  virtual std::vector<uint64_t> Pins() const = 0;
  virtual absl::Status Pin(uint64_t id, bool pin) = 0;

  // Records "cut N" with the next id; returns N.
  virtual absl::StatusOr<uint64_t> BeginCut(uint64_t epoch, int64_t now_ms) = 0;
  // The commit point: N (which must be "cut") becomes consistent with these
  // per-slot digests (raw bytes).
  virtual absl::Status RecordConsistent(
      uint64_t id, const std::map<std::string, std::string>& digests,
      int64_t now_ms) = 0;
  // `slots` applied consistent N, in one transaction; N becomes "applied"
  // with its last slot.
  virtual absl::Status RecordApplied(uint64_t id,
                                     const std::vector<std::string>& slots,
                                     int64_t now_ms) = 0;
  absl::Status RecordApplied(uint64_t id, const std::string& slot,
                             int64_t now_ms) {
    return RecordApplied(id, std::vector<std::string>{slot}, now_ms);
  }
  // N (which must be "cut") is aborted for `reason`.
  virtual absl::Status RecordAborted(uint64_t id,
                                     const std::string& reason) = 0;

  virtual absl::StatusOr<gwmirror::v1::CheckpointInfo> Get(
      uint64_t id) const = 0;
  // Newest first; `committed_only`: consistent and applied ones.
  virtual absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> List(
      size_t limit, bool committed_only) const = 0;
  // The newest checkpoint (`committed_only`: consistent or applied), its
  // per-slot digests left out; NOT_FOUND when there is none.
  virtual absl::StatusOr<gwmirror::v1::CheckpointInfo> Newest(
      bool committed_only) const;
  // Checkpoints in state "cut" or "consistent" (unfinished), oldest first.
  virtual absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> Unfinished()
      const = 0;
  // Drills: an id for one starting now, its report once done, the history.
  virtual absl::StatusOr<uint64_t> BeginDrill(int64_t now_ms) = 0;
  virtual absl::Status RecordDrill(const gwmirror::v1::DrillReport& report) = 0;
  virtual absl::StatusOr<std::vector<gwmirror::v1::DrillReport>> ListDrills(
      size_t limit) const = 0;
  // How many checkpoints are in each state ("cut", "consistent", "applied",
  // "aborted"), forgotten records included.
  virtual absl::StatusOr<std::map<std::string, uint64_t>> CountByState()
      const = 0;
  // Forgets the records of finished (applied or aborted) checkpoints with
  // ids below `below`, except those in `keep` and pinned ones (neither an
  // unfinished one nor the newest is ever forgotten); CountByState still
  // counts them, and ids are never reused. Returns how many it forgot.
  virtual absl::StatusOr<uint64_t> Forget(uint64_t below,
                                          const std::set<uint64_t>& keep) = 0;
  // Slots that have not applied consistent checkpoint `id`.
  virtual absl::StatusOr<std::vector<std::string>> UnappliedSlots(
      uint64_t id) const = 0;

  // Every coordinator sharing this store, the leader first, and the
  // health of the store's own servers; both empty for a store that one
  // process keeps alone (SQLite).
  virtual std::vector<gwmirror::v1::CoordinatorPeer> Coordinators() const {
    return {};
  }
  virtual std::vector<gwmirror::v1::EtcdMemberHealth> StoreHealth() const {
    return {};
  }

  // Everything a store records, for `gwmirror-coordinator migrate` from
  // one store to the other.
  struct Contents {
    // Epoch, active and fenced sites, pins, the last checkpoint and drill
    // ids (the counts and unfinished ids follow from the records).
    gwmirror::v1::StoredMeta meta;
    // Every checkpoint with the slots that applied it, oldest first.
    std::vector<gwmirror::v1::StoredCheckpoint> checkpoints;
    // Every drill by id, oldest first; a report with id 0 is one that never
    // finished (only its start time is known).
    std::vector<std::pair<uint64_t, gwmirror::v1::DrillReport>> drills;
  };
  virtual absl::StatusOr<Contents> Export() const = 0;
  // Writes `contents` into a store that has recorded no checkpoint and no
  // drill yet (FAILED_PRECONDITION otherwise). All or nothing on SQLite;
  // on etcd the records go first and the state record last, so an
  // interrupted import leaves a state with no checkpoint, which a second
  // import overwrites.
  virtual absl::Status Import(const Contents& contents) = 0;
};

// Contents fit to import: an epoch and an active site, checkpoint and drill
// ids growing, each checkpoint in one of the four recorded states with the
// slots that applied it among its digests.
absl::Status ValidateContents(const StateStore::Contents& contents);

// The id ranges [from, to) that Forget(below, ...) may clear: every id
// from 1 up to `below`, less those in `kept`.
std::vector<std::pair<uint64_t, uint64_t>> ForgettableRanges(
    uint64_t below, const std::set<uint64_t>& kept);

// The store `config` names: etcd when it has an "etcd" section, else
// SQLite at <state_dir>/state.db. On creation either records epoch 1 with
// initial_active_site active.
absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(
    const gwmirror::v1::CoordinatorConfig& config);

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_STATE_STORE_H_
