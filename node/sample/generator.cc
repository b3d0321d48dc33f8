#include "node/sample/generator.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "node/sample/deployment.h"
#include "node/scanner.h"

namespace gwmirror {
namespace {

struct Shape {
  int groups, instances_per_group, kps_files, ext_jars, instance_jars;
  uint64_t jar_min, jar_max, primary_store, kahadb_log;
  int kahadb_logs, opsdb_files;
};

Shape ShapeOf(const std::string& size) {
  if (size == "large") {
    return {4, 4, 1150, 24, 2, 1 << 20, 5 << 20, 2 << 20, 32 << 20, 2, 6};
  }
  return {1, 2, 120, 4, 1, 48 << 10, 160 << 10, 256 << 10, 1 << 20, 1, 2};
}

class Gen {
 public:
  Gen(std::string host_root, uint64_t seed)
      : host_root_(std::move(host_root)), rng_(seed) {}

  uint64_t Next() { return rng_(); }
  uint64_t Between(uint64_t lo, uint64_t hi) {
    return lo + Next() % (hi - lo + 1);
  }
  std::string Uuid() {
    uint64_t a = Next(), b = Next();
    return absl::StrFormat("%08x-%04x-4%03x-a%03x-%012x", a >> 32,
                           (a >> 16) & 0xffff, a & 0xfff, b >> 52,
                           b & 0xffffffffffffULL);
  }
  std::string Word() {
    static const char* kWords[] = {
        "policy", "filter", "circuit", "listener", "oauth",  "token",
        "client", "route",  "connect", "quota",    "header", "schema",
        "ldap",   "jdbc",   "metrics", "audit",    "trace",  "service"};
    return kWords[Next() % 18];
  }
  std::string Binary(uint64_t n) {
    std::string s(n, '\0');
    for (uint64_t i = 0; i < n; i += 8) {
      uint64_t v = Next();
      memcpy(&s[i], &v, std::min<uint64_t>(8, n - i));
    }
    return s;
  }
  // Entity-store-like XML of about n bytes.
  std::string Xml(uint64_t n) {
    std::string s =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entityStore "
        "xmlns=\"http://www.vordel.com/2005/06/24/entityStore\">\n";
    while (s.size() < n) {
      absl::StrAppend(
          &s, "  <entity type=\"", Word(), "\" entityPK=\"", Next() % 100000000,
          "\">\n    <fval name=\"name\"><value>", Word(), " ", Word(), " ",
          Next() % 1000, "</value></fval>\n    <fval name=\"id\"><value>",
          Uuid(), "</value></fval>\n  </entity>\n");
    }
    s += "</entityStore>\n";
    return s;
  }

