#include "node/sample/deployment.h"

#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <memory>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "gwmirror/v1/topology.pb.h"

namespace gwmirror {
namespace {

constexpr char kNs[] = "http://www.vordel.com/2005/06/24/entityStore";
constexpr size_t kMaxFedFiles = 1000;
constexpr uint64_t kMaxFedBytes = 256 << 20;

// The stores of a deployment and their share of PrimaryStore.xml's size (0:
// a fixed size).
struct StoreShape {
  const char* name;
  uint64_t divisor, fixed;
};
constexpr StoreShape kStores[] = {
    {"PrimaryStore.xml", 1, 0},       {"ResourceRepository.xml", 4, 0},
    {"ListenersStore.xml", 5, 0},     {"CertStore.xml", 7, 0},
    {"ExtConnsStore.xml", 14, 0},     {"UserStore.xml", 0, 14000},
    {"EnvSettingsStore.xml", 0, 8000}};

class Words {
 public:
  explicit Words(uint64_t seed) : rng_(seed) {}
  uint64_t Next() { return rng_(); }
  const char* Word() {
    static const char* kWords[] = {
        "OAuth",  "token",   "client", "validate", "route",  "quota",
        "header", "schema",  "JSON",   "XML",      "threat", "backend",
        "orders", "payment", "login",  "customer", "audit",  "cache"};
    return kWords[Next() % 18];
  }
  std::string Uuid() {
    uint64_t a = Next(), b = Next();
    return absl::StrFormat("%08x-%04x-4%03x-a%03x-%012x", a >> 32,
                           (a >> 16) & 0xffff, a & 0xfff, b >> 52,
                           b & 0xffffffffffffULL);
  }
  // One policy entity, as Policy Studio writes them: a filter circuit or
  // one of its filters, with the fields such filters carry. Not `policy`:
  // the grouping entities a connections store holds beside its
  // connections (no address of their own).
  std::string Entity(bool policy = true) {
    static const char* kTypes[] = {
        "FilterCircuit",       "SetAttributeFilter",
        "JavaScriptFilter",    "ConnectToURLFilter",
        "TraceFilter",         "ValidateAttributesFilter",
        "HTTPBasicAuthFilter", "CacheAttributeFilter"};
    static const char* kGroupTypes[] = {
        "ConnectionSet", "AuthnRepositoryGroup", "XmlSignatureGroup",
        "KPSCollection", "RadiusClients",        "CertificateGroup",
        "ProxyServers",  "LdapRepositories"};
    static const char* kFields[] = {
        "attributeName", "attributeValue", "url",     "script",
        "logMask",       "category",       "timeout", "successNode",
        "failureNode",   "abortProcessing"};
    static const char* kGroupFields[] = {
        "attributeName", "attributeValue", "description", "script",
        "logMask",       "category",       "timeout",     "successNode",
        "failureNode",   "abortProcessing"};
    const char* type = (policy ? kTypes : kGroupTypes)[Next() % 8];
    std::string out = absl::StrCat(
        "<entity xmlns=\"", kNs, "\"  type=\"", type, "\" entityPK=\"",
        static_cast<int64_t>(Next()), "\" parentPK=\"",
        static_cast<int64_t>(Next() | 1), "\">\n\t<fval name=\"name\"><value>",
        Word(), " ", Word(), " ", Next() % 10000, "</value></fval>\n");
    const int fields = 2 + Next() % 5;
    for (int f = 0; f < fields; ++f) {
      const char* field = (policy ? kFields : kGroupFields)[Next() % 10];
      std::string value;
      switch (Next() % 4) {
        case 0:
          value = absl::StrCat("${http.request.", Word(), "}");
          break;
        case 1:
          value = absl::StrCat("https://", Word(), ".example.com/api/v",
                               Next() % 4, "/", Word());
          break;
        case 2:
          value = absl::StrCat(Next() % 100000);
          break;
        default:
          value = absl::StrCat(Word(), " ", Word(), " ", Word());
      }
      absl::StrAppend(&out, "\t<fval name=\"", field, "\"><value>", value,
                      "</value></fval>\n");
    }
    return out + "</entity>\n";
  }
  std::string Store(uint64_t bytes, const std::string& extra = "",
                    bool policy = true) {
    std::string out = absl::StrCat(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entityStoreData xmlns=\"",
        kNs, "\">\n", extra);
    while (out.size() < bytes) out += Entity(policy);
    return out + "</entityStoreData>\n";
  }

