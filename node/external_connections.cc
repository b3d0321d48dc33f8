#include "node/external_connections.h"

#include <expat.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/connection_url.h"
#include "common/fd.h"

namespace gwmirror {
namespace {

constexpr char kNamespace[] = "http://www.vordel.com/2005/06/24/entityStore";
constexpr size_t kMaxStore = 64 << 20;
constexpr size_t kMaxEntities = 100'000;
constexpr size_t kMaxValue = 64 << 10;
constexpr size_t kMaxRows = 1000;
// A resolved address longer than this is not one.
constexpr size_t kMaxResolved = 4096;
constexpr uint64_t kMaxProps = 1 << 20;

using Parser = std::unique_ptr<XML_ParserStruct, decltype(&XML_ParserFree)>;

struct ParseState {
  XML_Parser parser = nullptr;
  std::vector<StoreEntity> entities;
  bool in_entity = false;
  std::string fval;       // The <fval>'s name while inside one.
  bool in_value = false;  // Inside the fval's first <value>.
  bool seen_value = false;
  std::string text;
  std::string error;  // Set before the parser is stopped.
};

// "ns|local" (expat's namespace form) -> local, when ns is the entity
// store's or absent; "" for an element of another namespace.
absl::string_view Local(const XML_Char* name) {
  absl::string_view n(name);
  size_t bar = n.find('|');
  if (bar == absl::string_view::npos) return n;
  if (n.substr(0, bar) != kNamespace) return "";
  return n.substr(bar + 1);
}

const XML_Char* Attribute(const XML_Char** attrs, absl::string_view name) {
  for (int i = 0; attrs[i] != nullptr; i += 2) {
    if (Local(attrs[i]) == name) return attrs[i + 1];
  }
  return nullptr;
}

void Stop(ParseState* s, std::string why) {
  s->error = std::move(why);
  XML_StopParser(s->parser, XML_FALSE);
}

void XMLCALL Start(void* data, const XML_Char* name, const XML_Char** attrs) {
  auto* s = static_cast<ParseState*>(data);
  absl::string_view local = Local(name);
  if (local == "entity") {
    if (s->in_entity) return Stop(s, "an <entity> inside an <entity>");
    if (s->entities.size() >= kMaxEntities) {
      return Stop(s, absl::StrCat("more than ", kMaxEntities, " entities"));
    }
    const XML_Char* type = Attribute(attrs, "type");
    s->entities.push_back(StoreEntity{type != nullptr ? type : "", {}});
    s->in_entity = true;
  } else if (local == "fval" && s->in_entity) {
    const XML_Char* n = Attribute(attrs, "name");
    s->fval = n != nullptr ? n : "";
    s->seen_value = false;
  } else if (local == "value" && !s->fval.empty() && !s->seen_value) {
    s->in_value = true;
    s->text.clear();
  }
}

void XMLCALL End(void* data, const XML_Char* name) {
  auto* s = static_cast<ParseState*>(data);
  absl::string_view local = Local(name);
  if (local == "entity") {
    s->in_entity = false;
    s->fval.clear();
  } else if (local == "fval") {
    s->fval.clear();
  } else if (local == "value" && s->in_value) {
    s->in_value = false;
    s->seen_value = true;
    s->entities.back().fields.emplace(s->fval, std::move(s->text));
    s->text.clear();
  }
}

void XMLCALL Text(void* data, const XML_Char* text, int len) {
  auto* s = static_cast<ParseState*>(data);
  if (!s->in_value) return;
  if (s->text.size() + len > kMaxValue) {
    return Stop(s, absl::StrCat("a value of more than ", kMaxValue,
                                " bytes in field \"", s->fval, "\""));
  }
  s->text.append(text, len);
}

void XMLCALL EntityDecl(void* data, const XML_Char* name, int, const XML_Char*,
                        int, const XML_Char*, const XML_Char*, const XML_Char*,
                        const XML_Char*) {
  Stop(static_cast<ParseState*>(data),
       absl::StrCat("an entity declaration (", name,
                    "): entity stores declare none"));
}

// The address a connection entity names: its URL field, else host and
// port as scheme://host:port; "" when it names none.
std::string AddressOf(const StoreEntity& e) {
  for (const char* f : {"url", "URL", "providerURL", "providerUrl",
                        "connectionUrl", "connectionURL"}) {
    auto it = e.fields.find(f);
    if (it != e.fields.end() && !it->second.empty()) return it->second;
  }
  for (const char* f : {"host", "smtpServer", "hostname", "server"}) {
    auto it = e.fields.find(f);
    if (it == e.fields.end() || it->second.empty()) continue;
    std::string scheme = absl::AsciiStrToLower(e.type);
    if (absl::StrContains(scheme, "smtp")) scheme = "smtp";
    if (absl::StrContains(scheme, "radius")) scheme = "radius";
    auto port = e.fields.find("port");
    return absl::StrCat(scheme, "://", it->second,
                        port != e.fields.end() && !port->second.empty()
                            ? absl::StrCat(":", port->second)
                            : "");
  }
  return "";
}

// Java properties escapes ("jdbc\:mysql\://h" -> "jdbc:mysql://h").
std::string Unescape(absl::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      char c = v[++i];
      out.push_back(c == 't' ? '\t' : c == 'n' ? '\n' : c);
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

using SharedEntities = std::shared_ptr<const std::vector<StoreEntity>>;

using Identity = std::tuple<dev_t, ino_t, off_t, int64_t, int64_t>;

// A file's identity for the caches here; nullopt when it cannot be stat'ed.
// `*recent` is set when it was modified in the last 2 s: file times move in
// clock ticks, so a rewrite of the same size within one tick would keep its
// identity, and such a file is read again rather than taken from a cache.
std::optional<Identity> IdentityOf(const std::string& path, bool* recent) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  const absl::Time mtime = absl::TimeFromTimespec(st.st_mtim);
  if (absl::Now() - mtime < absl::Seconds(2)) *recent = true;
  return std::make_tuple(st.st_dev, st.st_ino, st.st_size,
                         static_cast<int64_t>(st.st_mtim.tv_sec),
                         static_cast<int64_t>(st.st_mtim.tv_nsec));
}

struct CacheEntry {
  Identity identity;
  // Shared, so a heartbeat that finds the store unchanged copies nothing.
  absl::StatusOr<SharedEntities> entities;
};

absl::Mutex cache_mu;
std::map<std::string, CacheEntry>& Cache()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_mu) {
  static auto* cache = new std::map<std::string, CacheEntry>;
  return *cache;
}

// The store at `path`, parsed (NOT_FOUND when there is none).
absl::StatusOr<SharedEntities> ReadStore(const std::string& path) {
  bool recent = false;
  const std::optional<Identity> identity = IdentityOf(path, &recent);
  if (!identity) return ErrnoStatus(errno, path);
  if (!recent) {
    absl::MutexLock l(&cache_mu);
    auto it = Cache().find(path);
    if (it != Cache().end() && it->second.identity == *identity) {
      return it->second.entities;
    }
  }
  // A FIFO, a device or a store too large is refused without reading it.
  absl::StatusOr<SharedEntities> entities;
  if (auto xml = ReadRegularFile(path, kMaxStore); !xml.ok()) {
    entities = xml.status();
  } else if (auto parsed = ParseEntityStore(*xml); !parsed.ok()) {
    entities = absl::InvalidArgumentError(
        absl::StrCat(path, ": ", parsed.status().message()));
  } else {
    entities =
        std::make_shared<const std::vector<StoreEntity>>(*std::move(parsed));
  }
  if (recent) return entities;
  absl::MutexLock l(&cache_mu);
  if (Cache().size() >= 64) Cache().clear();
  Cache()[path] = CacheEntry{*identity, entities};
  return entities;
}

}  // namespace