  absl::Status Write(const std::string& rel, const std::string& data,
                     int mode = 0644, bool transient = false) {
    std::string full = JoinPath(host_root_, rel);
    RETURN_IF_ERROR(MakeDirs(full.substr(0, full.rfind('/')), 0755));
    UniqueFd fd(
        open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", full));
    RETURN_IF_ERROR(WriteAll(fd.get(), data));
    if (fchmod(fd.get(), mode) != 0) return ErrnoStatus(errno, "chmod");
    // A fixed mtime keeps samples reproducible.
    struct timespec t[2] = {
        {1700000000 + static_cast<time_t>(Next() % 1000000), 0}, {0, 0}};
    t[1] = t[0];
    futimens(fd.get(), t);
    if (transient) {
      ++report.transient_files;
    } else {
      ++report.files;
      report.bytes += data.size();
    }
    return absl::OkStatus();
  }
  absl::Status Link(const std::string& rel, const std::string& target) {
    std::string full = JoinPath(host_root_, rel);
    RETURN_IF_ERROR(MakeDirs(full.substr(0, full.rfind('/')), 0755));
    unlink(full.c_str());
    if (symlink(target.c_str(), full.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("symlink ", full));
    }
    ++report.files;
    return absl::OkStatus();
  }

  SampleReport report;

 private:
  std::string host_root_;
  std::mt19937_64 rng_;
};

std::string HostName(int i) { return absl::StrCat("gw", i, ".example.com"); }

// The connection entities of a sample ExtConnsStore.xml.
std::string ExternalConnectionEntities(bool databases) {
  auto entity = [](const char* type, const char* name, const char* field,
                   const char* url, bool password) {
    return absl::StrCat(
        "  <entity xmlns=\"http://www.vordel.com/2005/06/24/entityStore\" "
        "type=\"",
        type, "\" entityPK=\"", name[0] * 1000 + name[1],
        "\">\n    <fval name=\"name\"><value>", name,
        "</value></fval>\n    <fval name=\"", field, "\"><value>", url,
        "</value></fval>\n",
        password ? "    <fval name=\"password\"><value>c2FtcGxl</value>"
                   "</fval>\n"
                 : "",
        "  </entity>\n");
  };
  std::string out = entity("SMTPServer", "Mail relay", "smtpServer",
                           "${environment.SMTP_HOST}", false);
  if (databases) {
    absl::StrAppend(
        &out,
        entity("DbConnection", "Metrics DB", "url",
               "${environment.METRICS_DB_URL}", true),
        entity("DbConnection", "OAuth token store", "url",
               "${environment.OAUTH_DB_URL}", true),
        entity("LdapDirectory", "Corporate directory", "url",
               "${environment.LDAP_URL}", true),
        entity("DbConnection", "Billing DB", "url",
               "jdbc:oracle:thin:@billing-db.example.com:1521/BILLING", true));
  }
  return out;
}

// An instance's envSettings.props: what its deployment's ${environment.*}
// references resolve to (the databases are host 1's: "localhost" there,
// its name elsewhere), then `filler` as comments.
std::string InstanceEnvSettings(const SampleOptions& o,
                                const std::string& filler) {
  const std::string db_host = o.host_index == 1 ? "localhost" : HostName(1);
  std::string out = absl::StrCat("env.PORT.TRAFFIC=8080\nenv.SMTP_HOST=mail.",
                                 "example.com\n");
  if (o.external_connections) {
    absl::StrAppend(&out, "env.METRICS_DB_URL=jdbc\\:mariadb\\://", db_host,
                    "/metrics\nenv.OAUTH_DB_URL=jdbc:postgresql://", db_host,
                    "/metrics?ssl=false\nenv.LDAP_URL=ldap://", db_host,
                    ":389/ou=people,dc=example,dc=com\n");
  }
  for (absl::string_view line : absl::StrSplit(filler, '\n')) {
    if (!line.empty()) absl::StrAppend(&out, "# ", line, "\n");
  }
  return out;
}

// An init script as the installer writes it, except that it finds its host
// root from its own path and, instead of starting the product (absent from
// a sample), records what it was asked in <host root>/var/log/vshell.log.
std::string VshellScript(const std::string& body, const std::string& gw,
                         const std::string& what) {
  return absl::StrCat(
      "#!/bin/sh\n# Axway API Gateway: ", what,
      "\nROOT=$(cd \"$(dirname \"$0\")/../..\" && pwd)\nVDISTDIR=$ROOT/", gw,
      "\n", body,
      "\nUSER=root\ncase \"$1\" in\n  start|stop|status)\n"
      "    mkdir -p \"$ROOT/var/log\"\n"
      "    echo \"$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) $1 ",
      what,
      "\" >> \"$ROOT/var/log/vshell.log\" ;;\n"
      "  *) echo \"usage: $0 start|stop|status\" >&2; exit 2 ;;\nesac\n");
}

}  // namespace

std::vector<gwmirror::v1::RootConfig> SampleRoots(const std::string& prefix) {
  std::vector<gwmirror::v1::RootConfig> roots;
  auto add = [&](const std::string& path, std::vector<std::string> include) {
    gwmirror::v1::RootConfig r;
    r.set_path(path);
    for (auto& i : include) r.add_include(i);
    roots.push_back(r);
  };
  std::string gw = prefix + "/apigateway";
  add(gw + "/conf", {});
  add(gw + "/groups", {});
  add(gw + "/ext", {});
  add(gw + "/system/conf", {"nodemanager.xml"});
  add(gw + "/messaging-shared", {});
  add(prefix + "/analytics/conf", {});
  add(prefix + "/analytics/ext", {});
  add("etc/init.d", {"vshell-*"});
  return roots;
}

absl::StatusOr<SampleReport> GenerateSample(const std::string& host_root,
                                            const SampleOptions& o) {
  if (o.size != "small" && o.size != "large") {
    return absl::InvalidArgumentError(
        absl::StrCat("sample size \"", o.size, "\": use small or large"));
  }
  if (o.host_index < 1 || o.host_index > o.host_count) {
    return absl::InvalidArgumentError(
        "host_index must be within 1..host_count");
  }
  Shape sh = ShapeOf(o.size);
  Gen g(host_root, o.seed * 1000003 + o.host_index);
  // The topology is the same on every host: derive it from the seed alone.
  Gen topo_rng("", o.seed);
  const std::string gw = o.prefix + "/apigateway";
  const std::string host = HostName(o.host_index);

  // Topology: host-i for every host; group-1 holds the Node Managers.
  std::vector<std::string> hosts_json, nm_json, groups_json;
  for (int h = 1; h <= o.host_count; ++h) {
    hosts_json.push_back(absl::StrFormat("{\"id\":\"host-%d\",\"name\":\"%s\"}",
                                         h, HostName(h)));
    nm_json.push_back(absl::StrFormat(
        "{\"id\":\"nodemanager-%d\",\"name\":\"Node Manager on %s\","
        "\"type\":\"nodemanager\",\"scheme\":\"https\",\"hostID\":\"host-%d\","
        "\"managementPort\":8090,\"tags\":{%s},\"enabled\":true}",
        h, HostName(h), h, h == 1 ? "\"internal_admin_nm\":\"true\"" : ""));
  }
  groups_json.push_back(absl::StrFormat(
      "{\"id\":\"group-1\",\"name\":\"Node Manager Group\",\"tags\":{},"
      "\"services\":[%s]}",
      absl::StrJoin(nm_json, ",")));
  struct Inst {
    int group, index, host;
    std::string group_name, name;
  };
  std::vector<Inst> mine;
  std::vector<std::string> archive_ids;
  int instance_counter = 0;
  for (int gi = 0; gi < sh.groups; ++gi) {
    int group_id = gi + 2;
    std::string gname =
        gi == 0 ? "QuickStart Group" : absl::StrCat("Group ", gi + 1);
    archive_ids.push_back(topo_rng.Uuid());
    std::vector<std::string> svc;
    for (int ii = 1; ii <= sh.instances_per_group; ++ii) {
      ++instance_counter;
      int h = (instance_counter - 1) % o.host_count + 1;
      std::string iname = absl::StrCat("Gateway", ii);
      svc.push_back(absl::StrFormat(
          "{\"id\":\"instance-%d\",\"name\":\"%s\",\"type\":\"gateway\","
          "\"scheme\":\"https\",\"hostID\":\"host-%d\",\"managementPort\":%d,"
          "\"tags\":{},\"enabled\":true}",
          instance_counter, iname, h, 8084 + instance_counter));
      if (h == o.host_index) {
        mine.push_back({group_id, instance_counter, h, gname, iname});
      }
    }
    groups_json.push_back(absl::StrFormat(
        "{\"id\":\"group-%d\",\"name\":\"%s\",\"tags\":{},\"services\":[%s]}",
        group_id, gname, absl::StrJoin(svc, ",")));
  }
  std::string topology = absl::StrFormat(
      "{\"id\":\"%s\",\"version\":2,\"timestamp\":1428938393531,"
      "\"productVersion\":\"%s\",\"hosts\":[%s],\"groups\":[%s],"
      "\"uniqueIdCounters\":{\"NodeManager\":%d,\"Group\":%d,\"Host\":%d,"
      "\"Gateway\":%d}}\n",
      topo_rng.Uuid(), o.product_version, absl::StrJoin(hosts_json, ","),
      absl::StrJoin(groups_json, ","), o.host_count + 1, sh.groups + 2,
      o.host_count + 1, instance_counter + 1);
  RETURN_IF_ERROR(g.Write(gw + "/groups/topology.json", topology));

  // Installed product files (not mirrored): the version marker.
  RETURN_IF_ERROR(g.Write(
      gw + "/system/lib/version.properties",
      absl::StrCat("product.version=", o.product_version, "\n"), 0644, true));

  // Node Manager configuration.
  RETURN_IF_ERROR(g.Write(
      gw + "/conf/envSettings.props",
      absl::StrCat(
          "env.PORT.MANAGEMENT=8090\nenv.HOST=", host,
          "\nenv.METRICS_DB_URL=jdbc:mysql://db.example.com:3306/metrics\n",
          g.Xml(1500))));
  for (const char* f : {"jvm.xml", "userconfig.xml", "apiaudit.xml"}) {
    RETURN_IF_ERROR(g.Write(gw + "/conf/" + f, g.Xml(g.Between(1000, 6000))));
  }
  for (const char* f : {"adminUsers.json", "acl.json", "passwordPolicy.json"}) {
    RETURN_IF_ERROR(g.Write(gw + "/conf/" + f,
                            absl::StrCat("{\"id\":\"", g.Uuid(), "\"}\n"),
                            0640));
  }
  RETURN_IF_ERROR(g.Write(gw + "/conf/managedomain.props", "sslport=8090\n"));
  RETURN_IF_ERROR(
      g.Write(gw + "/conf/openssl.cnf", "[ req ]\ndefault_bits = 2048\n"));
  for (const char* f : {"configs.xml", "PrimaryStore.xml", "UserStore.xml"}) {
    RETURN_IF_ERROR(
        g.Write(gw + "/conf/fed/" + f, g.Xml(g.Between(4000, 40000))));
  }
  RETURN_IF_ERROR(g.Write(gw + "/conf/licenses/gateway.lic", g.Xml(1200)));
  for (int i = 0; i < sh.opsdb_files; ++i) {
    RETURN_IF_ERROR(g.Write(absl::StrCat(gw, "/conf/opsdb.d/opsdb_", i, ".dat"),
                            g.Binary(64 << 10), 0644, true));
  }
  RETURN_IF_ERROR(g.Write(gw + "/system/conf/nodemanager.xml", g.Xml(3000)));
  RETURN_IF_ERROR(g.Write(gw + "/system/conf/other-product-file.xml",
                          g.Xml(500), 0644, true));
  RETURN_IF_ERROR(g.Write(gw + "/logs/audit.log", g.Xml(20000), 0644, true));
  RETURN_IF_ERROR(
      g.Write(gw + "/trace/nodemanager.trc", g.Xml(5000), 0644, true));
  RETURN_IF_ERROR(g.Write(gw + "/events/event.log", g.Xml(2000), 0644, true));
  RETURN_IF_ERROR(g.Write(gw + "/conf/nodemanager.pid", "4242\n", 0644, true));
  for (int j = 0; j < sh.ext_jars; ++j) {
    RETURN_IF_ERROR(g.Write(absl::StrCat(gw, "/ext/lib/custom-", j, ".jar"),
                            g.Binary(g.Between(sh.jar_min, sh.jar_max))));
  }
  // Domain CA on the Admin Node Manager host.
  if (o.host_index == 1) {
    RETURN_IF_ERROR(g.Write(gw + "/groups/certs/domaincert.pem", g.Xml(1400)));
    RETURN_IF_ERROR(
        g.Write(gw + "/groups/certs/index.txt", "V\t300101000000Z\t01\n"));
    RETURN_IF_ERROR(g.Write(gw + "/groups/certs/serial", "02\n"));
    RETURN_IF_ERROR(
        g.Write(gw + "/groups/certs/private/domain.p12", g.Binary(2600), 0600));
    RETURN_IF_ERROR(
        g.Write(gw + "/groups/certs/private/domainkey.pem", g.Xml(1700), 0600));
    RETURN_IF_ERROR(
        g.Write(gw + "/groups/certs/private/temp/req.tmp", "tmp", 0600, true));
  }
  // Groups and instances hosted here.
  std::vector<std::string> deployments;
  for (int gi = 0; gi < sh.groups; ++gi) {
    int group_id = gi + 2;
    bool hosted = std::any_of(mine.begin(), mine.end(), [&](const Inst& i) {
      return i.group == group_id;
    });
    if (!hosted) continue;
    std::string gdir = absl::StrCat(gw, "/groups/group-", group_id);
    std::string conf = absl::StrCat(gdir, "/conf/", archive_ids[gi]);
    RETURN_IF_ERROR(g.Write(gdir + "/conf/group.xml", g.Xml(800)));
    // The same deployment on every host of the group, as a real one is.
    Deployment deployment = GenerateDeployment(
        o.seed * 1000003 + group_id, sh.primary_store,
        ExternalConnectionEntities(o.external_connections), archive_ids[gi]);
    for (const auto& [name, content] : deployment.files) {
      RETURN_IF_ERROR(g.Write(conf + "/" + name, content));
    }
  }
  for (const Inst& in : mine) {
    std::string idir =
        absl::StrCat(gw, "/groups/group-", in.group, "/instance-", in.index);
    for (const char* f : {"envSettings.props", "jvm.xml", "service.xml",
                          "certs.xml", "waf.xml"}) {
      std::string content = g.Xml(g.Between(600, 4000));
      if (std::string(f) == "envSettings.props") {
        content = InstanceEnvSettings(o, content);
      }
      RETURN_IF_ERROR(g.Write(idir + "/conf/" + f, content));
    }
    for (int k = 0; k < sh.kps_files; ++k) {
      RETURN_IF_ERROR(g.Write(
          absl::StrFormat("%s/conf/kps/file/%s/%05d.json", idir,
                          k % 2 ? "Apps" : "Keys", k),
          absl::StrCat("{\"id\":\"", g.Uuid(), "\",\"name\":\"", g.Word(), " ",
                       g.Word(), "\",\"enabled\":", k % 3 ? "true" : "false",
                       "}\n")));
    }
    for (int j = 0; j < sh.instance_jars; ++j) {
      RETURN_IF_ERROR(
          g.Write(absl::StrCat(idir, "/ext/lib/instance-", j, ".jar"),
                  g.Binary(g.Between(sh.jar_min / 2, sh.jar_min))));
    }
    RETURN_IF_ERROR(
        g.Write(idir + "/conf/opsdb.d/ops.dat", g.Binary(8192), 0644, true));
    RETURN_IF_ERROR(
        g.Write(idir + "/logs/" + in.name + ".log", g.Xml(3000), 0644, true));
    RETURN_IF_ERROR(
        g.Write(idir + "/trace/" + in.name + ".trc", g.Xml(3000), 0644, true));
    RETURN_IF_ERROR(
        g.Write(idir + "/" + in.name + ".pid", "777\n", 0644, true));
    std::string group_dash = in.group_name;
    std::replace(group_dash.begin(), group_dash.end(), ' ', '-');
    RETURN_IF_ERROR(g.Link(
        absl::StrCat(gw, "/groups/topologylinks/", group_dash, "-", in.name),
        absl::StrCat("group-", in.group, "/instance-", in.index)));
    RETURN_IF_ERROR(g.Write(
        absl::StrCat("etc/init.d/vshell-", group_dash, "-", in.name),
        VshellScript(
            absl::StrCat("VINSTDIR=$ROOT/", idir,
                         "\n# real: $VDISTDIR/posix/bin/startinstance -g \"",
                         in.group_name, "\" -n \"", in.name, "\" -d"),
            gw, absl::StrCat("instance ", in.group_name, "/", in.name)),
        0755));
    deployments.push_back(
        absl::StrFormat("\"instance-%d\":[{\"archiveID\":\"%s\"}]", in.index,
                        archive_ids[in.group - 2]));
  }
  RETURN_IF_ERROR(
      g.Write(gw + "/groups/deployments.json",
              absl::StrCat("{\"serviceDeployments\":{",
                           absl::StrJoin(deployments, ","), "}}\n")));
  RETURN_IF_ERROR(
      g.Write(absl::StrCat("etc/init.d/vshell-Node-Manager-on-", host),
              VshellScript("# real: $VDISTDIR/posix/bin/nodemanager -d", gw,
                           absl::StrCat("node-manager ", host)),
              0755));
  RETURN_IF_ERROR(
      g.Write("etc/init.d/cron", "#!/bin/sh\n# not ours\n", 0755, true));
  // Embedded ActiveMQ shared directory.
  for (int k = 1; k <= sh.kahadb_logs; ++k) {
    RETURN_IF_ERROR(
        g.Write(absl::StrCat(gw, "/messaging-shared/kahadb/db-", k, ".log"),
                g.Binary(sh.kahadb_log)));
  }
  RETURN_IF_ERROR(
      g.Write(gw + "/messaging-shared/kahadb/db.data", g.Binary(64 << 10)));
  RETURN_IF_ERROR(
      g.Write(gw + "/messaging-shared/kahadb/db.redo", g.Binary(8 << 10)));
  RETURN_IF_ERROR(
      g.Write(gw + "/messaging-shared/kahadb/broker.lock", "", 0644, true));
  // Analytics.
  RETURN_IF_ERROR(
      g.Write(o.prefix + "/analytics/conf/analytics.xml", g.Xml(5000)));
  RETURN_IF_ERROR(
      g.Write(o.prefix + "/analytics/conf/envSettings.props",
              "env.METRICS_DB_URL=jdbc:mysql://db.example.com:3306/metrics\n"));
  RETURN_IF_ERROR(g.Write(o.prefix + "/analytics/ext/lib/mysql-connector.jar",
                          g.Binary(sh.jar_min)));
  return g.report;
}

absl::StatusOr<ChangeSetReport> ApplyChangeSet(const std::string& host_root,
                                               const std::string& prefix,
                                               uint64_t seed, double fraction,
                                               int adds, int deletes,
                                               int chmods) {
  google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> roots;
  for (auto& r : SampleRoots(prefix)) *roots.Add() = r;
  ASSIGN_OR_RETURN(ScanResult scan, ScanMirrorSet(host_root, roots));
  std::vector<std::string> files;
  for (const Entry& e : scan.manifest.entries()) {
    if (e.type() == gwmirror::v1::ENTRY_TYPE_FILE) files.push_back(e.path());
  }
  Gen g(host_root, seed);
  for (size_t i = files.size(); i > 1; --i) {
    std::swap(files[i - 1], files[g.Next() % i]);
  }
  ChangeSetReport rep;
  // The gateway's own bookkeeping (topology, deployments) is only ever
  // rewritten whole by the product, never edited or lost in passing: a
  // change set leaves it alone.
  size_t next = 0;
  auto skip_bookkeeping = [&] {
    while (next < files.size() &&
           (absl::EndsWith(files[next], "/groups/topology.json") ||
            absl::EndsWith(files[next], "/groups/deployments.json"))) {
      ++next;
    }
    return next < files.size();
  };
  size_t edits = static_cast<size_t>(files.size() * fraction);
  for (size_t i = 0; i < edits && skip_bookkeeping(); ++i, ++next) {
    std::string full = JoinPath(host_root, files[next]);
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(full));
    std::string patch = absl::StrCat("<!-- edit ", g.Next(), " -->\n");
    size_t at = data.empty() ? 0 : g.Next() % data.size();
    data.insert(at, patch);
    struct stat st;
    stat(full.c_str(), &st);
    RETURN_IF_ERROR(
        g.Write(JoinPath("", files[next]), data, st.st_mode & 07777));
    ++rep.edited;
    rep.changed_bytes += data.size();
  }
  for (int i = 0; i < deletes && skip_bookkeeping(); ++i, ++next) {
    if (unlink(JoinPath(host_root, files[next]).c_str()) != 0) {
      return ErrnoStatus(errno, "delete");
    }
    ++rep.deleted;
  }
  for (int i = 0; i < chmods && skip_bookkeeping(); ++i, ++next) {
    if (chmod(JoinPath(host_root, files[next]).c_str(), 0600) != 0) {
      return ErrnoStatus(errno, "chmod");
    }
    ++rep.chmodded;
  }
  for (int i = 0; i < adds; ++i) {
    std::string data = g.Xml(g.Between(200, 20000));
    RETURN_IF_ERROR(
        g.Write(absl::StrFormat("%s/apigateway/conf/fed/added-%d-%d.xml",
                                prefix, seed, i),
                data));
    ++rep.added;
    rep.changed_bytes += data.size();
  }
  return rep;
}

}  // namespace gwmirror

