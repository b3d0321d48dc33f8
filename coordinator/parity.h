// Topology parity between the production and standby sites, from the
// nodes' TopologyReports: every host of production's topology is served by
// a production node and a standby node, twins run the same installed
// product version, production nodes agree on the topology version, and
// (after a checkpoint is applied) each standby host has every instance its
// host runs in the topology. Differences are sentences an operator can act
// on. Pure function; thread-safe.
#ifndef GWMIRROR_COORDINATOR_PARITY_H_
#define GWMIRROR_COORDINATOR_PARITY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gwmirror/v1/topology.pb.h"

namespace gwmirror {

struct ParityVerdict {
  bool parity = true;
  // Every difference, in words.
  std::vector<std::string> differences;
  // The same, by slot ("" for findings that belong to no one slot).
  std::map<std::string, std::vector<std::string>> by_slot;
};

// One node's report, placed: `site` is "production" or "standby" and
// `slot` its slot, whatever the report itself says (the coordinator knows
// them from the config; a report is borrowed, not copied, for each look).
struct PlacedReport {
  absl::string_view site, slot;
  const gwmirror::v1::TopologyReport* report;
};

// `check_instances`: also require the standby's instance directories (true
// once a checkpoint has been applied).
ParityVerdict ComputeParity(const std::vector<PlacedReport>& reports,
                            bool check_instances);
// The same for reports that carry their own site and slot.
ParityVerdict ComputeParity(
    const std::vector<gwmirror::v1::TopologyReport>& reports,
    bool check_instances);

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_PARITY_H_
