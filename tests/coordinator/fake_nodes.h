// Simulated nodes for the coordinator's tests: each slot has a source and a
// replica that keep what a real one keeps for the checkpoint protocol
// (staged and committed checkpoint with their digests, the epoch), answer
// instantly (or after a set latency, for the scale simulation: a phase's
// calls to many nodes are in flight together, so they share one), and
// fail where a test tells them to. They run on the calling thread; the
// time spent in them (their latency and their own work, which real nodes
// do elsewhere, at once) is counted apart from the coordinator's.
// Thread-safe.
#ifndef GWMIRROR_TESTS_COORDINATOR_FAKE_NODES_H_
#define GWMIRROR_TESTS_COORDINATOR_FAKE_NODES_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/sha256.h"
#include "coordinator/coordinator.h"
#include "coordinator/node_client.h"

namespace gwmirror::testing {

class FakeNodes {
 public:
  struct Replica {
    uint64_t committed = 0;
    std::string committed_digest;
    uint64_t staged = 0;
    std::string staged_digest;
    std::vector<uint64_t> commits;  // Every commit that took effect.
    std::vector<uint64_t> aborts;
  };
  // What a test makes a node do. Counts of 0 mean "never".
  struct Faults {
    int fail_cuts = 0;         // The source's next cuts fail.
    int fail_commits = 0;      // The replica's next commits fail.
    bool unreachable = false;  // Every call fails UNAVAILABLE.
    bool stage_other = false;  // The replica stages another digest.
    std::string held;          // Cuts fail: a mass deletion is held.
    // The source's report: its topology and the deployment archive each
    // of its instances runs.
    gwmirror::v1::GatewayTopology topology;
    std::map<std::string, std::string> deployments;
    std::string installed_version;
    // The slot the source's cut report names ("": its own).
    std::string report_slot;
    // Checkpoints its history keeps; or it cannot list them; or it has no
    // replica store (so no history to list).
    std::vector<uint64_t> history;
    bool fail_history = false;
    bool no_replica_store = false;
  };

  // Digest a source freezes for checkpoint `id` of `slot`.
  static std::string DigestOf(const std::string& slot, uint64_t id) {
    return DigestBytes(Sha256Of(absl::StrCat(slot, ":", id)));
  }
  static std::string SlotOf(const std::string& identity) {
    return identity.substr(0, identity.find('-'));
  }

  Replica replica(const std::string& slot) {
    absl::MutexLock l(&mu_);
    return replicas_[slot];
  }
  void SetFaults(const std::string& identity, Faults f) {
    absl::MutexLock l(&mu_);
    faults_[identity] = std::move(f);
  }
  void set_latency(absl::Duration d) {
    absl::MutexLock l(&mu_);
    latency_ = d;
  }
  int calls() {
    absl::MutexLock l(&mu_);
    return calls_;
  }
  // Wall time spent inside node calls so far.
  absl::Duration time_inside() {
    absl::MutexLock l(&mu_);
    return inside_;
  }

  // The NodeClient the coordinator gets (many may share one FakeNodes).
  std::unique_ptr<NodeClient> Client() {
    return std::make_unique<ClientImpl>(this);
  }

