#include "common/config.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/json_check.h"
#include "common/path.h"
#include "common/send_budget.h"
#include "common/status_macros.h"

namespace gwmirror {

std::string StripJsonComments(absl::string_view json) {
  std::string out(json);
  bool in_string = false;
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // The escaped character cannot end the string.
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '/') {
      while (i < out.size() && out[i] != '\n') out[i++] = ' ';
    } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '*') {
      size_t end = out.find("*/", i + 2);
      end = end == std::string::npos ? out.size() : end + 2;
      for (; i < end; ++i) {
        if (out[i] != '\n') out[i] = ' ';
      }
      --i;
    }
  }
  return out;
}

absl::Status ParseJson(const std::string& json, const std::string& what,
                       google::protobuf::Message* msg) {
  const std::string stripped = StripJsonComments(json);
  // Our check first: it names the line, column and key path of a mistake.
  RETURN_IF_ERROR(CheckJson(stripped, msg->GetDescriptor(), what));
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(stripped, msg, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", std::string(st.message())));
  }
  return absl::OkStatus();
}

std::string ToJson(const google::protobuf::Message& msg) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  // Every field, zero and empty ones too: a script reading lag_ms must get
  // 0 while a slot is in sync, not a missing key.
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, opts);
  return out;
}

absl::Status ValidateNodeConfig(const gwmirror::v1::NodeConfig& c) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("node config: ", why));
  };
  if (c.slot().empty()) return bad("\"slot\" is required");
  if (c.state_dir().empty()) return bad("\"state_dir\" is required");
  if (c.roots().empty())
    return bad("at least one entry in \"roots\" is required");
  for (int i = 0; i < c.roots_size(); ++i) {
    absl::Status st = ValidateRelativePath(c.roots(i).path());
    if (!st.ok()) {
      return bad(absl::StrCat("roots[", i, "].path: ", st.message()));
    }
    for (int j = 0; j < c.roots_size(); ++j) {
      if (i != j && PathIsWithin(c.roots(i).path(), c.roots(j).path())) {
        return bad(absl::StrCat("roots[", i, "] \"", c.roots(i).path(),
                                "\" lies inside roots[", j, "]"));
      }
    }
  }
  if (c.has_source()) {
    uint32_t b = c.source().block_len();
    if (b != 0 && (b < 256 || b > 65536)) {
      return bad("source.block_len must be within 256..65536");
    }
  }
  if (c.has_replica()) {
    if (c.replica().source_identity().empty()) {
      return bad("replica.source_identity is required");
    }
  }
  if (c.has_coordinator() && (c.coordinator().address().empty() ||
                              c.coordinator().identity().empty())) {
    return bad("coordinator.address and coordinator.identity are required");
  }
  if (c.has_coordinator() && c.site().empty()) {
    return bad("\"site\" is required with a coordinator");
  }
  if (auto p = SendPolicy::From(c.bandwidth()); !p.ok()) {
    return bad(p.status().message());
  }
  return absl::OkStatus();
}

absl::StatusOr<gwmirror::v1::NodeConfig> LoadNodeConfig(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(path));
  gwmirror::v1::NodeConfig c;
  RETURN_IF_ERROR(ParseJson(json, path, &c));
  absl::Status st = ValidateNodeConfig(c);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  }
  return c;
}

}  // namespace gwmirror
