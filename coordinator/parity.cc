#include "coordinator/parity.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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
  // Each slot's production and standby report (the last one given, if a
  // slot's site is given twice), in slot order: one sort, no tree of
  // 400 nodes built per look.
  struct Ends {
    absl::string_view slot;
    const TopologyReport* prod = nullptr;
    const TopologyReport* standby = nullptr;
  };
  std::vector<const PlacedReport*> placed;
  placed.reserve(reports.size());
  for (const PlacedReport& r : reports) {
    if (r.site == kProduction || r.site == kStandby) {
      placed.push_back(&r);
    } else {
      differ(r.slot, absl::StrCat("node ", r.slot, " reports unknown site \"",
                                  r.site, "\""));
    }
  }
  std::stable_sort(placed.begin(), placed.end(),
                   [](const PlacedReport* a, const PlacedReport* b) {
                     return a->slot < b->slot;
                   });
  std::vector<Ends> ends;
  ends.reserve(placed.size());
  for (const PlacedReport* r : placed) {
    if (ends.empty() || ends.back().slot != r->slot) {
      ends.push_back(Ends{r->slot});
    }
    (r->site == kProduction ? ends.back().prod : ends.back().standby) =
        r->report;
  }
  for (const PlacedReport& r : reports) {
    for (const std::string& p : r.report->problems()) {
      differ(r.slot, absl::StrCat(r.site, " ", r.slot, ": ", p));
    }
  }
  // Production's topology: every production node must hold the same version.
  const GatewayTopology* reference = nullptr;
  std::map<int64_t, std::vector<absl::string_view>> versions;
  for (const Ends& e : ends) {
    const TopologyReport* r = e.prod;
    if (r == nullptr || !r->has_topology()) continue;
    versions[r->topology().version()].push_back(e.slot);
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
  absl::flat_hash_set<absl::string_view> served_by_prod, served_by_standby;
  for (const Ends& e : ends) {
    if (e.prod != nullptr) served_by_prod.insert(e.prod->host_name());
    if (e.standby != nullptr) served_by_standby.insert(e.standby->host_name());
  }
  absl::flat_hash_map<absl::string_view,
                      std::vector<const gwmirror::v1::GatewayHost*>>
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
  for (const Ends& e : ends) {
    const absl::string_view slot = e.slot;
    if (e.prod == nullptr || e.standby == nullptr) {
      differ(slot,
             absl::StrCat("slot ", slot, " has a ",
                          e.prod == nullptr ? kStandby : kProduction,
                          " node but no ",
                          e.prod == nullptr ? kProduction : kStandby, " node"));
      continue;
    }
    const TopologyReport& pr = *e.prod;
    const TopologyReport& sr = *e.standby;
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
    const absl::flat_hash_set<absl::string_view> on_disk(
        sr.instances_on_disk().begin(), sr.instances_on_disk().end());
    for (const gwmirror::v1::GatewayHost* h : hosts->second) {
      for (const auto& [dir, name] : instances_on(h->id())) {
        if (!on_disk.contains(dir)) {
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