 private:
  std::mt19937_64 rng_;
};

std::string ConfigsXml(Words& w, const std::string& id) {
  std::string out =
      absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<configs id=\"",
                   id, "\" timestamp=\"", w.Next() % 1000000000000ULL, "\">\n");
  for (const StoreShape& s : kStores) {
    absl::StrAppend(&out, "  <config name=\"", s.name, "\" type=\"federated\" ",
                    "url=\"federated:file:", s.name, "\"/>\n");
  }
  while (out.size() < 6500) {
    absl::StrAppend(&out, "  <property name=\"", w.Word(), ".", w.Word(),
                    "\" value=\"", w.Next() % 100000, "\"/>\n");
  }
  return out + "</configs>\n";
}

void Checksum(Deployment* d, const std::string& store) {
  d->files[store + ".sha256"] =
      HexOf(DigestBytes(Sha256Of(d->files[store]))) + "\n";
}

// Edits `share` of the entities, removes `removed`, adds `added` (each a
// share of the entity count), at places chosen by `w`.
std::string EditEntities(const std::string& store, Words& w, double share,
                         double added, double removed) {
  std::vector<std::pair<size_t, size_t>> blocks;  // [begin, end)
  for (size_t at = store.find("<entity "); at != std::string::npos;) {
    size_t end = store.find("</entity>", at);
    if (end == std::string::npos) break;
    end += 9;
    if (end < store.size() && store[end] == '\n') ++end;
    blocks.emplace_back(at, end);
    at = store.find("<entity ", end);
  }
  if (blocks.empty()) return store;
  const uint64_t scale = 1000000;
  auto happens = [&](double p) { return w.Next() % scale < p * scale; };
  std::string out = store.substr(0, blocks.front().first);
  for (const auto& [b, e] : blocks) {
    std::string block = store.substr(b, e - b);
    if (happens(removed)) continue;
    if (happens(share)) {
      // A new value in one of its fields.
      std::vector<size_t> values;
      for (size_t v = block.find("<value>"); v != std::string::npos;
           v = block.find("<value>", v + 1)) {
        values.push_back(v + 7);
      }
      if (!values.empty()) {
        size_t v = values[w.Next() % values.size()];
        size_t close = block.find("</value>", v);
        if (close != std::string::npos) {
          block.replace(
              v, close - v,
              absl::StrCat(w.Word(), " ", w.Word(), " ", w.Next() % 1000));
        }
      }
    }
    out += block;
    if (happens(added)) out += w.Entity();
  }
  return out + store.substr(blocks.back().second);
}

bool PlainName(absl::string_view name) {
  return !name.empty() && name.size() <= 128 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                  c == '-' || c == '_' || c == '.';
         });
}

using ZipPtr = std::unique_ptr<zip_t, decltype(&zip_discard)>;
using ZipFilePtr = std::unique_ptr<zip_file_t, decltype(&zip_fclose)>;

absl::Status Fed(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(".fed archive: ", why));
}

// Reads deployments.json as a Struct; an empty one when there is none.
absl::StatusOr<google::protobuf::Struct> ReadDeployments(
    const std::string& path) {
  google::protobuf::Struct doc;
  auto json = ReadFileToString(path);
  if (absl::IsNotFound(json.status())) return doc;
  if (!json.ok()) return json.status();
  auto st = google::protobuf::util::JsonStringToMessage(*json, &doc);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", std::string(st.message())));
  }
  return doc;
}

