// The coordinator's durable state in an etcd cluster (v3 API), for
// coordinators that must outlive their machine and site: any number of
// them share one cluster, and the one holding the leader key acts.
//
// Keys, under the configured prefix P (docs/ARCHITECTURE.md, "Coordinator
// state on etcd"):
//   P leader                     this leader's name, attached to its lease
//   P coordinators/<name>        gwmirror.v1.CoordinatorPeer: every
//                                coordinator sharing the prefix, leading or
//                                following, attached to its own lease
//   P meta                       gwmirror.v1.StoredMeta: epoch, active and
//                                fenced sites, pins, last ids, counts,
//                                unfinished checkpoints
//   P checkpoints/<20 digits>    gwmirror.v1.StoredCheckpoint
//   P drills/<20 digits>         gwmirror.v1.DrillReport (id 0: unfinished)
//
// Leadership and fencing: Connect grants a lease (lease_ttl_s), keeps it
// alive from a thread of its own and registers the process under
// P coordinators/; Campaign creates P leader with that lease once no one
// holds it (waiting while someone does). Until then the store only reads
// (a follower answering status); every write is refused. The fencing token is
// the leader key's create revision: every write is one etcd transaction that
// succeeds only if P leader still has that create revision and P meta the
// mod revision this store last saw, and that rewrites P meta with the
// records it changes. A deposed leader (its lease expired: the key is
// gone or another leader's) can therefore never record a commit point,
// raise an epoch or take an id, whatever it believes. Once the lease is
// lost the store stops: Lead() says so and every write is refused; the
// process is expected to exit and campaign again (gwmirror-coordinator
// does).
//
// A write whose answer was lost (a member died under it) is settled by
// reading P meta back: the bytes it wrote there mean it happened.
#ifndef GWMIRROR_COORDINATOR_ETCD_STATE_STORE_H_
#define GWMIRROR_COORDINATOR_ETCD_STATE_STORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/etcd_client.h"
#include "coordinator/state_store.h"
#include "gwmirror/v1/state.pb.h"

