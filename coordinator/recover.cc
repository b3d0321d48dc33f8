#include "coordinator/recover.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/replica_call.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/etcd_state_store.h"
#include "google/protobuf/util/message_differencer.h"
#include "gwmirror/v1/replica.grpc.pb.h"

namespace gwmirror {
absl::StatusOr<StateStore::Recovered> RecoverState(
    const gwmirror::v1::CoordinatorConfig& config,
    const std::string& active_site,
    const std::vector<std::pair<std::string, std::string>>& nodes,
    std::vector<std::string>* report) {
  const auto& sites = config.sites();
  if (std::find(sites.begin(), sites.end(), active_site) == sites.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--active-site \"", active_site, "\" is not one of (",
                     absl::StrJoin(sites, ", "), ")"));
  }
  std::map<std::string, const gwmirror::v1::ClusterMember*> members;
  for (const auto& m : config.members()) members[m.identity()] = &m;
  std::set<std::string> seen;
  for (const auto& [identity, address] : nodes) {
    if (!members.count(identity)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", identity, "\" is not a member of this cluster"));
    }
    if (!seen.insert(identity).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", identity, "\" is named twice"));
    }
  }
  std::vector<std::string> missing;
  for (const auto& [identity, m] : members) {
    if (!seen.count(identity)) missing.push_back(identity);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "every member must be asked, so that no node holds a later epoch or "
        "checkpoint than the rebuilt state; missing: ",
        absl::StrJoin(missing, ", ")));
  }
  StateStore::Recovered r;
  r.active_site = active_site;
  r.epoch = 0;
  std::set<uint64_t> pins;
  std::map<uint64_t, int64_t> committed_ms;
  for (const auto& [identity, address] : nodes) {
    ASSIGN_OR_RETURN(auto channel,
                     DialMutualTls(config.tls(), address, identity));
    auto stub = gwmirror::v1::Replica::NewStub(channel);
    // Controllers may read at epoch 0, without knowing the epoch.
    ASSIGN_OR_RETURN(
        auto state,
        CallReplica<gwmirror::v1::ReplicaState>(
            *stub, &gwmirror::v1::Replica::Stub::GetState,
            gwmirror::v1::GetStateRequest(), 0, absl::Minutes(2), identity));
    r.epoch = std::max(r.epoch, state.epoch());
    r.checkpoint = std::max(r.checkpoint, state.committed_checkpoint());
    std::string line = absl::StrCat(
        identity, " (", members[identity]->site(), "): epoch ", state.epoch(),
        ", committed checkpoint ", state.committed_checkpoint());
    {
      ASSIGN_OR_RETURN(auto history,
                       CallReplica<gwmirror::v1::HistoryList>(
                           *stub, &gwmirror::v1::Replica::Stub::ListHistory,
                           gwmirror::v1::ListHistoryRequest(), 0,
                           absl::Minutes(2), identity));
      std::vector<uint64_t> pinned;
      for (const auto& p : history.points()) {
        if (p.pinned()) pinned.push_back(p.checkpoint());
        committed_ms[p.checkpoint()] =
            std::max(committed_ms[p.checkpoint()], p.committed_unix_ms());
      }
      pins.insert(pinned.begin(), pinned.end());
      absl::StrAppend(&line, ", ", history.points_size(),
                      " retained checkpoints, pinned: ",
                      pinned.empty() ? "none" : absl::StrJoin(pinned, ", "));
    }
    report->push_back(line);
  }
  r.epoch = std::max<uint64_t>(r.epoch, 1);
  if (r.epoch == 1 && active_site != config.initial_active_site()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "every node is at epoch 1, so no promote ever happened and the "
        "active site is still \"",
        config.initial_active_site(), "\", not \"", active_site, "\""));
  }
  if (r.epoch > 1) {
    for (const auto& s : sites) {
      if (s != active_site) r.fenced_site = s;
    }
  }
  r.pins.assign(pins.begin(), pins.end());
  // Its cut time is not kept on the nodes; their commit time, a little
  // later, stands in (the RPO shown is short by the cut-to-commit time).
  r.cut_ms = committed_ms.count(r.checkpoint) ? committed_ms[r.checkpoint]
                                              : absl::ToUnixMillis(absl::Now());
  ASSIGN_OR_RETURN(auto store, OpenStateStore(config));
  RETURN_IF_ERROR(store->Recover(r));
  report->push_back(absl::StrCat(
      "recovered: epoch ", r.epoch, ", ", r.active_site, " active",
      r.fenced_site.empty() ? "" : absl::StrCat(", ", r.fenced_site, " fenced"),
      ", last checkpoint ", r.checkpoint,
      ", pins: ", r.pins.empty() ? "none" : absl::StrJoin(r.pins, ", ")));
  return r;
}