std::string ArchiveOf(const google::protobuf::Struct& doc,
                      const std::string& instance) {
  auto sd = doc.fields().find("serviceDeployments");
  if (sd == doc.fields().end() || !sd->second.has_struct_value()) return "";
  auto it = sd->second.struct_value().fields().find(instance);
  if (it == sd->second.struct_value().fields().end() ||
      !it->second.has_list_value()) {
    return "";
  }
  std::string archive;
  for (const auto& v : it->second.list_value().values()) {
    if (!v.has_struct_value()) continue;
    auto a = v.struct_value().fields().find("archiveID");
    if (a != v.struct_value().fields().end() && a->second.has_string_value()) {
      archive = a->second.string_value();
    }
  }
  return archive;
}

// The group (by id or name) in the host's topology, and this host's
// instances of it (those deployments.json lists), sorted.
struct HostGroup {
  std::string gw, id;
  std::vector<std::string> instances;
  google::protobuf::Struct deployments;
};
absl::StatusOr<HostGroup> FindGroup(const DeployOptions& o) {
  HostGroup g;
  g.gw = JoinPath(o.host_root, o.gateway_dir);
  const std::string topo_path = g.gw + "/groups/topology.json";
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(topo_path));
  gwmirror::v1::GatewayTopology topology;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (auto st =
          google::protobuf::util::JsonStringToMessage(json, &topology, opts);
      !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(topo_path, ": ", std::string(st.message())));
  }
  ASSIGN_OR_RETURN(g.deployments,
                   ReadDeployments(g.gw + "/groups/deployments.json"));
  auto sd = g.deployments.fields().find("serviceDeployments");
  for (const auto& group : topology.groups()) {
    if (group.id() != o.group && group.name() != o.group) continue;
    if (!PlainName(group.id())) break;
    g.id = group.id();
    for (const auto& s : group.services()) {
      if (s.type() == "gateway" && PlainName(s.id()) &&
          sd != g.deployments.fields().end() &&
          sd->second.struct_value().fields().contains(s.id())) {
        g.instances.push_back(s.id());
      }
    }
  }
  if (g.id.empty()) {
    return absl::NotFoundError(
        absl::StrCat("the topology has no group \"", o.group, "\""));
  }
  std::sort(g.instances.begin(), g.instances.end());
  return g;
}

}  // namespace

Deployment GenerateDeployment(uint64_t seed, uint64_t primary_bytes,
                              const std::string& ext_conns_entities,
                              const std::string& id) {
  Words w(seed * 2654435761u + 17);
  Deployment d;
  d.id = w.Uuid();
  if (!id.empty()) d.id = id;
  for (const StoreShape& s : kStores) {
    const uint64_t size = s.divisor ? primary_bytes / s.divisor : s.fixed;
    const bool connections = std::string(s.name) == "ExtConnsStore.xml";
    d.files[s.name] =
        w.Store(size, connections ? ext_conns_entities : "", !connections);
    Checksum(&d, s.name);
  }
  d.files["configs.xml"] = ConfigsXml(w, d.id);
  return d;
}

Deployment NextDeployment(const Deployment& previous, uint64_t seed) {
  Words w(seed * 2654435761u + 91);
  Deployment d = previous;
  d.id = w.Uuid();
  if (d.files.count("PrimaryStore.xml")) {
    d.files["PrimaryStore.xml"] =
        EditEntities(d.files["PrimaryStore.xml"], w, 0.02, 0.01, 0.005);
    Checksum(&d, "PrimaryStore.xml");
  }
  if (d.files.count("ListenersStore.xml")) {
    // One entity edited in a store of hundreds.
    d.files["ListenersStore.xml"] =
        EditEntities(d.files["ListenersStore.xml"], w, 0.004, 0, 0);
    Checksum(&d, "ListenersStore.xml");
  }
  d.files["configs.xml"] = ConfigsXml(w, d.id);
  return d;
}