namespace gwmirror {

class EtcdStateStore : public StateStore {
 public:
  struct Options {
    // The leader key's value (default: the config's name).
    std::string name;
    // Where this coordinator listens, as other coordinators and operators
    // see it in P coordinators/<name>.
    std::string address;
    // On a first use of the prefix: the active site at epoch 1.
    std::string active_site;
    // How long Open waits for another holder's lead to end.
    absl::Duration wait_for_lead = absl::InfiniteDuration();
    // Asked while Connect waits for etcd to answer: true gives up
    // (CANCELLED); a daemon says whether it was told to stop.
    std::function<bool()> stopped;
  };
  // A coordinator's options from its config: its name (etcd.name, else
  // its listen address), address and initial active site.
  static Options OptionsFor(const gwmirror::v1::CoordinatorConfig& config);
  // Connect, then Campaign for as long as options.wait_for_lead.
  static absl::StatusOr<std::unique_ptr<EtcdStateStore>> Open(
      const gwmirror::v1::EtcdStore& config, Options options);
  // A lease (waiting for etcd to answer) and this process registered as
  // following; it does not lead yet.
  static absl::StatusOr<std::unique_ptr<EtcdStateStore>> Connect(
      const gwmirror::v1::EtcdStore& config, Options options);
  // Waits up to `wait` for the lead (forever by default), takes it, and
  // loads (or, on a new prefix, creates) the state. Returns early, with
  // CANCELLED, once StopCampaign is called.
  absl::Status Campaign(absl::Duration wait) ABSL_LOCKS_EXCLUDED(mu_);
  void StopCampaign() ABSL_LOCKS_EXCLUDED(mu_);
  // Where this coordinator listens, once it knows (a port chosen at bind):
  // P coordinators/<name> says so from now on.
  absl::Status SetAddress(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  // A follower's view: reads P meta again (Epoch, ActiveSite, ... and the
  // reads then answer from it), without leading.
  absl::Status Refresh() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops renewing and revokes the lease: a successor leads at once.
  ~EtcdStateStore() override;

  // StateStore:
  absl::Status Lead() const override ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t Epoch() const override ABSL_LOCKS_EXCLUDED(mu_);
  std::string ActiveSite() const override ABSL_LOCKS_EXCLUDED(mu_);
  std::string FencedSite() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> SwitchActive(const std::string& site) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AdoptActive(uint64_t epoch, const std::string& site) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Recover(const Recovered& r) override ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<uint64_t> Pins() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Pin(uint64_t id, bool pin) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> BeginCut(uint64_t epoch, int64_t now_ms) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordConsistent(
      uint64_t id, const std::map<std::string, std::string>& digests,
      int64_t now_ms) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordApplied(uint64_t id, const std::vector<std::string>& slots,
                             int64_t now_ms) override ABSL_LOCKS_EXCLUDED(mu_);
  using StateStore::RecordApplied;
  absl::Status RecordAborted(uint64_t id, const std::string& reason) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<gwmirror::v1::CheckpointInfo> Get(uint64_t id) const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> List(
      size_t limit, bool committed_only) const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> Unfinished()
      const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> BeginDrill(int64_t now_ms) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecordDrill(const gwmirror::v1::DrillReport& report) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<gwmirror::v1::DrillReport>> ListDrills(
      size_t limit) const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::map<std::string, uint64_t>> CountByState() const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> Forget(uint64_t below,
                                  const std::set<uint64_t>& keep) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<std::string>> UnappliedSlots(
      uint64_t id) const override ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<gwmirror::v1::CoordinatorPeer> Coordinators() const override;
  std::vector<gwmirror::v1::EtcdMemberHealth> StoreHealth() const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Contents> Export() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Import(const Contents& contents) override
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& name() const { return name_; }
  // The fencing token this store writes under: the leader key's create
  // revision.
  int64_t FencingToken() const { return leader_revision_; }

 private:
  EtcdStateStore(std::unique_ptr<EtcdClient> client, std::string prefix,
                 Options options, int64_t ttl_s);
  // P coordinators/<name> says this process is in `state` now.
  absl::Status Announce(const std::string& state, int64_t fencing_token)
      ABSL_LOCKS_EXCLUDED(mu_);
  void WatchMembers();
  // Creates P meta at epoch 1 when the prefix is new; loads it.
  absl::Status LoadMeta(const std::string& active_site)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KeepAlive();
  std::string CheckpointKey(uint64_t id) const;
  std::string DrillKey(uint64_t id) const;
  absl::StatusOr<gwmirror::v1::StoredCheckpoint> LoadCheckpoint(
      uint64_t id) const;
  // One fenced transaction: P meta becomes `next`, each (key, value) is
  // put and each [key, range end) deleted, all or nothing. `deleted`, when
  // given, receives how many keys went (when the answer came back).
  absl::Status Write(
      const gwmirror::v1::StoredMeta& next,
      const std::vector<std::pair<std::string, std::string>>& puts,
      const std::vector<std::pair<std::string, std::string>>& deletes = {},
      uint64_t* deleted = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LeadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<EtcdClient> client_;
  const std::string prefix_;
  const Options options_;
  const std::string& name_ = options_.name;
  const int64_t ttl_s_;
  int64_t lease_ = 0;
  // Set once, when Campaign takes the lead (0 before: nothing is written).
  std::atomic<int64_t> leader_revision_{0};

  mutable absl::Mutex mu_;
  gwmirror::v1::StoredMeta meta_ ABSL_GUARDED_BY(mu_);
  int64_t meta_revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the lead is lost ("" while held); until when the last renewal
  // keeps it.
  mutable std::string lost_ ABSL_GUARDED_BY(mu_);
  absl::Time lease_valid_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_campaign_ ABSL_GUARDED_BY(mu_) = false;
  std::string address_ ABSL_GUARDED_BY(mu_) = options_.address;
  // The members' health as last polled (every 5 s, all members at once
  // with a 2 s deadline, by a thread of its own: a member that does not
  // answer costs that thread its deadline, never a status call).
  std::vector<gwmirror::v1::EtcdMemberHealth> health_ ABSL_GUARDED_BY(mu_);
  std::thread keepalive_, member_watch_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_ETCD_STATE_STORE_H_