 private:
  class ClientImpl final : public NodeClient {
   public:
    explicit ClientImpl(FakeNodes* f) : f_(f) {}
    // A phase's calls reach every node at once: one latency for all.
    std::vector<absl::StatusOr<gwmirror::v1::CutResult>> CutAll(
        uint64_t, uint64_t id, const std::vector<CutCall>& calls,
        absl::Time) override {
      Inside inside(f_);
      f_->Wait(calls.size());
      std::vector<absl::StatusOr<gwmirror::v1::CutResult>> out;
      for (const CutCall& c : calls) {
        out.push_back(
            f_->Cut(c.source, id, c.replica, c.release_mass_deletion));
      }
      return out;
    }
    std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> StateAll(
        const std::vector<NodeRef>& nodes, uint64_t epoch,
        absl::Duration) override {
      Inside inside(f_);
      f_->Wait(nodes.size());
      std::vector<absl::StatusOr<gwmirror::v1::ReplicaState>> out;
      for (const NodeRef& n : nodes) out.push_back(f_->State(n, epoch));
      return out;
    }
    std::vector<absl::Status> CommitAll(uint64_t, uint64_t id,
                                        const std::vector<CommitCall>& calls,
                                        const std::vector<uint64_t>&) override {
      Inside inside(f_);
      f_->Wait(calls.size());
      std::vector<absl::Status> out;
      for (const CommitCall& c : calls) {
        out.push_back(f_->Commit(c.replica, id, c.digest));
      }
      return out;
    }
    absl::StatusOr<gwmirror::v1::ReplicaState> State(const NodeRef& n,
                                                     uint64_t epoch,
                                                     absl::Duration) override {
      Inside inside(f_);
      f_->Wait(1);
      return f_->State(n, epoch);
    }
    absl::Status Abort(const NodeRef& n, uint64_t, uint64_t id) override {
      Inside inside(f_);
      f_->Wait(1);
      return f_->Abort(n, id);
    }
    absl::StatusOr<std::vector<std::string>> Activate(
        const NodeRef&, uint64_t, gwmirror::v1::ActivationPhase phase,
        uint64_t) override {
      return std::vector<std::string>{
          gwmirror::v1::ActivationPhase_Name(phase)};
    }
    absl::StatusOr<gwmirror::v1::DrillResult> Drill(
        const NodeRef&, uint64_t, uint64_t,
        const gwmirror::v1::StartDrillRequest&) override {
      return gwmirror::v1::DrillResult();
    }
    absl::StatusOr<gwmirror::v1::HistoryList> History(
        const NodeRef& n, uint64_t, const std::vector<uint64_t>*) override {
      absl::MutexLock l(&f_->mu_);
      const Faults& f = f_->FaultsOf(n.identity);
      if (f.unreachable || f.fail_history) {
        return absl::UnavailableError("node unreachable");
      }
      if (f.no_replica_store) {
        return absl::UnimplementedError("no Replica service here");
      }
      gwmirror::v1::HistoryList out;
      for (uint64_t id : f.history) out.add_points()->set_checkpoint(id);
      return out;
    }
    absl::StatusOr<gwmirror::v1::VerifyResult> Verify(const NodeRef&, uint64_t,
                                                      bool) override {
      return gwmirror::v1::VerifyResult();
    }

   private:
    // Counts the wall time of one node call (of many, for a phase).
    class Inside {
     public:
      explicit Inside(FakeNodes* f) : f_(f), start_(absl::Now()) {}
      ~Inside() {
        absl::Duration d = absl::Now() - start_;
        absl::MutexLock l(&f_->mu_);
        f_->inside_ += d;
      }

     private:
      FakeNodes* const f_;
      const absl::Time start_;
    };
    FakeNodes* const f_;
  };

  // `calls` calls made at once: each counted, one latency for all.
  void Wait(size_t calls) {
    absl::Duration d;
    {
      absl::MutexLock l(&mu_);
      calls_ += calls;
      d = latency_;
    }
    if (d > absl::ZeroDuration()) absl::SleepFor(d);
  }

  absl::StatusOr<gwmirror::v1::CutResult> Cut(const NodeRef& source,
                                              uint64_t id,
                                              const NodeRef& replica,
                                              bool release) {
    absl::MutexLock l(&mu_);
    Faults& f = FaultsOf(source.identity);
    if (f.unreachable) return absl::UnavailableError("source unreachable");
    if (!f.held.empty() && !release) {
      gwmirror::v1::CutResult held;
      held.set_checkpoint(id);
      held.set_held(f.held);
      return held;
    }
    if (f.fail_cuts > 0) {
      --f.fail_cuts;
      return absl::InternalError("the source's disk said no");
    }
    const std::string slot = SlotOf(source.identity);
    const std::string digest = DigestOf(slot, id);
    if (!FaultsOf(replica.identity).unreachable) {
      Replica& r = replicas_[slot];
      r.staged = id;
      r.staged_digest = FaultsOf(replica.identity).stage_other
                            ? DigestOf("someone else", id)
                            : digest;
    }
    gwmirror::v1::CutResult out;
    out.set_checkpoint(id);
    out.set_manifest_digest(digest);
    out.mutable_topology()->set_slot(f.report_slot.empty() ? slot
                                                           : f.report_slot);
    *out.mutable_topology()->mutable_topology() = f.topology;
    out.mutable_topology()->set_installed_version(f.installed_version);
    for (const auto& [instance, archive] : f.deployments) {
      (*out.mutable_topology()->mutable_deployments())[instance] = archive;
    }
    return out;
  }