namespace gwmirror {

absl::Status GenerateDumpPair(const std::string& base,
                              const std::string& changed, uint64_t mib,
                              uint64_t seed) {
  UniqueFd a(
      open(base.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd b(
      open(changed.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!a.valid() || !b.valid()) return ErrnoStatus(errno, "create dump");
  std::mt19937_64 rng(seed);
  std::string header =
      "-- gwmirror sample metrics dump\nSET NAMES utf8mb4;\n"
      "CREATE TABLE `metrics_data` (`id` bigint PRIMARY KEY, `ts` bigint, "
      "`metric` varchar(64), `value` double, `host` varchar(64));\n";
  std::string bufa = header, bufb = header;
  const uint64_t target = mib << 20;
  uint64_t written = 0;
  for (uint64_t id = 1; written < target; ++id) {
    uint64_t r = rng();
    std::string row = absl::StrFormat(
        "INSERT INTO `metrics_data` VALUES "
        "(%d,%d,'%s.%d',%d.%03d,'gw%d.example.com');\n",
        id, 1700000000000ULL + id * 1000, r % 2 ? "latency" : "requests",
        r % 97, (r >> 8) % 100000, (r >> 24) % 1000, 1 + (r >> 40) % 4);
    bufa += row;
    uint64_t fate = (r >> 48) % 10000;
    if (fate < 100) {  // 1 %: edited in place.
      size_t v = row.rfind(",'gw");
      row.replace(v - 3, 3, absl::StrFormat("%03d", (r >> 12) % 1000));
      bufb += row;
    } else if (fate < 105) {  // 0.05 %: deleted.
    } else if (fate < 110) {  // 0.05 %: a new row inserted before it.
      bufb += absl::StrFormat(
          "INSERT INTO `metrics_data` VALUES (%d,%d,'inserted',1.0,'gw9');\n",
          id + 1000000000ULL, 1700000000000ULL + id);
      bufb += row;
    } else {
      bufb += row;
    }
    written += row.size();
    if (bufa.size() > (4 << 20)) {
      RETURN_IF_ERROR(WriteAll(a.get(), bufa));
      RETURN_IF_ERROR(WriteAll(b.get(), bufb));
      bufa.clear();
      bufb.clear();
    }
  }
  RETURN_IF_ERROR(WriteAll(a.get(), bufa));
  return WriteAll(b.get(), bufb);
}

}  // namespace gwmirror