absl::StatusOr<std::vector<StoreEntity>> ParseEntityStore(
    absl::string_view xml) {
  if (xml.size() > kMaxStore) {
    return absl::InvalidArgumentError(
        absl::StrCat("an entity store of ", xml.size(), " bytes (at most ",
                     kMaxStore >> 20, " MiB)"));
  }
  Parser parser(XML_ParserCreateNS(nullptr, '|'), &XML_ParserFree);
  if (parser == nullptr)
    return absl::ResourceExhaustedError("expat: no memory");
  ParseState s;
  s.parser = parser.get();
  XML_SetUserData(parser.get(), &s);
  XML_SetElementHandler(parser.get(), Start, End);
  XML_SetCharacterDataHandler(parser.get(), Text);
  XML_SetEntityDeclHandler(parser.get(), EntityDecl);
  // Feed in slices: expat takes an int length.
  constexpr size_t kSlice = 1 << 20;
  size_t at = 0;
  do {
    const size_t n = std::min(kSlice, xml.size() - at);
    const bool last = at + n == xml.size();
    if (XML_Parse(parser.get(), xml.data() + at, static_cast<int>(n),
                  last ? XML_TRUE : XML_FALSE) != XML_STATUS_OK) {
      std::string why = !s.error.empty()
                            ? s.error
                            : XML_ErrorString(XML_GetErrorCode(parser.get()));
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", XML_GetCurrentLineNumber(parser.get()), ": ", why));
    }
    at += n;
  } while (at < xml.size());
  return std::move(s.entities);
}