absl::StatusOr<Deployment> ReadFed(absl::string_view bytes) {
  // libzip reads no bytes as an empty archive.
  if (bytes.empty()) return Fed("an empty file, not a zip archive");
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* src =
      zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (src == nullptr) {
    std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    return Fed(why);
  }
  ZipPtr zip(zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &error),
             &zip_discard);
  if (zip == nullptr) {
    std::string why = zip_error_strerror(&error);
    zip_source_free(src);
    zip_error_fini(&error);
    return Fed(absl::StrCat("not a zip archive (", why, ")"));
  }
  zip_error_fini(&error);
  const zip_int64_t n = zip_get_num_entries(zip.get(), 0);
  if (n < 0 || static_cast<uint64_t>(n) > kMaxFedFiles) {
    return Fed(absl::StrCat(n, " entries (at most ", kMaxFedFiles, ")"));
  }
  Deployment d;
  std::string manifest;
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(zip.get(), i, 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE)) {
      return Fed(absl::StrCat("entry ", i, " cannot be read"));
    }
    absl::string_view name(st.name);
    if (absl::EndsWith(name, "/")) {
      if (name != "META-INF/") {
        return Fed(absl::StrCat("\"", name, "\" is a folder: a .fed holds ",
                                "its stores at its top level"));
      }
      continue;
    }
    const bool is_manifest = name == "META-INF/MANIFEST.MF";
    if (!is_manifest && !PlainName(name)) {
      return Fed(absl::StrCat("\"", name,
                              "\" is not a file name at the archive's top "
                              "level (a path outside it is refused)"));
    }
    if (!is_manifest && d.files.count(std::string(name))) {
      return Fed(absl::StrCat("\"", name, "\" is in it twice"));
    }
    total += st.size;
    if (st.size > kMaxFedBytes || total > kMaxFedBytes) {
      return Fed(
          absl::StrCat("more than ", kMaxFedBytes >> 20, " MiB uncompressed"));
    }
    ZipFilePtr f(zip_fopen_index(zip.get(), i, 0), &zip_fclose);
    if (f == nullptr) {
      return Fed(absl::StrCat("\"", name, "\" cannot be opened (",
                              zip_strerror(zip.get()), ")"));
    }
    std::string content(st.size, '\0');
    uint64_t got = 0;
    while (got < st.size) {
      zip_int64_t r = zip_fread(f.get(), content.data() + got, st.size - got);
      if (r <= 0) break;
      got += r;
    }
    char extra;
    if (got != st.size || zip_fread(f.get(), &extra, 1) != 0) {
      return Fed(absl::StrCat("\"", name, "\" does not read back whole (",
                              zip_file_strerror(f.get()), ")"));
    }
    if (is_manifest) {
      manifest = std::move(content);
    } else {
      d.files[std::string(name)] = std::move(content);
    }
  }
  if (manifest.empty()) return Fed("no META-INF/MANIFEST.MF");
  for (absl::string_view line : absl::StrSplit(manifest, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "Id:")) {
      d.id = std::string(absl::StripAsciiWhitespace(line));
    }
  }
  if (d.id.empty()) return Fed("META-INF/MANIFEST.MF has no \"Id:\" line");
  if (!PlainName(d.id)) {
    return Fed(absl::StrCat("the Id \"", d.id, "\" is not a folder name"));
  }
  if (d.files.empty()) return Fed("it holds no store");
  return d;
}

absl::StatusOr<Deployment> CurrentDeployment(const DeployOptions& o) {
  ASSIGN_OR_RETURN(HostGroup g, FindGroup(o));
  const std::string archive =
      g.instances.empty() ? "" : ArchiveOf(g.deployments, g.instances.front());
  if (archive.empty() || !PlainName(archive)) {
    return absl::NotFoundError(
        absl::StrCat("group ", g.id, " runs no deployment on this host"));
  }
  Deployment d;
  d.id = archive;
  const std::string dir =
      absl::StrCat(g.gw, "/groups/", g.id, "/conf/", archive);
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(d.files[name], ReadFileToString(dir + "/" + name));
  }
  return d;
}

