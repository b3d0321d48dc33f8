// The words people read for the protocol's typed states (the wire carries
// enums; logs, the CLI's text output and audit records show these).
#ifndef GWMIRROR_COMMON_PROTOCOL_NAMES_H_
#define GWMIRROR_COMMON_PROTOCOL_NAMES_H_

#include <string>

#include "gwmirror/v1/coordinator.pb.h"

namespace gwmirror {

// "cut", "consistent", "applied", "aborted", "requested", "adopted".
inline std::string StateName(gwmirror::v1::CheckpointState s) {
  switch (s) {
    case gwmirror::v1::CHECKPOINT_STATE_CUT:
      return "cut";
    case gwmirror::v1::CHECKPOINT_STATE_CONSISTENT:
      return "consistent";
    case gwmirror::v1::CHECKPOINT_STATE_APPLIED:
      return "applied";
    case gwmirror::v1::CHECKPOINT_STATE_ABORTED:
      return "aborted";
    case gwmirror::v1::CHECKPOINT_STATE_REQUESTED:
      return "requested";
    case gwmirror::v1::CHECKPOINT_STATE_ADOPTED:
      return "adopted";
    default:
      return "unknown";
  }
}

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_PROTOCOL_NAMES_H_