void EnvSettings::Add(absl::string_view props, const std::string& source) {
  sources_.push_back(source);
  for (absl::string_view line : absl::StrSplit(props, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == '!') continue;
    size_t sep = line.find_first_of("=:");
    if (sep == absl::string_view::npos) continue;
    absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, sep));
    if (!absl::ConsumePrefix(&key, "env.")) continue;
    values_[std::string(key)] =
        Unescape(absl::StripAsciiWhitespace(line.substr(sep + 1)));
  }
}

absl::StatusOr<std::string> EnvSettings::Resolve(
    absl::string_view value) const {
  std::string out;
  constexpr absl::string_view kOpen = "${environment.";
  while (true) {
    size_t open = value.find(kOpen);
    if (open == absl::string_view::npos) break;
    size_t close = value.find('}', open);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("an unclosed \"", kOpen, "\""));
    }
    std::string key(
        value.substr(open + kOpen.size(), close - open - kOpen.size()));
    auto it = values_.find(key);
    if (it == values_.end()) {
      return absl::NotFoundError(
          absl::StrCat("${environment.", key, "} is set in none of ",
                       sources_.empty() ? "(no envSettings.props)"
                                        : absl::StrJoin(sources_, ", ")));
    }
    absl::StrAppend(&out, value.substr(0, open), it->second);
    value.remove_prefix(close + 1);
    if (out.size() > kMaxResolved) {
      return absl::InvalidArgumentError(
          absl::StrCat("resolves to more than ", kMaxResolved, " bytes"));
    }
  }
  absl::StrAppend(&out, value);
  return out;
}

namespace {

// The files one instance's rows are read from: its archive's store, then
// the envSettings.props of the gateway, the group and the instance.
std::array<std::string, 4> InputsOf(const std::string& gateway_dir,
                                    const std::string& group,
                                    const std::string& archive,
                                    const std::string& instance) {
  const std::string group_dir = absl::StrCat(gateway_dir, "/groups/", group);
  return {absl::StrCat(group_dir, "/conf/", archive, "/ExtConnsStore.xml"),
          gateway_dir + "/conf/envSettings.props",
          group_dir + "/conf/envSettings.props",
          absl::StrCat(group_dir, "/", instance, "/conf/envSettings.props")};
}

// One instance's rows, read now (`instances` not yet set).
std::vector<gwmirror::v1::ExternalConnection> ReadRows(
    const std::array<std::string, 4>& inputs, const std::string& group,
    const std::string& archive) {
  std::vector<gwmirror::v1::ExternalConnection> rows;
  gwmirror::v1::ExternalConnection base;
  base.set_group(group);
  base.set_archive(archive);
  auto entities = ReadStore(inputs[0]);
  if (absl::IsNotFound(entities.status())) return rows;
  if (!entities.ok()) {
    base.set_name("(ExtConnsStore.xml)");
    base.set_type("EntityStore");
    base.set_store_unreadable(true);
    base.set_problem(std::string(entities.status().message()));
    rows.push_back(std::move(base));
    return rows;
  }
  EnvSettings env;
  for (size_t i = 1; i < inputs.size(); ++i) {
    if (auto text = ReadRegularFile(inputs[i], kMaxProps); text.ok()) {
      env.Add(*text, inputs[i]);
    }
  }
  for (const StoreEntity& e : **entities) {
    const std::string address = AddressOf(e);
    if (address.empty() && !ConnectionHoldsState(e.type)) continue;
    if (address.empty() && e.fields.find("name") == e.fields.end()) continue;
    gwmirror::v1::ExternalConnection c = base;
    auto name = e.fields.find("name");
    c.set_name(name != e.fields.end() ? name->second : "(unnamed)");
    c.set_type(e.type);
    for (const auto& [field, value] : e.fields) {
      if (absl::StrContains(absl::AsciiStrToLower(field), "password") &&
          !value.empty()) {
        c.set_has_password(true);
      }
    }
    if (address.empty()) {
      c.set_problem("names no URL or host");
    } else if (auto url = env.Resolve(address); !url.ok()) {
      c.set_problem(std::string(url.status().message()));
    } else if (auto e = ParseConnectionUrl(*url); !e.ok()) {
      c.set_problem(std::string(e.status().message()));
    } else {
      c.set_url(CanonicalUrl(*e));
    }
    rows.push_back(std::move(c));
  }
  return rows;
}

struct RowsEntry {
  std::array<std::optional<Identity>, 4> identities;
  std::shared_ptr<const std::vector<gwmirror::v1::ExternalConnection>> rows;
};

absl::Mutex rows_mu;
std::map<std::string, RowsEntry>& RowsCache()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(rows_mu) {
  static auto* cache = new std::map<std::string, RowsEntry>;
  return *cache;
}

// One instance's rows, read again only when one of its inputs changed
// (every heartbeat asks: resolving and parsing the URLs of 16 instances
// was a tenth of a one-file cut's CPU on the source).
std::shared_ptr<const std::vector<gwmirror::v1::ExternalConnection>> RowsOf(
    const std::string& gateway_dir, const std::string& group,
    const std::string& archive, const std::string& instance) {
  const auto inputs = InputsOf(gateway_dir, group, archive, instance);
  std::array<std::optional<Identity>, 4> ids;
  bool recent = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ids[i] = IdentityOf(inputs[i], &recent);
  }
  const std::string key = absl::StrCat(inputs[0], "\n", instance);
  if (!recent) {
    absl::MutexLock l(&rows_mu);
    auto it = RowsCache().find(key);
    if (it != RowsCache().end() && it->second.identities == ids) {
      return it->second.rows;
    }
  }
  auto rows =
      std::make_shared<const std::vector<gwmirror::v1::ExternalConnection>>(
          ReadRows(inputs, group, archive));
  if (recent) return rows;
  absl::MutexLock l(&rows_mu);
  if (RowsCache().size() >= 256) RowsCache().clear();
  RowsCache()[key] = RowsEntry{ids, rows};
  return rows;
}

}  // namespace