namespace {

using google::protobuf::util::MessageDifferencer;

// Where a config keeps its state, in words.
std::string StoreName(const gwmirror::v1::CoordinatorConfig& c) {
  if (c.has_etcd()) {
    return absl::StrCat(
        "etcd ", absl::StrJoin(c.etcd().endpoints(), ","), " prefix ",
        c.etcd().prefix().empty() ? "/gwmirror/" : c.etcd().prefix());
  }
  return absl::StrCat("sqlite ", c.state_dir(), "/state.db");
}

// A migration's end of the copy: never waits long for a lead, and never
// makes an empty SQLite state where the source should be.
absl::StatusOr<std::unique_ptr<StateStore>> OpenForMigration(
    const gwmirror::v1::CoordinatorConfig& c, bool source) {
  if (c.has_etcd()) {
    EtcdStateStore::Options options = EtcdStateStore::OptionsFor(c);
    options.name = "gwmirror-coordinator migrate";
    options.wait_for_lead = absl::Seconds(30);
    ASSIGN_OR_RETURN(auto s, EtcdStateStore::Open(c.etcd(), options));
    return std::unique_ptr<StateStore>(std::move(s));
  }
  const std::string path = c.state_dir() + "/state.db";
  if (source && access(path.c_str(), F_OK) != 0) {
    return ErrnoStatus(errno, absl::StrCat("the state to migrate, ", path));
  }
  return OpenStateStore(c);
}

std::string Summary(const StateStore::Contents& c) {
  size_t committed = 0;
  for (const auto& k : c.checkpoints) {
    const auto s = k.info().state();
    committed += s == gwmirror::v1::CHECKPOINT_STATE_CONSISTENT ||
                 s == gwmirror::v1::CHECKPOINT_STATE_APPLIED;
  }
  return absl::StrCat("epoch ", c.meta.epoch(), ", ", c.meta.active_site(),
                      " active, ", c.checkpoints.size(), " checkpoints (",
                      committed, " committed), ", c.drills.size(), " drills, ",
                      c.meta.pins_size(), " pins");
}

}  // namespace

absl::Status MigrateState(const gwmirror::v1::CoordinatorConfig& from,
                          const gwmirror::v1::CoordinatorConfig& to,
                          std::vector<std::string>* report) {
  const std::string from_name = StoreName(from), to_name = StoreName(to);
  if (from_name == to_name) {
    return absl::InvalidArgumentError(
        absl::StrCat("both configs name the same state (", from_name, ")"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<StateStore> source,
                   OpenForMigration(from, /*source=*/true));
  ASSIGN_OR_RETURN(StateStore::Contents contents, source->Export());
  report->push_back(
      absl::StrCat("read from ", from_name, ": ", Summary(contents)));
  ASSIGN_OR_RETURN(std::unique_ptr<StateStore> target,
                   OpenForMigration(to, /*source=*/false));
  RETURN_IF_ERROR(target->Import(contents));
  ASSIGN_OR_RETURN(StateStore::Contents back, target->Export());
  // What the target holds must be what was read, record for record.
  bool same = back.checkpoints.size() == contents.checkpoints.size() &&
              back.drills.size() == contents.drills.size() &&
              back.meta.epoch() == contents.meta.epoch() &&
              back.meta.active_site() == contents.meta.active_site() &&
              back.meta.fenced_site() == contents.meta.fenced_site();
  for (size_t i = 0; same && i < back.checkpoints.size(); ++i) {
    same = MessageDifferencer::Equals(back.checkpoints[i],
                                      contents.checkpoints[i]);
  }
  for (size_t i = 0; same && i < back.drills.size(); ++i) {
    same = back.drills[i].first == contents.drills[i].first &&
           MessageDifferencer::Equals(back.drills[i].second,
                                      contents.drills[i].second);
  }
  if (!same) {
    return absl::DataLossError(
        absl::StrCat("the state written into ", to_name,
                     " does not read back as the one read (", Summary(back),
                     "); do not start a coordinator on it"));
  }
  report->push_back(
      absl::StrCat("wrote into ", to_name, " and read back: ", Summary(back)));
  return absl::OkStatus();
}

}  // namespace gwmirror
