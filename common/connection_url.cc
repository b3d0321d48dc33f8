#include "common/connection_url.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

// URLs longer than this are refused: no real connection string is.
constexpr size_t kMaxUrl = 4096;

}  // namespace

uint32_t DefaultPortOf(absl::string_view kind) {
  if (kind == "mariadb") return 3306;
  if (kind == "postgresql") return 5432;
  if (kind == "oracle") return 1521;
  if (kind == "sqlserver") return 1433;
  if (kind == "db2") return 50000;
  if (kind == "ldap") return 389;
  return 0;
}

bool ConnectionHoldsState(absl::string_view entity_type) {
  std::string t = absl::AsciiStrToLower(entity_type);
  return t == "dbconnection" || t == "ldapdirectory" ||
         (absl::StartsWith(t, "jms") && absl::StrContains(t, "connection")) ||
         absl::StrContains(t, "cassandra");
}

namespace {

// The part of a URL an error may show: its scheme ("jdbc:mysql:",
// "ldap:"), never what follows (a user, a password, parameters).
std::string SchemeOf(absl::string_view url) {
  size_t end = url.find(':');
  if (absl::StartsWithIgnoreCase(url, "jdbc:")) end = url.find(':', 5);
  if (end == absl::string_view::npos || end > 40) return "";
  std::string scheme(url.substr(0, end + 1));
  for (char c : scheme) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != ':' &&
        c != '+' && c != '-' && c != '.') {
      return "";
    }
  }
  return scheme;
}

absl::Status Bad(absl::string_view url, absl::string_view why) {
  const std::string scheme = SchemeOf(url);
  return absl::InvalidArgumentError(absl::StrCat(
      "connection URL ",
      scheme.empty() ? "" : absl::StrCat("(", scheme, "...) "), why));
}

std::string PercentDecode(absl::string_view s) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = absl::ascii_tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const int hi = i + 2 < s.size() ? hex(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
    if (s[i] == '%' && hi >= 0 && lo >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A host name or address: nothing a URL uses as a separator.
absl::Status CheckHost(absl::string_view url, const std::string& host) {
  if (host.empty()) return Bad(url, "no host");
  if (host.find_first_of(" /?#@()[],;=\\") != std::string::npos ||
      host.size() > 255) {
    return Bad(url, "a host that is not a host name");
  }
  return absl::OkStatus();
}

// "h", "h:5432", "[::1]:5432", "user:pw@h:1" into host and port (0: none).
absl::Status HostPort(absl::string_view url, absl::string_view in,
                      std::string* host, uint32_t* port) {
  if (size_t at = in.rfind('@'); at != absl::string_view::npos) {
    in.remove_prefix(at + 1);
  }
  absl::string_view port_text;
  if (absl::ConsumePrefix(&in, "[")) {
    size_t close = in.find(']');
    if (close == absl::string_view::npos) return Bad(url, "unclosed '['");
    *host = std::string(in.substr(0, close));
    absl::string_view rest = in.substr(close + 1);
    if (!rest.empty() && !absl::ConsumePrefix(&rest, ":")) {
      return Bad(url, "text after ']' that is not a port");
    }
    port_text = rest;
  } else {
    size_t colon = in.rfind(':');
    *host = std::string(in.substr(0, colon));
    if (colon != absl::string_view::npos) port_text = in.substr(colon + 1);
  }
  // A SQL Server named instance ("h\SQLEXPRESS") is on host h.
  if (size_t slash = host->find('\\'); slash != std::string::npos) {
    host->resize(slash);
  }
  absl::AsciiStrToLower(host);
  RETURN_IF_ERROR(CheckHost(url, *host));
  *port = 0;
  if (!port_text.empty() &&
      (!absl::SimpleAtoi(port_text, port) || *port == 0 || *port > 65535)) {
    return Bad(url, absl::StrCat("\"", port_text, "\" is not a port"));
  }
  return absl::OkStatus();
}

// "//h1:1,h2/db?x" (the authority and path of a hierarchical URL) into
// hosts, port and the path up to the first of `stops`.
absl::Status Authority(absl::string_view url, absl::string_view rest,
                       absl::string_view stops, ConnectionEndpoint* e) {
  if (!absl::ConsumePrefix(&rest, "//")) return Bad(url, "no \"//\" host part");
  size_t end = rest.find_first_of("/?;#");
  absl::string_view authority = rest.substr(0, end);
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  for (absl::string_view part : absl::StrSplit(authority, ',')) {
    std::string host;
    uint32_t port = 0;
    RETURN_IF_ERROR(HostPort(url, part, &host, &port));
    e->hosts.push_back(std::move(host));
    if (e->port == 0) e->port = port;
  }
  if (end != absl::string_view::npos && rest[end] == '/') {
    absl::string_view path = rest.substr(end + 1);
    path = path.substr(0, path.find_first_of(stops));
    e->database = PercentDecode(path);
  }
  return absl::OkStatus();
}

// Oracle's "@h:1521/svc", "@h:1521:SID", "@//h/svc", "@h" and TNS
// descriptors "@(DESCRIPTION=(ADDRESS=(HOST=h)(PORT=1521))(CONNECT_DATA=
// (SERVICE_NAME=svc)))".
absl::Status Oracle(absl::string_view url, absl::string_view rest,
                    ConnectionEndpoint* e) {
  // The last '@': a password may hold one ("user/p@ss@host").
  size_t at = rest.rfind('@');
  if (at == absl::string_view::npos) return Bad(url, "no '@' before the host");
  rest.remove_prefix(at + 1);
  rest = absl::StripAsciiWhitespace(rest);
  if (absl::StartsWith(rest, "(")) {
    std::string upper = absl::AsciiStrToUpper(rest);
    std::string compact;
    for (char c : upper) {
      if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
        compact.push_back(c);
      }
    }
    auto values = [&](absl::string_view key) {
      std::vector<std::string> out;
      const std::string needle = absl::StrCat("(", key, "=");
      for (size_t p = compact.find(needle); p != std::string::npos;
           p = compact.find(needle, p + 1)) {
        size_t from = p + needle.size();
        size_t to = compact.find(')', from);
        if (to == std::string::npos) break;
        out.push_back(compact.substr(from, to - from));
      }
      return out;
    };
    for (std::string host : values("HOST")) {
      if (host.empty()) return Bad(url, "an empty HOST=");
      RETURN_IF_ERROR(CheckHost(url, host));
      e->hosts.push_back(absl::AsciiStrToLower(host));
    }
    if (e->hosts.empty()) return Bad(url, "a descriptor with no HOST=");
    if (auto ports = values("PORT"); !ports.empty()) {
      if (!absl::SimpleAtoi(ports[0], &e->port) || e->port == 0 ||
          e->port > 65535) {
        return Bad(url, absl::StrCat("\"", ports[0], "\" is not a port"));
      }
    }
    auto service = values("SERVICE_NAME");
    if (service.empty()) service = values("SID");
    if (!service.empty()) e->database = service[0];
    return absl::OkStatus();
  }
  absl::ConsumePrefix(&rest, "//");
  size_t slash = rest.find('/');
  absl::string_view hostport = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    e->database = std::string(rest.substr(slash + 1));
    e->database = e->database.substr(0, e->database.find_first_of("?:"));
  } else if (std::count(hostport.begin(), hostport.end(), ':') == 2) {
    // h:port:SID
    size_t last = hostport.rfind(':');
    e->database = std::string(hostport.substr(last + 1));
    hostport = hostport.substr(0, last);
  }
  std::string host;
  uint32_t port = 0;
  RETURN_IF_ERROR(HostPort(url, hostport, &host, &port));
  e->hosts.push_back(std::move(host));
  e->port = port;
  return absl::OkStatus();
}

}  // namespace