  absl::StatusOr<gwmirror::v1::ReplicaState> State(const NodeRef& n,
                                                   uint64_t epoch) {
    absl::MutexLock l(&mu_);
    if (FaultsOf(n.identity).unreachable) {
      return absl::UnavailableError("replica unreachable");
    }
    const Replica& r = replicas_[SlotOf(n.identity)];
    gwmirror::v1::ReplicaState s;
    s.set_committed_checkpoint(r.committed);
    s.set_manifest_digest(r.committed_digest);
    s.set_staged_checkpoint(r.staged);
    s.set_staged_digest(r.staged_digest);
    s.set_epoch(epoch);
    return s;
  }

  absl::Status Commit(const NodeRef& n, uint64_t id,
                      const std::string& digest) {
    absl::MutexLock l(&mu_);
    Faults& f = FaultsOf(n.identity);
    if (f.unreachable) return absl::UnavailableError("replica unreachable");
    if (f.fail_commits > 0) {
      --f.fail_commits;
      return absl::InternalError("the replica's disk said no");
    }
    Replica& r = replicas_[SlotOf(n.identity)];
    if (r.committed == id && r.committed_digest == digest) {
      return absl::OkStatus();  // Already committed: a no-op, as for real.
    }
    if (r.staged != id || r.staged_digest != digest) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", id, " is not staged with that digest"));
    }
    r.committed = id;
    r.committed_digest = digest;
    r.staged = 0;
    r.staged_digest.clear();
    r.commits.push_back(id);
    return absl::OkStatus();
  }

  absl::Status Abort(const NodeRef& n, uint64_t id) {
    absl::MutexLock l(&mu_);
    if (FaultsOf(n.identity).unreachable) {
      return absl::UnavailableError("replica unreachable");
    }
    Replica& r = replicas_[SlotOf(n.identity)];
    r.aborts.push_back(id);
    if (r.staged == id) {
      r.staged = 0;
      r.staged_digest.clear();
    }
    return absl::OkStatus();
  }

  // What `identity` was told to do (nothing, for most; a lookup inserts
  // nothing).
  Faults& FaultsOf(const std::string& identity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = faults_.find(identity);
    return it == faults_.end() ? none_ : it->second;
  }

  absl::Mutex mu_;
  Faults none_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Replica> replicas_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Faults> faults_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_);
  absl::Duration inside_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A coordinator config for `slots` simulated slots: sites production and
// standby, members gwN-production and gwN-standby of slot gwN.
inline gwmirror::v1::CoordinatorConfig SimulatedClusterConfig(
    const gwmirror::v1::TlsConfig& tls, const std::string& state_dir,
    int slots) {
  gwmirror::v1::CoordinatorConfig c;
  *c.mutable_tls() = tls;
  c.set_listen("127.0.0.1:0");
  c.set_state_dir(state_dir);
  c.add_sites("production");
  c.add_sites("standby");
  c.set_initial_active_site("production");
  for (int i = 1; i <= slots; ++i) {
    for (const char* site : {"production", "standby"}) {
      auto* m = c.add_members();
      m->set_identity(absl::StrCat("gw", i, "-", site));
      m->set_site(site);
      m->set_slot(absl::StrCat("gw", i));
    }
  }
  return c;
}

// Registers every member of SimulatedClusterConfig(…, slots).
inline absl::Status RegisterSimulatedNodes(Coordinator* c, int slots) {
  for (int i = 1; i <= slots; ++i) {
    for (const char* site : {"production", "standby"}) {
      gwmirror::v1::RegisterRequest req;
      req.set_site(site);
      req.set_slot(absl::StrCat("gw", i));
      req.set_address(absl::StrCat("fake:", i, site));
      auto r = c->Register(absl::StrCat("gw", i, "-", site), req);
      if (!r.ok()) return r.status();
    }
  }
  return absl::OkStatus();
}

// A heartbeat at `epoch` from every member of SimulatedClusterConfig(…,
// slots), reporting an empty topology (as RegisterSimulatedNodes does).
inline absl::Status BeatSimulatedNodes(Coordinator* c, int slots,
                                       uint64_t epoch) {
  for (int i = 1; i <= slots; ++i) {
    for (const char* site : {"production", "standby"}) {
      gwmirror::v1::HeartbeatRequest req;
      req.mutable_envelope()->set_epoch(epoch);
      auto r = c->Heartbeat(absl::StrCat("gw", i, "-", site), req);
      if (!r.ok()) return r.status();
    }
  }
  return absl::OkStatus();
}

}  // namespace gwmirror::testing

#endif  // GWMIRROR_TESTS_COORDINATOR_FAKE_NODES_H_
