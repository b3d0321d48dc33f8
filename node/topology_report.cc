#include "node/topology_report.h"

#include <dirent.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/fd.h"
#include "common/path.h"
#include "common/utf8.h"
#include "node/external_connections.h"

namespace gwmirror {
namespace {

// The last text of one kind of file and its parse: the topology and the
// deployments change once per deployment and are read at every cut and
// heartbeat, and their JSON parses were most of the report's cost. Keyed
// by the whole text, so any change is parsed again.
template <typename T>
class LastParse {
 public:
  template <typename Parse>
  T Get(const std::string& text, Parse parse) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    if (!has_ || text != text_) {
      text_ = text;
      value_ = parse(text);
      has_ = true;
    }
    return value_;
  }

 private:
  absl::Mutex mu_;
  bool has_ ABSL_GUARDED_BY(mu_) = false;
  std::string text_ ABSL_GUARDED_BY(mu_);
  T value_ ABSL_GUARDED_BY(mu_);
};

std::vector<std::string> SubdirsWithPrefix(const std::string& dir,
                                           absl::string_view prefix) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && absl::StartsWith(e->d_name, prefix)) {
      out.emplace_back(e->d_name);
    }
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status ReadDeployments(const std::string& path,
                             gwmirror::v1::TopologyReport* r) {
  auto json = ReadFileToString(path);
  if (absl::IsNotFound(json.status())) return absl::OkStatus();
  if (!json.ok()) return json.status();
  using Parsed = std::pair<absl::Status, gwmirror::v1::TopologyReport>;
  static auto* last = new LastParse<Parsed>;
  auto [st, parsed] = last->Get(*json, [](const std::string& text) {
    Parsed p;
    p.first = ParseDeployments(text, &p.second);
    return p;
  });
  r->MergeFrom(parsed);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  }
  return absl::OkStatus();
}

// Every string of `r` valid UTF-8 (a damaged or hostile file's bytes
// written as \xNN), so the report always serializes.
void MakeSerializable(gwmirror::v1::TopologyReport* r) {
  auto fix = [](std::string* s) {
    if (!IsValidUtf8(*s)) *s = ValidUtf8(*s);
  };
  fix(r->mutable_host_name());
  fix(r->mutable_installed_version());
  for (std::string& p : *r->mutable_problems()) fix(&p);
  for (std::string& i : *r->mutable_instances_on_disk()) fix(&i);
  google::protobuf::Map<std::string, std::string> deployments;
  for (const auto& [instance, archive] : r->deployments()) {
    deployments[ValidUtf8(instance)] = ValidUtf8(archive);
  }
  *r->mutable_deployments() = std::move(deployments);
  for (auto& c : *r->mutable_external_connections()) {
    for (std::string* s :
         {c.mutable_group(), c.mutable_archive(), c.mutable_name(),
          c.mutable_type(), c.mutable_url(), c.mutable_problem()}) {
      fix(s);
    }
    for (std::string& i : *c.mutable_instances()) fix(&i);
  }
}

}  // namespace

absl::Status ParseDeployments(const std::string& json,
                              gwmirror::v1::TopologyReport* r) {
  google::protobuf::Struct doc;
  auto st = google::protobuf::util::JsonStringToMessage(json, &doc);
  if (!st.ok()) return absl::InvalidArgumentError(std::string(st.message()));
  auto it = doc.fields().find("serviceDeployments");
  if (it == doc.fields().end()) return absl::OkStatus();
  if (!it->second.has_struct_value()) {
    return absl::InvalidArgumentError("serviceDeployments is not an object");
  }
  for (const auto& [instance, list] : it->second.struct_value().fields()) {
    if (!list.has_list_value()) continue;
    for (const auto& d : list.list_value().values()) {
      if (!d.has_struct_value()) continue;
      auto a = d.struct_value().fields().find("archiveID");
      if (a != d.struct_value().fields().end() &&
          a->second.has_string_value()) {
        (*r->mutable_deployments())[instance] = a->second.string_value();
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<gwmirror::v1::GatewayTopology> ParseTopology(
    const std::string& json) {
  gwmirror::v1::GatewayTopology t;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(json, &t, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("topology.json: ", std::string(st.message())));
  }
  return t;
}

gwmirror::v1::TopologyReport ReadTopologyReport(const TopologySource& src,
                                                const std::string& site,
                                                const std::string& slot) {
  static auto* topologies =
      new LastParse<absl::StatusOr<gwmirror::v1::GatewayTopology>>;
  gwmirror::v1::TopologyReport r;
  r.set_site(site);
  r.set_slot(slot);
  r.set_host_name(src.host_name);
  std::string gw = JoinPath(src.host_root, src.gateway_dir);
  std::string topo_path = gw + "/groups/topology.json";
  auto json = ReadFileToString(topo_path);
  if (!json.ok()) {
    r.add_problems(
        absl::StrCat("no readable topology: ", json.status().message()));
  } else if (auto t = topologies->Get(*json, ParseTopology); !t.ok()) {
    r.add_problems(std::string(t.status().message()));
  } else {
    *r.mutable_topology() = *t;
  }
  std::string version_path = src.version_file.empty()
                                 ? gw + "/system/lib/version.properties"
                                 : JoinPath(src.host_root, src.version_file);
  auto props = ReadFileToString(version_path);
  if (!props.ok()) {
    r.add_problems(
        absl::StrCat("no installed version: ", props.status().message()));
  } else {
    for (absl::string_view line : absl::StrSplit(*props, '\n')) {
      if (absl::ConsumePrefix(&line, "product.version=")) {
        r.set_installed_version(std::string(absl::StripAsciiWhitespace(line)));
      }
    }
    if (r.installed_version().empty()) {
      r.add_problems(
          absl::StrCat(version_path, " has no product.version line"));
    }
  }
  if (absl::Status st = ReadDeployments(gw + "/groups/deployments.json", &r);
      !st.ok()) {
    r.add_problems(std::string(st.message()));
  }
  for (const auto& c : ReadExternalConnections(gw, r)) {
    *r.add_external_connections() = c;
  }
  for (const auto& j : src.dump_jobs) *r.add_dump_jobs() = j;
  for (const std::string& g : SubdirsWithPrefix(gw + "/groups", "group-")) {
    for (const std::string& i :
         SubdirsWithPrefix(absl::StrCat(gw, "/groups/", g), "instance-")) {
      r.add_instances_on_disk(absl::StrCat(g, "/", i));
    }
  }
  MakeSerializable(&r);
  return r;
}

}  // namespace gwmirror
