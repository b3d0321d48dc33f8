// A config file checked against its message type before protobuf parses
// it, so that a mistake is reported where it is: file:line:column, the key
// path (tls.ca_file, roots[2].path), what was expected, and "did you mean"
// for a mistyped key. Comments must already be blanked out (positions are
// kept by StripJsonComments).
#ifndef GWMIRROR_COMMON_JSON_CHECK_H_
#define GWMIRROR_COMMON_JSON_CHECK_H_

#include <google/protobuf/descriptor.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

// OK when `json` is one JSON object whose keys and value types fit `type`
// (the proto3 JSON mapping: field names or their lowerCamel forms, numbers
// as numbers or strings, enums as names or numbers, null anywhere).
// Otherwise INVALID_ARGUMENT "WHAT:LINE:COL: KEY.PATH: problem".
absl::Status CheckJson(absl::string_view json,
                       const google::protobuf::Descriptor* type,
                       absl::string_view what);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_JSON_CHECK_H_
