// Reads what a node's host holds of the gateway's shape: its copy of
// groups/topology.json, the installed product version (from product files
// that are not mirrored), and the instance directories on disk. Pure
// function of the file system; thread-safe.
#ifndef GWMIRROR_NODE_TOPOLOGY_REPORT_H_
#define GWMIRROR_NODE_TOPOLOGY_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gwmirror/v1/topology.pb.h"

namespace gwmirror {

struct TopologySource {
  std::string host_root = "/";
  // Gateway install directory relative to the host root.
  std::string gateway_dir = "opt/Axway-7.7/apigateway";
  // Version marker relative to the host root; "product.version=<v>" line.
  // Empty: <gateway_dir>/system/lib/version.properties.
  std::string version_file;
  // The topology host name this node serves ("gw1.example.com").
  std::string host_name;
  // What this node's dump jobs protect (reported for External Connections
  // coverage).
  std::vector<gwmirror::v1::DumpJobEndpoint> dump_jobs;
};

// Never fails on a missing or damaged file: the report lists it under
// `problems`, because a standby with no topology is a parity finding, not
// an error of the node.
gwmirror::v1::TopologyReport ReadTopologyReport(const TopologySource& src,
                                                const std::string& site,
                                                const std::string& slot);

// Parses groups/deployments.json, {"serviceDeployments": {"instance-1":
// [{"archiveID": "<uuid>"}], ...}}, into r->deployments (instance id ->
// archive id, the last listed when several are). Other content is ignored.
absl::Status ParseDeployments(const std::string& json,
                              gwmirror::v1::TopologyReport* r);

// Parses topology.json (unknown fields ignored: the product owns them).
absl::StatusOr<gwmirror::v1::GatewayTopology> ParseTopology(
    const std::string& json);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_TOPOLOGY_REPORT_H_