std::string NormaliseDn(absl::string_view dn) {
  std::vector<std::string> parts;
  for (absl::string_view rdn : absl::StrSplit(dn, ',')) {
    std::vector<std::string> kv;
    for (absl::string_view x : absl::StrSplit(rdn, '=')) {
      kv.push_back(absl::AsciiStrToLower(absl::StripAsciiWhitespace(x)));
    }
    parts.push_back(absl::StrJoin(kv, "="));
  }
  return absl::StrJoin(parts, ",");
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "::1" || host == "0.0.0.0" ||
         host == "localhost.localdomain" || absl::StartsWith(host, "127.");
}

absl::StatusOr<ConnectionEndpoint> ParseConnectionUrl(absl::string_view url) {
  url = absl::StripAsciiWhitespace(url);
  if (url.empty()) return absl::InvalidArgumentError("empty connection URL");
  if (url.size() > kMaxUrl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "connection URL of ", url.size(), " bytes (at most ", kMaxUrl, ")"));
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return Bad(url, "a control character");
    }
  }
  ConnectionEndpoint e;
  if (absl::StartsWithIgnoreCase(url, "jdbc:")) {
    e.jdbc = true;
    absl::string_view rest = url.substr(5);
    size_t colon = rest.find(':');
    if (colon == absl::string_view::npos) return Bad(url, "no JDBC driver");
    std::string driver = absl::AsciiStrToLower(rest.substr(0, colon));
    rest.remove_prefix(colon + 1);
    if (driver == "mysql" || driver == "mariadb") {
      e.kind = "mariadb";
      // jdbc:mysql:loadbalance://, :replication://, :aurora://, ...
      if (!absl::StartsWith(rest, "//")) {
        size_t mode = rest.find("://");
        if (mode == absl::string_view::npos)
          return Bad(url, "no \"//\" host part");
        rest.remove_prefix(mode + 1);
      }
      RETURN_IF_ERROR(Authority(url, rest, "?;", &e));
    } else if (driver == "postgresql") {
      e.kind = "postgresql";
      if (absl::StartsWith(rest, "//")) {
        RETURN_IF_ERROR(Authority(url, rest, "?", &e));
      } else {
        // jdbc:postgresql:db is localhost's.
        e.hosts.push_back("localhost");
        e.database = std::string(rest.substr(0, rest.find('?')));
      }
    } else if (driver == "oracle") {
      e.kind = "oracle";
      RETURN_IF_ERROR(Oracle(url, rest, &e));
    } else if (driver == "sqlserver") {
      e.kind = "sqlserver";
      RETURN_IF_ERROR(Authority(url, rest, ";", &e));
      for (absl::string_view prop : absl::StrSplit(rest, ';')) {
        std::pair<std::string, std::string> kv =
            absl::StrSplit(prop, absl::MaxSplits('=', 1));
        std::string key = absl::AsciiStrToLower(kv.first);
        if (key == "databasename" || key == "database") e.database = kv.second;
      }
    } else {
      e.kind = driver == "db2" ? "db2" : driver;
      RETURN_IF_ERROR(Authority(url, rest, "?;:", &e));
    }
  } else {
    // scheme://host:port/path, several separated by spaces (LDAP lists);
    // a space inside a DN ("dc=example, dc=com") does not start a URL.
    std::vector<std::string> urls;
    for (absl::string_view word :
         absl::StrSplit(url, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      if (urls.empty() || absl::StrContains(word, "://")) {
        urls.emplace_back(word);
      } else {
        absl::StrAppend(&urls.back(), " ", word);
      }
    }
    bool first = true;
    for (absl::string_view one : urls) {
      size_t sep = one.find("://");
      if (sep == absl::string_view::npos || sep == 0) {
        return Bad(url, "not a JDBC URL and has no scheme://");
      }
      std::string scheme = absl::AsciiStrToLower(one.substr(0, sep));
      if (!std::all_of(scheme.begin(), scheme.end(), [](char c) {
            return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                   c == '+' || c == '-' || c == '.';
          })) {
        return Bad(url, absl::StrCat("\"", scheme, "\" is not a scheme"));
      }
      ConnectionEndpoint part;
      RETURN_IF_ERROR(Authority(url, one.substr(sep + 1), "?#", &part));
      std::string kind = scheme == "ldaps" ? "ldap" : scheme;
      if (first) {
        e.kind = kind;
        e.port = part.port != 0 ? part.port : (scheme == "ldaps" ? 636 : 0);
        e.database = part.database;
      } else if (kind != e.kind) {
        return Bad(url, "a list of URLs of different kinds");
      }
      for (auto& h : part.hosts) e.hosts.push_back(std::move(h));
      first = false;
    }
    if (e.kind == "ldap") e.database = NormaliseDn(e.database);
  }
  if (e.hosts.empty()) return Bad(url, "no host");
  if (e.port == 0) e.port = DefaultPortOf(e.kind);
  return e;
}

