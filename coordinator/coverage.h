// External Connections coverage: for every connection of the deployments
// production runs (as its nodes report them), what protects it on the
// standby: a dump job of this cluster (same kind, host, port and database
// or LDAP suffix), an operator's declaration in the coordinator's config,
// or nothing. A connection on a loopback host ("localhost", 127.0.0.1)
// names the host it is read on, and so does a dump job through a socket or
// on a loopback address: both are compared as that host's topology name.
// Pure function; thread-safe.
#ifndef GWMIRROR_COORDINATOR_COVERAGE_H_
#define GWMIRROR_COORDINATOR_COVERAGE_H_

#include <vector>

#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"
#include "gwmirror/v1/topology.pb.h"

namespace gwmirror {

struct Coverage {
  // One row per connection per production slot, in report order.
  std::vector<gwmirror::v1::CoverageRow> rows;
  // Rows in state UNPROTECTED or UNRESOLVED.
  uint32_t unprotected = 0;
};

// `production`: the active site's reports (their slot and host_name set).
Coverage ComputeCoverage(
    const std::vector<gwmirror::v1::TopologyReport>& production,
    const std::vector<gwmirror::v1::ExternalDeclaration>& declarations);

}  // namespace gwmirror

#endif  // GWMIRROR_COORDINATOR_COVERAGE_H_
