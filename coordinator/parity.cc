#include "coordinator/parity.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gwmirror {
namespace {

using gwmirror::v1::GatewayTopology;
using gwmirror::v1::TopologyReport;

constexpr char kProduction[] = "production";
constexpr char kStandby[] = "standby";

// "group-2/instance-1" -> "QuickStart Group/Gateway1" for each gateway
// instance the topology places on host `host_id`.
std::map<std::string, std::string> InstancesOn(const GatewayTopology& t,
                                               const std::string& host_id) {
  std::map<std::string, std::string> out;
  for (const auto& g : t.groups()) {
    for (const auto& s : g.services()) {
      if (s.type() == "gateway" && s.host_id() == host_id) {
        out[absl::StrCat(g.id(), "/", s.id())] =
            absl::StrCat(g.name(), "/", s.name());
      }
    }
  }
  return out;
}

}  // namespace

ParityVerdict ComputeParity(const std::vector<TopologyReport>& reports,
                            bool check_instances) {
  ParityVerdict v;
  auto differ = [&v](const std::string& slot, std::string words) {
    v.parity = false;
    v.by_slot[slot].push_back(words);
    v.differences.push_back(std::move(words));
  };
  std::map<std::string, const TopologyReport*> prod, standby;
  for (const TopologyReport& r : reports) {
    if (r.site() == kProduction) {
      prod[r.slot()] = &r;
    } else if (r.site() == kStandby) {
      standby[r.slot()] = &r;
    } else {
      differ(r.slot(),
             absl::StrCat("node ", r.slot(), " reports unknown site \"",
                          r.site(), "\""));
    }
  }
  for (const TopologyReport& r : reports) {
    for (const std::string& p : r.problems()) {
      differ(r.slot(), absl::StrCat(r.site(), " ", r.slot(), ": ", p));
    }
  }
  // Production's topology: every production node must hold the same version.
  const GatewayTopology* reference = nullptr;
  std::map<int64_t, std::vector<std::string>> versions;
  for (const auto& [slot, r] : prod) {
    if (!r->has_topology()) continue;
    versions[r->topology().version()].push_back(slot);
    if (reference == nullptr ||
        r->topology().version() > reference->version()) {
      reference = &r->topology();
    }
  }
  if (versions.size() > 1) {
    std::vector<std::string> parts;
    for (const auto& [ver, slots] : versions) {
      parts.push_back(
          absl::StrCat(absl::StrJoin(slots, ", "), " at version ", ver));
    }
    differ("",
           absl::StrCat("production nodes disagree on the topology version: ",
                        absl::StrJoin(parts, "; ")));
  }
  if (reference == nullptr) {
    differ("", "no production node reports a topology");
    return v;
  }
  // Every host of the topology is served on both sites.
  for (const auto& h : reference->hosts()) {
    size_t instances = InstancesOn(*reference, h.id()).size();
    std::string what =
        absl::StrCat(h.id(), " (", h.name(), ", ", instances,
                     " gateway instance", instances == 1 ? "" : "s", ")");
    for (const auto* site : {&prod, &standby}) {
      bool served = false;
      for (const auto& [slot, r] : *site) served |= r->host_name() == h.name();
      if (!served) {
        differ("", absl::StrCat("production topology has ", what, " but no ",
                                site == &prod ? kProduction : kStandby,
                                " node serves it"));
      }
    }
  }
  // Twins: same installed version; slots filled on both sites.
  std::set<std::string> slots;
  for (const auto& [slot, r] : prod) slots.insert(slot);
  for (const auto& [slot, r] : standby) slots.insert(slot);
  for (const std::string& slot : slots) {
    auto p = prod.find(slot);
    auto s = standby.find(slot);
    if (p == prod.end() || s == standby.end()) {
      differ(slot,
             absl::StrCat("slot ", slot, " has a ",
                          p == prod.end() ? kStandby : kProduction,
                          " node but no ",
                          p == prod.end() ? kProduction : kStandby, " node"));
      continue;
    }
    const TopologyReport& pr = *p->second;
    const TopologyReport& sr = *s->second;
    if (!pr.installed_version().empty() && !sr.installed_version().empty() &&
        pr.installed_version() != sr.installed_version()) {
      differ(slot,
             absl::StrCat("standby ", slot, " has ", sr.installed_version(),
                          " installed, production ", slot, " has ",
                          pr.installed_version()));
    }
    if (pr.host_name() != sr.host_name()) {
      differ(slot, absl::StrCat("slot ", slot, " serves ", pr.host_name(),
                                " on production but ", sr.host_name(),
                                " on standby"));
    }
    if (!check_instances) continue;
    for (const auto& h : reference->hosts()) {
      if (h.name() != sr.host_name()) continue;
      std::set<std::string> on_disk(sr.instances_on_disk().begin(),
                                    sr.instances_on_disk().end());
      for (const auto& [dir, name] : InstancesOn(*reference, h.id())) {
        if (!on_disk.count(dir)) {
          differ(slot,
                 absl::StrCat("standby ", slot, " lacks ", dir, " (", name,
                              ") that ", h.id(), " runs in the topology"));
        }
      }
    }
  }
  return v;
}

}  // namespace gwmirror
