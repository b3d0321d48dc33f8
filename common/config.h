// Loading and checking configuration files (JSON, proto3 mapping of
// config.proto). Every problem is reported with the file and the field.
#ifndef GWMIRROR_COMMON_CONFIG_H_
#define GWMIRROR_COMMON_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

absl::StatusOr<gwmirror::v1::NodeConfig> LoadNodeConfig(
    const std::string& path);
absl::Status ValidateNodeConfig(const gwmirror::v1::NodeConfig& c);

// `json` with its comments ("// to end of line" and "/* ... */", outside
// strings) blanked out; line and column numbers stay the same.
std::string StripJsonComments(absl::string_view json);

// Parses JSON into `msg`; unknown fields are errors. `what` names the input.
// Comments are allowed (StripJsonComments), so config files can explain
// themselves.
absl::Status ParseJson(const std::string& json, const std::string& what,
                       google::protobuf::Message* msg);
std::string ToJson(const google::protobuf::Message& msg);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_CONFIG_H_
