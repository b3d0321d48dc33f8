// A gateway's deployed configuration comes from whoever can deploy to it:
// the entity-store parser (ExtConnsStore.xml), the envSettings.props
// reader and the connection-URL reader take any bytes; a URL read is
// written back canonically and reads back the same. Each either fails
// cleanly or gives a result within its documented bounds.
#include <cstdlib>

#include "common/connection_url.h"
#include "node/external_connections.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  return {
      "<?xml version=\"1.0\"?>\n<entityStoreData "
      "xmlns=\"http://www.vordel.com/2005/06/24/entityStore\">\n<entity "
      "xmlns=\"http://www.vordel.com/2005/06/24/entityStore\" "
      "type=\"DbConnection\"><fval name=\"name\"><value>M &amp; S</value>"
      "</fval><fval name=\"url\"><value><![CDATA[${environment.URL}]]>"
      "</value></fval></entity>\n</entityStoreData>\n",
      "<!DOCTYPE a [<!ENTITY b \"c\">]><a>&b;</a>",
      "env.URL=jdbc\\:mysql\\://h/db\nenv.B : x\n# c\n",
      "jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(HOST=h)(PORT=1521))"
      "(CONNECT_DATA=(SERVICE_NAME=s)))",
      "jdbc:mysql:loadbalance://u:p@[::1]:3306,h2/db?password=x&y=1",
      "ldap://h1:389/dc=a, dc=b ldaps://h2",
      "jdbc:sqlserver://h\\i:1433;databaseName=d;password=x",
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  if (auto store = gwmirror::ParseEntityStore(in); store.ok()) {
    for (const auto& e : *store) {
      for (const auto& [k, v] : e.fields) {
        if (v.size() > (64 << 10)) std::abort();
      }
    }
  }
  if (auto e = gwmirror::ParseConnectionUrl(in); e.ok()) {
    if (e->hosts.empty() || e->port > 65535) std::abort();
    for (const auto& h : e->hosts) {
      if (h.empty()) std::abort();
    }
    // The canonical form a node reports reads back to the same endpoint.
    auto back = gwmirror::ParseConnectionUrl(gwmirror::CanonicalUrl(*e));
    if (!back.ok() || back->kind != e->kind || back->hosts != e->hosts ||
        back->port != e->port) {
      std::abort();
    }
  }
  (void)gwmirror::NormaliseDn(in);
  gwmirror::EnvSettings env;
  env.Add(in, "fuzz.props");
  (void)env.Resolve(in);
  return 0;
}