absl::StatusOr<DeployReport> Deploy(const Deployment& d,
                                    const DeployOptions& o) {
  if (!PlainName(d.id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("deployment id \"", d.id, "\" is not a folder name"));
  }
  for (const auto& [name, content] : d.files) {
    if (!PlainName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("store name \"", name, "\" is not a file name"));
    }
  }
  ASSIGN_OR_RETURN(HostGroup g, FindGroup(o));
  DeployReport report;
  report.group_id = g.id;
  const std::string conf = absl::StrCat(g.gw, "/groups/", g.id, "/conf");
  const std::string folder = absl::StrCat(conf, "/", d.id);
  struct stat st;
  if (lstat(folder.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("group ", g.id, " already has deployment ", d.id));
  }
  // The folder appears whole: written beside, then renamed.
  const std::string partial = absl::StrCat(conf, "/.", d.id, ".partial");
  RETURN_IF_ERROR(RemoveTree(partial));
  RETURN_IF_ERROR(MakeDirs(partial, 0755));
  // The folder is invisible until renamed: each file is written in place
  // and synced, the folder synced once, then renamed.
  auto write = [&](const std::string& path, const std::string& content) {
    UniqueFd fd(
        open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", path));
    RETURN_IF_ERROR(WriteAll(fd.get(), content));
    if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync " + path);
    return absl::OkStatus();
  };
  for (const auto& [name, content] : d.files) {
    absl::Status w = write(partial + "/" + name, content);
    if (!w.ok()) {
      (void)RemoveTree(partial);
      return w;
    }
    report.bytes += content.size();
  }
  if (absl::Status st = FsyncPath(partial); !st.ok()) {
    (void)RemoveTree(partial);
    return st;
  }
  if (rename(partial.c_str(), folder.c_str()) != 0) {
    absl::Status st = ErrnoStatus(errno, absl::StrCat("rename to ", folder));
    (void)RemoveTree(partial);
    return st;
  }
  RETURN_IF_ERROR(FsyncPath(conf));
  if (!g.instances.empty()) {
    report.previous = ArchiveOf(g.deployments, g.instances.front());
  }
  // The instances switch one by one.
  const size_t count =
      o.switch_count < 0 ? g.instances.size()
                         : std::min<size_t>(g.instances.size(), o.switch_count);
  const std::string path = g.gw + "/groups/deployments.json";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) absl::SleepFor(o.switch_interval);
    google::protobuf::Value entry;
    (*entry.mutable_struct_value()->mutable_fields())["archiveID"]
        .set_string_value(d.id);
    google::protobuf::Value list;
    *list.mutable_list_value()->add_values() = entry;
    (*(*g.deployments.mutable_fields())["serviceDeployments"]
          .mutable_struct_value()
          ->mutable_fields())[g.instances[i]] = list;
    std::string json;
    if (auto st =
            google::protobuf::util::MessageToJsonString(g.deployments, &json);
        !st.ok()) {
      return absl::InternalError(std::string(st.message()));
    }
    RETURN_IF_ERROR(WriteFileAtomic(path, json + "\n", 0644));
    report.switched.push_back(g.instances[i]);
  }
  // Only once every instance of the group here runs it (and some do).
  if (o.prune && count > 0 && count == g.instances.size()) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(conf));
    for (const std::string& name : names) {
      const std::string dir = conf + "/" + name;
      if (name == d.id || name[0] == '.' || lstat(dir.c_str(), &st) != 0 ||
          !S_ISDIR(st.st_mode)) {
        continue;
      }
      RETURN_IF_ERROR(RemoveTree(dir));
      report.pruned.push_back(name);
    }
  }
  return report;
}

}  // namespace gwmirror
