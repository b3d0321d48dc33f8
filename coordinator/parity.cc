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

// Host id -> ("group-2/instance-1" -> "QuickStart Group/Gateway1") for
// each gateway instance the topology places on that host.
std::map<std::string, std::map<std::string, std::string>> InstancesByHost(
    const GatewayTopology& t) {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& g : t.groups()) {
    for (const auto& s : g.services()) {
      if (s.type() == "gateway") {
        out[s.host_id()][absl::StrCat(g.id(), "/", s.id())] =
            absl::StrCat(g.name(), "/", s.name());
      }
    }
  }
  return out;
}

}  // namespace

ParityVerdict ComputeParity(const std::vector<PlacedReport>& reports,
                            bool check_instances) {
  ParityVerdict v;
  auto differ = [&v](absl::string_view slot, std::string words) {
    v.parity = false;
    v.by_slot[std::string(slot)].push_back(words);
    v.differences.push_back(std::move(words));
  };
  std::map<absl::string_view, const TopologyReport*> prod, standby;
  for (const PlacedReport& r : reports) {
    if (r.site == kProduction) {
      prod[r.slot] = r.report;
    } else if (r.site == kStandby) {
      standby[r.slot] = r.report;
    } else {
      differ(r.slot, absl::StrCat("node ", r.slot, " reports unknown site \"",
                                  r.site, "\""));
    }
  }
  for (const PlacedReport& r : reports) {
    for (const std::string& p : r.report->problems()) {
      differ(r.slot, absl::StrCat(r.site, " ", r.slot, ": ", p));
    }
  }
  // Production's topology: every production node must hold the same version.
  const GatewayTopology* reference = nullptr;
  std::map<int64_t, std::vector<absl::string_view>> versions;
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
  // Every host of the topology is served on both sites. (Instances,
  // hosts and who serves them are each found once: a topology's hosts and
  // a site's nodes grow together.)
  const auto instances_by_host = InstancesByHost(*reference);
  const std::map<std::string, std::string> no_instances;
  auto instances_on = [&](const std::string& host_id)
      -> const std::map<std::string, std::string>& {
    auto it = instances_by_host.find(host_id);
    return it == instances_by_host.end() ? no_instances : it->second;
  };
  std::set<absl::string_view> served_by_prod, served_by_standby;
  for (const auto& [slot, r] : prod) served_by_prod.insert(r->host_name());
  for (const auto& [slot, r] : standby) {
    served_by_standby.insert(r->host_name());
  }
  std::map<absl::string_view, std::vector<const gwmirror::v1::GatewayHost*>>
      hosts_by_name;
  for (const auto& h : reference->hosts()) {
    hosts_by_name[h.name()].push_back(&h);
    size_t instances = instances_on(h.id()).size();
    std::string what =
        absl::StrCat(h.id(), " (", h.name(), ", ", instances,
                     " gateway instance", instances == 1 ? "" : "s", ")");
    for (const auto* site : {&served_by_prod, &served_by_standby}) {
      if (!site->contains(h.name())) {
        differ("",
               absl::StrCat("production topology has ", what, " but no ",
                            site == &served_by_prod ? kProduction : kStandby,
                            " node serves it"));
      }
    }
  }
  // Twins: same installed version; slots filled on both sites.
  std::set<absl::string_view> slots;
  for (const auto& [slot, r] : prod) slots.insert(slot);
  for (const auto& [slot, r] : standby) slots.insert(slot);
  for (absl::string_view slot : slots) {
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
    auto hosts = hosts_by_name.find(sr.host_name());
    if (hosts == hosts_by_name.end()) continue;
    std::set<std::string> on_disk(sr.instances_on_disk().begin(),
                                  sr.instances_on_disk().end());
    for (const gwmirror::v1::GatewayHost* h : hosts->second) {
      for (const auto& [dir, name] : instances_on(h->id())) {
        if (!on_disk.count(dir)) {
          differ(slot,
                 absl::StrCat("standby ", slot, " lacks ", dir, " (", name,
                              ") that ", h->id(), " runs in the topology"));
        }
      }
    }
  }
  return v;
}

ParityVerdict ComputeParity(const std::vector<TopologyReport>& reports,
                            bool check_instances) {
  std::vector<PlacedReport> placed;
  placed.reserve(reports.size());
  for (const TopologyReport& r : reports) {
    placed.push_back(PlacedReport{r.site(), r.slot(), &r});
  }
  return ComputeParity(placed, check_instances);
}

}  // namespace gwmirror
