// The node registry, one of the coordinator's rooms: which members of the
// cluster are registered and heartbeating, what each last reported, and
// which of them form each slot's source and replica. It knows members,
// reports and time (a Clock); roles come from the caller (the site that is
// active), epochs are checked against the one the caller passes. A record
// is immutable once published (a registration or heartbeat publishes a
// new one), so callers share records instead of copying them: a look at
// every member of a 400-node cluster, several times per checkpoint, costs
// pointers, and nothing here is held across a call to a node.
//
// Thread-safe; its lock is a leaf (held for no call out of this class), so
// any other lock of the coordinator may be held while calling it.
#ifndef GWMIRROR_COORDINATOR_NODE_REGISTRY_H_
#define GWMIRROR_COORDINATOR_NODE_REGISTRY_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/node_client.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"

namespace gwmirror {

// One member as the coordinator last heard of it.
struct NodeRecord {
  // The member as the config lists it (shared by every record published
  // for it: it never changes; never null).
  std::shared_ptr<const gwmirror::v1::ClusterMember> member = NoMember();
  std::string address;
  bool registered = false;
  absl::Time last_heartbeat = absl::InfinitePast();
  // The latest topology report (shared by the records published until the
  // next heartbeat replaces it whole).
  std::shared_ptr<const gwmirror::v1::TopologyReport> report =
      std::make_shared<const gwmirror::v1::TopologyReport>();
  // Sources: oldest change not yet in a staged checkpoint, and oldest
  // whose content is not at the replica yet (InfinitePast: none).
  absl::Time pending_since = absl::InfinitePast();
  absl::Time unstaged_since = absl::InfinitePast();
  uint64_t pending_files = 0, pending_bytes = 0;
  bool prestaging = false;
  // Sources: the push under way, if any (its last heartbeat's).
  std::optional<gwmirror::v1::SyncProgress> progress;
  // Bytes per second sent lately, and the cap (0: none).
  uint64_t send_rate = 0, send_cap = 0;
  // Replicas: entries drifted from the committed checkpoint, and the
  // checkpoint the latest report's tree holds at least.
  uint64_t drifted = 0;
  uint64_t report_checkpoint = 0;
  // Re-reading its tree after being a source.
  bool stale = false;
  // End of validity of the certificate it registered with.
  absl::Time cert_not_after = absl::InfinitePast();

  NodeRef ref() const { return NodeRef{member->identity(), address}; }

  // The member of a record that stands for no one (an empty slot end).
  static const std::shared_ptr<const gwmirror::v1::ClusterMember>& NoMember();
};

// A published record: immutable and shared; null only where a function
// says so.
using NodeView = std::shared_ptr<const NodeRecord>;

// Both ends of one slot, as the sites' roles assign them (never null from
// HealthySlots: an end no member fills is a record of no one).
struct SlotPeers {
  std::string slot;
  NodeView source, replica;
};

class NodeRegistry {
 public:
  // `members` as the config lists them; a member is healthy while its last
  // heartbeat is younger than `heartbeat_timeout`.
  NodeRegistry(const Clock* clock, absl::Duration heartbeat_timeout,
               const std::vector<gwmirror::v1::ClusterMember>& members);
  // It points into itself (slots_).
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  // PERMISSION_DENIED unless `identity` is the member the config lists
  // on `site` for `slot`.
  absl::Status CheckMember(const std::string& identity, const std::string& site,
                           const std::string& slot) const;
  // `identity` (a member) registered from `address`, reporting `topology`.
  void Registered(const std::string& identity, const std::string& address,
                  const gwmirror::v1::TopologyReport& topology);
  // Takes a member's heartbeat, sent at `epoch` (the coordinator's): the
  // record it publishes. PERMISSION_DENIED for a non-member,
  // NOT_FOUND before it registered, FAILED_PRECONDITION for another epoch
  // (nothing is recorded then).
  absl::StatusOr<NodeView> Heartbeat(const std::string& identity,
                                     const gwmirror::v1::HeartbeatRequest& req,
                                     uint64_t epoch);
  // Notes when the certificate a member registered with expires.
  void NoteCertificate(const std::string& identity, absl::Time not_after);

  // Registered and heard from within the heartbeat timeout of `now` (the
  // clock's reading, taken once for a look at many records).
  bool Healthy(const NodeRecord& n, absl::Time now) const;
  // Every member, by identity.
  std::vector<NodeView> Snapshot() const;
  // Whether some member serves `slot`.
  bool HasSlot(const std::string& slot) const;
  // The healthy member of `n`'s slot on the other site (null: none).
  NodeView HealthyPeer(const NodeRecord& n) const;
  // Every slot with both ends, `active` its sources' site; UNAVAILABLE
  // naming each end that is missing, lost or never registered.
  absl::StatusOr<std::vector<SlotPeers>> HealthySlots(
      const std::string& active) const;
  // Every member of `site`; FAILED_PRECONDITION naming one that is not
  // heartbeating, or when none registered.
  absl::StatusOr<std::vector<NodeView>> SiteNodes(
      const std::string& site) const;
  // When a change-driven cut stops waiting for pre-streaming sources: the
  // latest unstaged change of a healthy pre-streaming member plus
  // `max_delay` (InfinitePast when none is behind).
  absl::Time PrestageWaitEnds(absl::Duration max_delay) const;

 private:
  // Replaces `record` with a copy that `change` (called on the copy)
  // altered, and returns the copy.
  template <typename Change>
  NodeView Publish(NodeView& record, Change change)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The members of `slot` (null: no member serves it).
  const std::vector<NodeView*>* MembersOf(const std::string& slot) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const absl::Duration heartbeat_timeout_;
  mutable absl::Mutex mu_;
  // By identity; the set of members is the config's, fixed.
  std::map<std::string, NodeView> nodes_ ABSL_GUARDED_BY(mu_);
  // Each slot's members (pointers to their entries in nodes_, whose keys
  // never change after construction; in identity order), sorted by slot
  // name: found once, not at every look.
  std::vector<std::pair<std::string, std::vector<NodeView*>>> slots_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_NODE_REGISTRY_H_