std::vector<gwmirror::v1::ExternalConnection> ReadExternalConnections(
    const std::string& gateway_dir, const gwmirror::v1::TopologyReport& r) {
  std::map<std::string, std::string> group_of;  // Service id -> group id.
  for (const auto& g : r.topology().groups()) {
    for (const auto& s : g.services()) group_of[s.id()] = g.id();
  }
  std::vector<gwmirror::v1::ExternalConnection> out;
  // Rows by what they say (instances running the same share one), at most
  // kMaxRows: a report must stay small enough for every heartbeat.
  std::map<std::tuple<std::string, std::string, std::string, std::string,
                      std::string, std::string, bool>,
           size_t>
      index;
  bool truncated = false;
  auto add = [&](gwmirror::v1::ExternalConnection c,
                 const std::string& instance) {
    auto key = std::make_tuple(c.group(), c.archive(), c.name(), c.type(),
                               c.url(), c.problem(), c.has_password());
    if (auto it = index.find(key); it != index.end()) {
      out[it->second].add_instances(instance);
      return;
    }
    if (out.size() >= kMaxRows) {
      truncated = true;
      return;
    }
    c.add_instances(instance);
    index.emplace(std::move(key), out.size());
    out.push_back(std::move(c));
  };
  // Sorted, so rows come out in the same order every time.
  std::map<std::string, std::string> deployments(r.deployments().begin(),
                                                 r.deployments().end());
  for (const auto& [instance, archive] : deployments) {
    auto g = group_of.find(instance);
    // An archive id or instance id that would leave its folder is not one.
    if (g == group_of.end() || archive.empty() ||
        archive.find('/') != std::string::npos || archive[0] == '.' ||
        instance.find('/') != std::string::npos || instance[0] == '.' ||
        g->second.find('/') != std::string::npos || g->second[0] == '.') {
      continue;
    }
    const auto rows = RowsOf(gateway_dir, g->second, archive, instance);
    for (const auto& c : *rows) add(c, instance);
  }
  if (truncated) {
    gwmirror::v1::ExternalConnection c;
    c.set_name("(ExtConnsStore.xml)");
    c.set_type("EntityStore");
    c.set_store_unreadable(true);
    c.set_problem(absl::StrCat("more than ", kMaxRows,
                               " connections: the rest are not listed"));
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace gwmirror
