// Small helpers the coordinator's rooms share. Internal to coordinator/.
#ifndef GWMIRROR_COORDINATOR_COORDINATOR_INTERNAL_H_
#define GWMIRROR_COORDINATOR_COORDINATOR_INTERNAL_H_

#include <string>

#include "absl/strings/escaping.h"

namespace gwmirror::coordinator_internal {

// The first 16 hex digits of a digest, for messages.
inline std::string Short(const std::string& digest) {
  return absl::BytesToHexString(digest).substr(0, 16) + "...";
}

// `v`, or `def` when it is zero (an unset config field).
template <typename T>
T Or(T v, T def) {
  return v ? v : def;
}

}  // namespace gwmirror::coordinator_internal

#endif  // GWMIRROR_COORDINATOR_COORDINATOR_INTERNAL_H_