std::string CanonicalUrl(const ConnectionEndpoint& e) {
  auto host = [](const std::string& h) {
    return h.find(':') != std::string::npos ? absl::StrCat("[", h, "]") : h;
  };
  auto hosts_with_port = [&] {
    std::vector<std::string> out;
    for (const std::string& h : e.hosts) {
      out.push_back(e.port ? absl::StrCat(host(h), ":", e.port) : host(h));
    }
    return absl::StrJoin(out, ",");
  };
  if (e.kind == "oracle") {
    if (e.hosts.size() == 1) {
      return absl::StrCat("jdbc:oracle:thin:@//", hosts_with_port(),
                          e.database.empty() ? "" : "/", e.database);
    }
    std::string out = "jdbc:oracle:thin:@(DESCRIPTION=";
    for (const std::string& h : e.hosts) {
      absl::StrAppend(&out, "(ADDRESS=(HOST=", h, ")(PORT=", e.port, "))");
    }
    return absl::StrCat(out, "(CONNECT_DATA=(SERVICE_NAME=", e.database, ")))");
  }
  if (e.kind == "sqlserver") {
    return absl::StrCat("jdbc:sqlserver://", hosts_with_port(),
                        e.database.empty() ? "" : ";databaseName=", e.database);
  }
  const std::string path =
      e.database.empty() ? "" : absl::StrCat("/", e.database);
  if (e.kind == "ldap") {
    std::vector<std::string> urls;
    for (const std::string& h : e.hosts) {
      urls.push_back(absl::StrCat("ldap://", host(h), ":", e.port,
                                  urls.empty() ? path : ""));
    }
    return absl::StrJoin(urls, " ");
  }
  return absl::StrCat(e.jdbc ? "jdbc:" : "", e.kind, "://", hosts_with_port(),
                      path);
}

}  // namespace gwmirror
